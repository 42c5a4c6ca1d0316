//! What every worker shares: the router (and through it the actors), each deployment's config
//! and provider adapter, and the settings a request needs. Built once at start-up from the
//! loaded config.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Uri;
use dashmap::DashMap;
use llm_proxy_actors::{
    Alias, AllowedFailsPolicy, Clock, DeploymentSpec, RetryPolicy, Router, RouterSettings,
    Strategy, SystemClock,
};

use super::auth::{Authorizer, MasterKeyAuth};
use super::dispatch::Overrides;
use super::upstream;
use crate::config::{self, DeploymentConfig, ProxyConfig};
use crate::providers::params::DeploymentDefaults;
use crate::providers::{self, ProviderAdapter, ProviderError};

/// LiteLLM's default request timeout (`litellm.request_timeout`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(6000);

/// Body limit when `general_settings.max_request_size_mb` is not set.
const DEFAULT_MAX_BODY_MB: f64 = 32.0;

/// Wildcard deployments build an adapter per requested model; the cache is bounded so that
/// clients sending endless distinct names cannot grow it without limit.
const WILDCARD_ADAPTER_CACHE: usize = 1024;

/// Why the proxy cannot start with this config.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("router_settings.routing_strategy: {0}")]
    Strategy(String),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// With no actix System in the host, the proxy runs its actors in a System of its own on a
    /// dedicated thread; that thread could not be started.
    #[error("could not start the proxy's actor system: {0}")]
    ActorSystem(String),
}

/// One deployment as the request path needs it.
#[derive(Debug)]
pub struct DeploymentRuntime {
    pub config: DeploymentConfig,
    /// The OpenAI params and headers the deployment adds to every request.
    pub defaults: DeploymentDefaults,
    adapter: Result<Arc<dyn ProviderAdapter>, ProviderError>,
    timeout: Option<Duration>,
    stream_timeout: Option<Duration>,
    // Params every attempt reads, taken out of `litellm_params` (a hashed map) once.
    /// `litellm_params.model`.
    pub model: String,
    /// `litellm_params.mock_response`, unless absent or null.
    pub mock_response: Option<serde_json::Value>,
    /// `litellm_params.drop_params`.
    pub drop_params: bool,
    /// Custom pricing, USD a prompt and a completion token (`input_cost_per_token` /
    /// `output_cost_per_token` in `litellm_params` or `model_info`); `None` when neither is set.
    pub prices: Option<(f64, f64)>,
}

pub struct Shared {
    pub config: ProxyConfig,
    pub router: Router,
    /// The master key (from the config) or the host's callback.
    pub auth: Authorizer,
    /// `litellm_settings.drop_params` (or `LITELLM_DROP_PARAMS`).
    pub drop_params: bool,
    pub max_body_bytes: usize,
    deployments: foldhash::HashMap<String, Arc<DeploymentRuntime>>,
    wildcard_adapters: DashMap<String, Arc<dyn ProviderAdapter>>,
    default_timeout: Duration,
    default_stream_timeout: Option<Duration>,
    /// `general_settings.background_health_checks`, when on.
    pub background_health: Option<super::health::Background>,
    /// Whether any deployment has custom pricing: the cost is worked out only then.
    pub priced: bool,
    /// The System started by [`Shared::spawn`] when the host had none; declared last so that it
    /// stops after the router (and its Arbiter) has been dropped.
    own_system: Option<OwnSystem>,
}

/// Stops the proxy's own actix System (and the thread that runs it) when dropped.
struct OwnSystem(actix::System);

impl Drop for OwnSystem {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl Shared {
    /// Build the shared state and start the router's actors. Must run inside an actix System.
    pub fn start(config: ProxyConfig) -> Result<Shared, StartError> {
        Shared::start_with_clock(config, Arc::new(SystemClock))
    }

    /// [`Shared::start`] from any async context. Inside an actix System (`#[actix_web::main]`,
    /// `#[actix_web::test]`, an actix-web worker) the router's Arbiter joins that System. With
    /// none (a host under `#[tokio::main]`), a System of the proxy's own runs on a dedicated
    /// thread, stopped when this `Shared` is dropped.
    pub async fn spawn(config: ProxyConfig) -> Result<Shared, StartError> {
        if actix::System::try_current().is_some() {
            return Shared::start(config);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("llm-proxy-actors".into())
            .spawn(move || {
                let runner = actix::System::new();
                let started = runner.block_on(async { Shared::start(config) });
                let started = started.map(|mut shared| {
                    shared.own_system = Some(OwnSystem(actix::System::current()));
                    shared
                });
                let keep_running = started.is_ok();
                if tx.send(started).is_ok() && keep_running {
                    // Returns once the last `Shared` is dropped (`OwnSystem::drop`).
                    if let Err(e) = runner.run() {
                        log::warn!("the proxy's actor system ended with an error: {e}");
                    }
                }
            })
            .map_err(|e| StartError::ActorSystem(e.to_string()))?;
        rx.await.map_err(|_| {
            StartError::ActorSystem("the actor system thread ended while starting".into())
        })?
    }

    pub fn start_with_clock(
        config: ProxyConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Shared, StartError> {
        let settings = router_settings(&config)?;
        let default_max_parallel = config
            .router_settings
            .default_max_parallel_requests
            .and_then(|n| u32::try_from(n).ok());
        let specs = config
            .deployments
            .iter()
            .map(|d| deployment_spec(d, default_max_parallel))
            .collect();
        let router = Router::start(specs, settings, clock);
        let mut deployments = foldhash::HashMap::default();
        for d in &config.deployments {
            let adapter = if d.is_wildcard() && d.model().contains('*') {
                // Built per requested model.
                Err(ProviderError::invalid_config("wildcard deployment"))
            } else {
                providers::adapter_for(d.model(), &d.litellm_params)
            };
            if let Err(e) = &adapter {
                if !d.is_wildcard() && d.litellm_params.get("mock_response").is_none() {
                    log::warn!(
                        "deployment {} (model_name={}, model={}) cannot be called: {}",
                        d.id,
                        d.model_name,
                        d.model(),
                        e.message
                    );
                }
            }
            let runtime = DeploymentRuntime {
                timeout: secs(
                    d.f64_param("timeout")
                        .or_else(|| d.f64_param("request_timeout")),
                ),
                stream_timeout: secs(d.f64_param("stream_timeout")),
                adapter,
                defaults: DeploymentDefaults::from_params(&d.litellm_params),
                model: d.model().to_string(),
                mock_response: d
                    .litellm_params
                    .get("mock_response")
                    .filter(|v| !v.is_null())
                    .cloned(),
                drop_params: d.bool_param("drop_params").unwrap_or(false),
                prices: custom_prices(d),
                config: d.clone(),
            };
            deployments.insert(d.id.clone(), Arc::new(runtime));
        }
        let general = &config.general_settings;
        let auth = Authorizer::MasterKey(MasterKeyAuth::new(
            config.master_key().map(|k| k.expose().to_string()),
            general.litellm_key_header_name.clone(),
        ));
        let drop_params = config.litellm_settings.drop_params.unwrap_or(false)
            || std::env::var("LITELLM_DROP_PARAMS")
                .map(|v| {
                    matches!(
                        v.trim().to_ascii_lowercase().as_str(),
                        "1" | "true" | "yes" | "on"
                    )
                })
                .unwrap_or(false);
        let max_body_mb = general
            .max_request_size_mb
            .filter(|mb| mb.is_finite() && *mb > 0.0)
            .unwrap_or(DEFAULT_MAX_BODY_MB);
        let default_timeout = secs(config.router_settings.timeout)
            .or_else(|| secs(config.litellm_settings.request_timeout))
            .unwrap_or(DEFAULT_TIMEOUT);
        let default_stream_timeout = secs(config.router_settings.stream_timeout);
        let priced = deployments.values().any(|d| d.prices.is_some());
        Ok(Shared {
            priced,
            router,
            auth,
            drop_params,
            max_body_bytes: (max_body_mb * 1024.0 * 1024.0) as usize,
            deployments,
            wildcard_adapters: DashMap::new(),
            default_timeout,
            default_stream_timeout,
            background_health: super::health::Background::from_settings(&config.general_settings),
            config,
            own_system: None,
        })
    }

    pub fn deployment(&self, id: &str) -> Option<Arc<DeploymentRuntime>> {
        self.deployments.get(id).cloned()
    }

    /// [`Shared::deployment`] for a call: an id the router chose that this proxy does not know
    /// is a configuration error.
    pub fn deployment_to_call(&self, id: &str) -> Result<Arc<DeploymentRuntime>, ProviderError> {
        self.deployment(id).ok_or_else(|| {
            ProviderError::invalid_config(format!("deployment {id} is not known to this proxy"))
        })
    }

    /// Whether a deployment may call its upstream over TLS: it is not mocked and its api base
    /// is not `http://` (a provider's default base is `https://`). The workers then build their
    /// TLS connector at start instead of on the first request (see `upstream::Transport`).
    pub fn may_use_tls(&self) -> bool {
        self.deployments.values().any(|d| {
            d.mock_response.is_none()
                && d.adapter.as_ref().is_ok_and(|a| {
                    !a.api_base()
                        .and_then(|base| base.parse::<Uri>().ok())
                        .is_some_and(|url| upstream::is_plain_http(&url))
                })
        })
    }

    /// The adapter for an attempt: the deployment's own, or for a wildcard the one for the
    /// model the request asked for.
    pub fn adapter(
        &self,
        deployment: &DeploymentRuntime,
        upstream_model: Option<&str>,
    ) -> Result<Arc<dyn ProviderAdapter>, ProviderError> {
        let Some(model) = upstream_model else {
            return deployment.adapter.clone();
        };
        let key = format!("{}\u{0}{model}", deployment.config.id);
        if let Some(a) = self.wildcard_adapters.get(&key) {
            return Ok(a.clone());
        }
        let adapter = providers::adapter_for(model, &deployment.config.litellm_params)?;
        if self.wildcard_adapters.len() >= WILDCARD_ADAPTER_CACHE {
            self.wildcard_adapters.clear();
        }
        self.wildcard_adapters.insert(key, adapter.clone());
        Ok(adapter)
    }

    /// LiteLLM's precedence: request > deployment > router_settings > litellm_settings; a stream
    /// uses `stream_timeout` where one is set at any level, else the same chain.
    pub fn timeout_for(
        &self,
        deployment: &DeploymentRuntime,
        overrides: &Overrides,
        stream: bool,
    ) -> Duration {
        if stream {
            if let Some(t) = overrides
                .stream_timeout
                .or(deployment.stream_timeout)
                .or(self.default_stream_timeout)
            {
                return t;
            }
        }
        overrides
            .timeout
            .or(deployment.timeout)
            .unwrap_or(self.default_timeout)
    }
}

/// Seconds from the config into a duration: zero and nonsense (negative, NaN, infinite) are
/// ignored, and anything past a year is a year ([`crate::config::seconds`]).
pub fn secs(v: Option<f64>) -> Option<Duration> {
    v.filter(|s| *s > 0.0).and_then(crate::config::seconds)
}

fn deployment_spec(d: &DeploymentConfig, default_max_parallel: Option<u32>) -> DeploymentSpec {
    let mut spec = DeploymentSpec::new(&d.id, &d.model_name, d.model());
    spec.rpm = d.rpm();
    spec.tpm = d.tpm();
    spec.weight = d.f64_param("weight");
    spec.order = d.u64_param("order").and_then(|o| u32::try_from(o).ok());
    spec.max_parallel_requests = d
        .u64_param("max_parallel_requests")
        .and_then(|n| u32::try_from(n).ok())
        .or(default_max_parallel);
    spec.cooldown_time = d
        .f64_param("cooldown_time")
        .and_then(crate::config::seconds);
    spec.num_retries = d
        .u64_param("num_retries")
        .and_then(|n| u32::try_from(n).ok());
    spec.input_cost_per_token = d.f64_param("input_cost_per_token");
    spec.output_cost_per_token = d.f64_param("output_cost_per_token");
    spec
}

fn u32_of(v: Option<u64>) -> Option<u32> {
    v.map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// `router_settings` wins over `litellm_settings` wherever it is set (and non-empty).
fn router_settings(config: &ProxyConfig) -> Result<RouterSettings, StartError> {
    let r = &config.router_settings;
    let l = &config.litellm_settings;
    let mut s = RouterSettings::default();
    if let Some(name) = &r.routing_strategy {
        s.strategy = name.parse().map_err(StartError::Strategy)?;
        if let (
            Strategy::LatencyBased {
                lowest_latency_buffer,
                max_latency_list_size,
                ttl,
            },
            Some(args),
        ) = (&mut s.strategy, &r.routing_strategy_args)
        {
            if let Some(b) = args
                .get("lowest_latency_buffer")
                .and_then(serde_json::Value::as_f64)
            {
                *lowest_latency_buffer = b;
            }
            if let Some(n) = args
                .get("max_latency_list_size")
                .and_then(serde_json::Value::as_u64)
            {
                *max_latency_list_size = usize::try_from(n).unwrap_or(usize::MAX).max(1);
            }
            if let Some(t) = secs(args.get("ttl").and_then(serde_json::Value::as_f64)) {
                *ttl = t;
            }
        }
    }
    if let Some(n) = u32_of(r.num_retries.or(l.num_retries)) {
        s.num_retries = n;
    }
    if let Some(t) = secs(r.retry_after) {
        s.retry_after = t;
    }
    s.retry_policy = r.retry_policy.as_ref().map(retry_policy);
    if let Some(groups) = &r.model_group_retry_policy {
        s.model_group_retry_policy = groups
            .iter()
            .map(|(g, p)| (g.clone(), retry_policy(p)))
            .collect();
    }
    // LiteLLM ignores litellm_settings.allowed_fails (its docs promise it works): we honour it.
    s.allowed_fails = u32_of(r.allowed_fails.or(l.allowed_fails));
    s.allowed_fails_policy = r.allowed_fails_policy.as_ref().map(|p| AllowedFailsPolicy {
        bad_request: u32_of(p.bad_request_error_allowed_fails),
        auth: u32_of(p.authentication_error_allowed_fails),
        timeout: u32_of(p.timeout_error_allowed_fails),
        rate_limit: u32_of(p.rate_limit_error_allowed_fails),
        content_policy: u32_of(p.content_policy_violation_error_allowed_fails),
        internal_server_error: u32_of(p.internal_server_error_allowed_fails),
    });
    if let Some(c) = r.cooldown_time.and_then(crate::config::seconds) {
        s.cooldown_time = c;
    }
    s.disable_cooldowns = r.disable_cooldowns.unwrap_or(false);
    let pick = |router: &Option<config::FallbackList>, litellm: &Option<config::FallbackList>| {
        router
            .clone()
            .filter(|f| !f.is_empty())
            .or_else(|| litellm.clone())
            .unwrap_or_default()
    };
    s.fallbacks = pick(&r.fallbacks, &l.fallbacks);
    s.context_window_fallbacks = pick(&r.context_window_fallbacks, &l.context_window_fallbacks);
    s.content_policy_fallbacks = pick(&r.content_policy_fallbacks, &l.content_policy_fallbacks);
    if let Some(defaults) = r
        .default_fallbacks
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| l.default_fallbacks.clone())
        .filter(|d| !d.is_empty())
    {
        s.fallbacks.push(("*".to_string(), defaults));
    }
    if let Some(m) = u32_of(r.max_fallbacks) {
        s.max_fallbacks = m;
    }
    s.aliases = r
        .model_group_alias
        .iter()
        .flatten()
        .map(|a| Alias {
            name: a.alias.clone(),
            target: a.model.clone(),
            hidden: a.hidden,
        })
        .collect();
    Ok(s)
}

fn retry_policy(p: &config::RetryPolicy) -> RetryPolicy {
    RetryPolicy {
        bad_request: u32_of(p.bad_request_error_retries),
        auth: u32_of(p.authentication_error_retries),
        timeout: u32_of(p.timeout_error_retries),
        rate_limit: u32_of(p.rate_limit_error_retries),
        content_policy: u32_of(p.content_policy_violation_error_retries),
        internal_server_error: u32_of(p.internal_server_error_retries),
    }
}

/// A deployment's custom pricing, from `litellm_params` or else `model_info` (LiteLLM reads
/// both); a price left out counts as free. There is no cost map, so without these the cost is
/// unknown.
fn custom_prices(d: &crate::config::DeploymentConfig) -> Option<(f64, f64)> {
    let price = |key: &str| {
        d.f64_param(key)
            .or_else(|| d.model_info.get(key).and_then(serde_json::Value::as_f64))
            .filter(|p| p.is_finite() && *p >= 0.0)
    };
    let (input, output) = (
        price("input_cost_per_token"),
        price("output_cost_per_token"),
    );
    (input.is_some() || output.is_some()).then(|| (input.unwrap_or(0.0), output.unwrap_or(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> ProxyConfig {
        ProxyConfig::load_from_str(yaml, "test.yaml").unwrap()
    }

    /// Only a deployment that may reach its upstream over TLS makes the workers build their TLS
    /// connector at start.
    #[actix_rt::test]
    async fn tls_is_prepared_only_for_upstreams_that_may_need_it() {
        let shared = |litellm_params: &str| {
            let yaml = format!(
                "model_list:\n  - model_name: m\n    litellm_params: {{{litellm_params}}}\n"
            );
            Shared::start(load(&yaml)).unwrap()
        };
        let plain = "model: openai/gpt-4o, api_key: k, api_base: 'HTTP://127.0.0.1:9/v1'";
        assert!(!shared(plain).may_use_tls());
        assert!(!shared("model: openai/gpt-4o, mock_response: hi").may_use_tls());
        assert!(!shared("model: ollama/llama3").may_use_tls());
        assert!(shared("model: openai/gpt-4o, api_key: k").may_use_tls());
        let tls = "model: openai/gpt-4o, api_key: k, api_base: 'https://example.invalid/v1'";
        assert!(shared(tls).may_use_tls());
    }

    #[test]
    fn router_settings_win_over_litellm_settings() {
        let c = load(
            "model_list: []\nlitellm_settings:\n  num_retries: 3\n  fallbacks: [{\"a\": [\"b\"]}]\n  allowed_fails: 4\nrouter_settings:\n  num_retries: 1\n  cooldown_time: 7\n  default_fallbacks: [\"z\"]\n",
        );
        let s = router_settings(&c).unwrap();
        assert_eq!(s.num_retries, 1);
        assert_eq!(s.allowed_fails, Some(4));
        assert_eq!(s.cooldown_time, Duration::from_secs(7));
        assert_eq!(
            s.fallbacks,
            vec![
                ("a".to_string(), vec!["b".to_string()]),
                ("*".to_string(), vec!["z".to_string()])
            ]
        );
    }

    #[test]
    fn an_unknown_strategy_is_refused_naming_the_valid_ones() {
        let c = load("model_list: []\nrouter_settings:\n  routing_strategy: round-robin\n");
        let e = router_settings(&c).unwrap_err().to_string();
        assert!(e.contains("round-robin") && e.contains("least-busy"), "{e}");
    }

    #[test]
    fn latency_args_are_read() {
        let c = load(
            "model_list: []\nrouter_settings:\n  routing_strategy: latency-based-routing\n  routing_strategy_args: {lowest_latency_buffer: 0.5, max_latency_list_size: 3}\n",
        );
        match router_settings(&c).unwrap().strategy {
            Strategy::LatencyBased {
                lowest_latency_buffer,
                max_latency_list_size,
                ..
            } => {
                assert_eq!((lowest_latency_buffer, max_latency_list_size), (0.5, 3));
            }
            other => panic!("{other:?}"),
        }
    }
}
