//! `llm-proxy --config config.yaml`: LiteLLM's proxy CLI, served by actix-web.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use actix_web::{web, App, HttpServer};
use clap::Parser;
use llm_proxy::server::auth::{check_bind_is_safe, is_loopback};
use llm_proxy::{LlmProxy, ProxyConfig};
use serde::Deserialize;

/// An LLM gateway that reads LiteLLM's config.yaml and serves the OpenAI API.
/// A request allocates and frees many small buffers; mimalloc does that for much less than
/// glibc's malloc (bench: ~27 -> ~23 µs of CPU a request, +17 % requests/s on one core).
/// Library users keep their own allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "llm-proxy", version, about)]
struct Cli {
    /// LiteLLM config file (else $CONFIG_FILE_PATH; without either, no models)
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Address to listen on (else $HOST; default 0.0.0.0 with a master key, else 127.0.0.1)
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (else $PORT; default 4000)
    #[arg(long)]
    port: Option<u16>,
    /// Worker threads (else $NUM_WORKERS; default: one per CPU)
    #[arg(long = "num_workers", alias = "num-workers")]
    num_workers: Option<usize>,
    /// Debug logs (RUST_LOG also works)
    #[arg(long = "detailed_debug", alias = "detailed-debug")]
    detailed_debug: bool,
}

/// Server settings, layered: defaults < environment (HOST, PORT, NUM_WORKERS, CONFIG_FILE_PATH)
/// < command line.
#[derive(Debug, Deserialize)]
struct ServerSettings {
    host: Option<String>,
    port: u16,
    num_workers: Option<usize>,
    config_file_path: Option<PathBuf>,
}

fn settings(cli: &Cli) -> Result<ServerSettings, config::ConfigError> {
    config::Config::builder()
        .set_default("port", 4000)?
        .add_source(
            config::Environment::default()
                .try_parsing(true)
                .ignore_empty(true),
        )
        .set_override_option("host", cli.host.clone())?
        .set_override_option("port", cli.port)?
        .set_override_option("num_workers", cli.num_workers.map(|n| n as u64))?
        .set_override_option(
            "config_file_path",
            cli.config.as_ref().map(|p| p.display().to_string()),
        )?
        .build()?
        .try_deserialize()
}

/// Debug logs with `--detailed_debug` or `LITELLM_LOG=DEBUG` at once, or later when the config
/// asks ([`verbose_config`]); `RUST_LOG`, when set, decides alone. Returns whether the config
/// may still turn debug logs on.
fn init_logging(detailed_debug: bool) -> bool {
    let litellm_debug = std::env::var("LITELLM_LOG")
        .map(|v| v.eq_ignore_ascii_case("debug"))
        .unwrap_or(false);
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let builder = match &rust_log {
        Some(filter) => env_logger::Builder::new().parse_filters(filter).build(),
        None => env_logger::Builder::new()
            .parse_filters("info,llm_proxy=debug,llm_proxy_actors=debug")
            .build(),
    };
    let max = builder.filter();
    if log::set_boxed_logger(Box::new(builder)).is_err() {
        return false;
    }
    // RUST_LOG, or a debug switch on the command line or in the environment, settles it now.
    let settled = rust_log.is_some() || detailed_debug || litellm_debug;
    log::set_max_level(if settled { max } else { log::LevelFilter::Info });
    !settled
}

/// LiteLLM's verbose switches in the config: `litellm_settings.set_verbose`,
/// `router_settings.set_verbose` or `router_settings.debug_level: DEBUG`.
fn verbose_config(config: &ProxyConfig) -> bool {
    config.litellm_settings.set_verbose == Some(true)
        || config.router_settings.set_verbose == Some(true)
        || config
            .router_settings
            .debug_level
            .as_deref()
            .is_some_and(|level| level.eq_ignore_ascii_case("debug"))
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_may_turn_on_debug = init_logging(cli.detailed_debug);
    let settings = match settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            log::error!("invalid server settings: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match &settings.config_file_path {
        Some(path) => match ProxyConfig::load_from_path(path) {
            Ok(c) => c,
            Err(e) => {
                log::error!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => {
            log::warn!(
                "no config file given (--config or CONFIG_FILE_PATH): starting with no models"
            );
            ProxyConfig::empty()
        }
    };
    if config_may_turn_on_debug && verbose_config(&config) {
        log::set_max_level(log::LevelFilter::Debug);
        log::info!("debug logs on (set_verbose / debug_level in the config)");
    }
    let master_key = config.master_key().map(|k| k.expose().to_string());
    let permit_weak = config
        .general_settings
        .dangerously_permit_weak_or_unset_master_key
        .unwrap_or(false)
        || std::env::var("LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY")
            .map(|v| truthy(&v))
            .unwrap_or(false);
    let host = settings.host.clone().unwrap_or_else(|| {
        if master_key.is_some() {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        }
        .to_string()
    });
    if let Err(message) = check_bind_is_safe(&host, master_key.as_deref(), permit_weak) {
        log::error!("{message}");
        return ExitCode::FAILURE;
    }
    if master_key.is_none() {
        log::warn!(
            "no master key is set (general_settings.master_key or LITELLM_MASTER_KEY): every request is accepted{}",
            if is_loopback(&host) { "; listening on loopback only" } else { "" }
        );
    }
    let mut models = String::from("LiteLLM: Proxy initialized with Config, Set models:");
    for name in &config.declared_model_names {
        models.push_str("\n    ");
        models.push_str(name);
    }
    log::info!("{models}");
    let proxy = match LlmProxy::start(config).await {
        Ok(p) => p,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let factory_proxy = proxy.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .configure(factory_proxy.configure())
            .default_service(web::to(llm_proxy::server::not_found))
    })
    .tcp_nodelay(true);
    if let Some(n) = settings.num_workers.filter(|n| *n > 0) {
        server = server.workers(n);
    }
    let server = match server.bind((host.as_str(), settings.port)) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot listen on {host}:{}: {e}", settings.port);
            return ExitCode::FAILURE;
        }
    };
    for addr in server.addrs() {
        log::info!("llm-proxy running on http://{addr} (Press CTRL+C to quit)");
    }
    let _ = std::io::stderr().flush();
    match server.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
