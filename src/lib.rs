//! llm-proxy: LiteLLM's config.yaml in, the OpenAI API out.
pub mod config;
pub mod providers;

pub mod server;

use std::path::Path;
use std::sync::Arc;

use actix_web::web;

pub use config::ProxyConfig;
pub use server::dispatch::CallMeta;
pub use server::{Shared, StartError};

/// The proxy, ready to be served or mounted in an actix-web `App`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use actix_web::{App, HttpServer};
/// let proxy = llm_proxy::LlmProxy::from_path("config.yaml")?;
/// HttpServer::new(move || App::new().configure(proxy.configure()))
///     .bind(("127.0.0.1", 4000))?
///     .run()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LlmProxy {
    shared: Arc<Shared>,
}

impl LlmProxy {
    /// Start the router's actors for `config`. Must be called inside a running actix System
    /// (for example under `#[actix_web::main]`).
    pub fn start(config: ProxyConfig) -> Result<LlmProxy, StartError> {
        Ok(LlmProxy {
            shared: Arc::new(Shared::start(config)?),
        })
    }

    /// Load a LiteLLM `config.yaml` and start.
    pub fn from_path(path: impl AsRef<Path>) -> Result<LlmProxy, StartError> {
        LlmProxy::start(ProxyConfig::load_from_path(path.as_ref())?)
    }

    /// Load a LiteLLM config from a YAML string and start.
    pub fn from_yaml(yaml: &str) -> Result<LlmProxy, StartError> {
        LlmProxy::start(ProxyConfig::load_from_str(yaml, "<yaml string>")?)
    }

    /// A function for `App::configure` / `Scope::configure` that mounts the OpenAI routes and
    /// starts the worker's HTTP actor. Call it inside the `HttpServer::new` factory so that each
    /// worker gets its own.
    pub fn configure(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + 'static {
        let shared = self.shared.clone();
        move |cfg| server::configure(shared.clone(), cfg)
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.shared.config
    }

    /// Whether requests need the master key.
    pub fn requires_key(&self) -> bool {
        self.shared.auth.enabled()
    }
}
