//! llm-proxy: LiteLLM's config.yaml in, the OpenAI API out.
//!
//! Run it as a server (`llm-proxy --config config.yaml`) or embed it in an actix-web service:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use actix_web::{web, App, HttpServer};
//! let proxy = llm_proxy::LlmProxy::from_path("config.yaml").await?;
//! HttpServer::new(move || {
//!     App::new()
//!         // the OpenAI routes under a prefix: /llm/v1/chat/completions, ...
//!         .service(web::scope("/llm").configure(proxy.configure()))
//!         // or at the root, in front of the host's own routes
//!         .wrap(proxy.middleware())
//!         .route("/healthz", web::get().to(|| async { "ok" }))
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await?;
//! # Ok(()) }
//! ```
//!
//! What the proxy leaves for the host in the request extensions: [`CallMeta`].
//!
//! The proxy's shared actors (Deployment and ModelGroup actors on one Arbiter) live as long as
//! any [`LlmProxy`] clone or any worker that mounted it: a host's graceful shutdown
//! (`ServerHandle::stop(true)`) lets in-flight requests and streams finish, the workers then drop
//! their HTTP actors, and the Arbiter stops when the host drops its last `LlmProxy`.
pub mod config;
mod middleware;
pub mod providers;

pub mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::{web, HttpRequest};

pub use config::ProxyConfig;
pub use middleware::{ProxyMiddleware, ProxyMiddlewareService};
pub use server::auth::{AuthCallback, AuthDecision};
/// What the router and the upstream did for one call to an LLM route (`/chat/completions`,
/// `/completions`, `/embeddings`), for the host's logging: `call_id`, the deployment that
/// answered (`model_id`), the `model_group`, retries and fallbacks, `upstream_duration` and
/// `total_duration` (to the answer, or to the first chunk of a stream), and `usage`.
///
/// The proxy inserts it into the request extensions before returning the response, in both mount
/// styles and whatever the outcome (a refused request has only its `call_id`). A host middleware
/// wrapping the proxy reads it after the inner service answered:
///
/// ```no_run
/// # use actix_web::{dev::Service, App, HttpMessage};
/// # use llm_proxy::{CallMeta, LlmProxy};
/// # fn app(proxy: LlmProxy) {
/// App::new()
///     .wrap(proxy.middleware())
///     .wrap_fn(|req, srv| {
///         let answered = srv.call(req);
///         async move {
///             let res = answered.await?;
///             if let Some(meta) = res.request().extensions().get::<CallMeta>() {
///                 log::info!("{:?} served by {:?}", meta.model_group, meta.model_id);
///             }
///             Ok(res)
///         }
///     });
/// # }
/// ```
///
/// For a stream, `usage` is only set when it is known before the first chunk (mock answers); a
/// client that wants a stream's usage asks for `stream_options.include_usage`.
pub use server::dispatch::CallMeta;
pub use server::{Shared, StartError};

/// The proxy, ready to be served or mounted in an actix-web `App`. Cheap to clone; clone it into
/// the `HttpServer::new` factory.
#[derive(Clone)]
pub struct LlmProxy {
    shared: Arc<Shared>,
}

/// Where the builder reads the config from.
enum ConfigSource {
    Path(PathBuf),
    Yaml(String),
    Config(Box<ProxyConfig>),
}

/// Builds an [`LlmProxy`]: a config (a path, a YAML string or a [`ProxyConfig`]; none means no
/// models) and optionally the host's auth callback.
///
/// ```no_run
/// # async fn run() -> Result<(), llm_proxy::StartError> {
/// use llm_proxy::{AuthDecision, LlmProxy};
/// let proxy = LlmProxy::builder()
///     .config_path("config.yaml")
///     .auth(|req| match req.headers().get("x-tenant") {
///         Some(_) => AuthDecision::Allow,
///         None => AuthDecision::deny("x-tenant is required"),
///     })
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Default)]
#[must_use]
pub struct LlmProxyBuilder {
    source: Option<ConfigSource>,
    auth: Option<AuthCallback>,
}

impl LlmProxyBuilder {
    /// Read LiteLLM's `config.yaml` from this file.
    pub fn config_path(mut self, path: impl Into<PathBuf>) -> LlmProxyBuilder {
        self.source = Some(ConfigSource::Path(path.into()));
        self
    }

    /// Read the config from a YAML string.
    pub fn config_yaml(mut self, yaml: impl Into<String>) -> LlmProxyBuilder {
        self.source = Some(ConfigSource::Yaml(yaml.into()));
        self
    }

    /// Use a config already loaded.
    pub fn config(mut self, config: ProxyConfig) -> LlmProxyBuilder {
        self.source = Some(ConfigSource::Config(Box::new(config)));
        self
    }

    /// Decide who may call the proxy with the host's own rule, instead of the config's master
    /// key. The callback sees each request to a non-public route (everything but the health
    /// probes) before its body is read: its headers, peer address and the extensions the host's
    /// middleware set. [`AuthDecision::Deny`] answers 401 in OpenAI's error shape with the
    /// reason. It runs on the worker thread and must not block; do slow checks in a host
    /// middleware and leave the result in the extensions.
    pub fn auth<F>(mut self, callback: F) -> LlmProxyBuilder
    where
        F: Fn(&HttpRequest) -> AuthDecision + Send + Sync + 'static,
    {
        self.auth = Some(Arc::new(callback));
        self
    }

    /// Load the config and start the router's actors: in the host's actix System when there is
    /// one (`#[actix_web::main]`), else in a System of the proxy's own on a dedicated thread (a
    /// host under `#[tokio::main]`), which stops when the proxy is dropped.
    pub async fn start(self) -> Result<LlmProxy, StartError> {
        let config = match self.source {
            Some(ConfigSource::Path(path)) => ProxyConfig::load_from_path(&path)?,
            Some(ConfigSource::Yaml(yaml)) => ProxyConfig::load_from_str(&yaml, "<yaml string>")?,
            Some(ConfigSource::Config(config)) => *config,
            None => {
                log::warn!("llm-proxy started with no config: it serves no models");
                ProxyConfig::empty()
            }
        };
        let mut shared = Shared::spawn(config).await?;
        if let Some(callback) = self.auth {
            if shared.auth.requires_master_key() {
                log::info!("the host's auth callback replaces the config's master key");
            }
            shared.auth = server::auth::Authorizer::Host(callback);
        }
        Ok(LlmProxy {
            shared: Arc::new(shared),
        })
    }
}

impl LlmProxy {
    /// A builder: config source, host auth, then `start().await`.
    pub fn builder() -> LlmProxyBuilder {
        LlmProxyBuilder::default()
    }

    /// Start the router's actors for `config` (see [`LlmProxyBuilder::start`]).
    pub async fn start(config: ProxyConfig) -> Result<LlmProxy, StartError> {
        LlmProxy::builder().config(config).start().await
    }

    /// Load a LiteLLM `config.yaml` and start.
    pub async fn from_path(path: impl AsRef<Path>) -> Result<LlmProxy, StartError> {
        LlmProxy::builder().config_path(path.as_ref()).start().await
    }

    /// Load a LiteLLM config from a YAML string and start.
    pub async fn from_yaml(yaml: &str) -> Result<LlmProxy, StartError> {
        LlmProxy::builder().config_yaml(yaml).start().await
    }

    /// A function for `App::configure` / `Scope::configure` that mounts the OpenAI routes
    /// ([`server::ROUTES`], and the path forms under [`server::MODEL_CALL_PREFIXES`] and [`server::MODEL_ID_PREFIXES`]) and
    /// starts the worker's HTTP actor. Call it inside the `HttpServer::new` factory so that each
    /// worker gets its own. Under a `web::scope` every path gets the prefix; paths under the
    /// prefix the proxy does not serve fall through to the host, except under the path forms'
    /// prefixes (`/engines/`, `/openai/deployments/`, `/models/`, `/v1/models/`), which the
    /// proxy answers with an OpenAI-shaped 404 (add
    /// `.default_service(web::to(llm_proxy::server::not_found))` to the scope for one elsewhere).
    pub fn configure(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + 'static {
        let shared = self.shared.clone();
        move |cfg| server::configure(shared.clone(), cfg)
    }

    /// The proxy as a middleware for `App::wrap` (or `Scope::wrap`): it answers the paths of
    /// [`server::ROUTES`] and the path forms that name a model, and passes every other request to the host's services. Call it inside
    /// the `HttpServer::new` factory; each worker builds its own HTTP actor.
    pub fn middleware(&self) -> ProxyMiddleware {
        ProxyMiddleware::new(self.shared.clone())
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.shared.config
    }

    /// The live router: model groups, deployments and their current views (in flight,
    /// cooldown), for a host's status pages.
    pub fn router(&self) -> &llm_proxy_actors::Router {
        &self.shared.router
    }

    /// Whether requests need the master key (false when the host's auth callback decides).
    pub fn requires_key(&self) -> bool {
        self.shared.auth.requires_master_key()
    }
}
