//! The HTTP edge: OpenAI routes, LiteLLM's info and health routes, auth, and the answer back to
//! the client (JSON or SSE written chunk by chunk).
//!
//! The proxy is mounted in one of two ways, and both end in the same function per endpoint
//! (`respond` picks it from a [`ProxyRoute`]):
//! - [`configure`] registers one actix-web resource per path in [`ROUTES`] (at the App root or
//!   under any `web::scope` prefix);
//! - [`crate::ProxyMiddleware`] answers the same paths itself and passes every other request to
//!   the host's own services.
//!
//! Either way each worker builds a `Worker` once: the shared state plus the worker's own
//! [`dispatch::HttpActor`] (which owns the worker's upstream transport).
//!
//! A request's path:
//! 1. `llm_call` asks the [`auth::Authorizer`] (the master key, or the host's callback), reads
//!    the body under the size limit and parses it into a JSON object, keeping every field.
//! 2. It hands a [`dispatch::Dispatch`] to this worker's [`dispatch::HttpActor`], which resolves
//!    the model and runs the router's retry/fallback loop (`llm_proxy_actors::Router::execute`);
//!    each attempt reserves a deployment through its ModelGroup and Deployment actors and calls
//!    the upstream on this worker's thread.
//! 3. The answer goes back with LiteLLM's `x-litellm-*` headers; a stream's response body is
//!    its [`stream::Relay`], which reads the upstream as the client takes the frames.
//! 4. The call's [`dispatch::CallMeta`] is left in the request's extensions, whatever the outcome,
//!    for the host's logging (`res.request().extensions().get::<CallMeta>()` in a host
//!    middleware, after the inner service answered).

use std::convert::Infallible;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::http::header::{
    HeaderMap, HeaderName, HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE,
};
use actix_web::http::{Method, StatusCode};
use actix_web::{dev, web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::{json, Value};

pub mod auth;
pub mod dispatch;
pub mod error;
pub mod health;
pub mod state;
pub mod stream;
pub mod upstream;

use dispatch::{Body, CallMeta, Dispatch, Dispatched, HttpActor, Overrides};
use error::ProxyError;
pub use state::{Shared, StartError};

use crate::providers::body::is_list_of_objects;
use crate::providers::{Endpoint, RequestBody};

/// `created` LiteLLM reports for every model in `/v1/models`.
const MODEL_CREATED_AT: u64 = 1_677_610_602;

/// What the proxy answers on one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyRoute {
    /// `POST`: chat, text completions or embeddings, through the router.
    Llm(Endpoint),
    /// `GET`: the model groups.
    Models,
    /// `GET /models/{id}`: one model group (the id comes from the path, see [`match_path`]).
    Model,
    /// `GET`: one entry per deployment, secrets masked.
    ModelInfo,
    /// `GET`: every deployment (or `?model=` / `?model_id=`) called with a tiny request.
    Health,
    /// `GET`: liveness probe, public.
    Liveliness,
    /// `GET`: readiness probe, public.
    Readiness,
}

/// Every path the proxy answers, relative to where it is mounted.
pub const ROUTES: &[(&str, ProxyRoute)] = &[
    (
        "/chat/completions",
        ProxyRoute::Llm(Endpoint::ChatCompletions),
    ),
    (
        "/v1/chat/completions",
        ProxyRoute::Llm(Endpoint::ChatCompletions),
    ),
    ("/completions", ProxyRoute::Llm(Endpoint::Completions)),
    ("/v1/completions", ProxyRoute::Llm(Endpoint::Completions)),
    ("/embeddings", ProxyRoute::Llm(Endpoint::Embeddings)),
    ("/v1/embeddings", ProxyRoute::Llm(Endpoint::Embeddings)),
    ("/models", ProxyRoute::Models),
    ("/v1/models", ProxyRoute::Models),
    ("/model/info", ProxyRoute::ModelInfo),
    ("/v1/model/info", ProxyRoute::ModelInfo),
    ("/health", ProxyRoute::Health),
    ("/health/liveliness", ProxyRoute::Liveliness),
    ("/health/liveness", ProxyRoute::Liveliness),
    ("/health/readiness", ProxyRoute::Readiness),
];

/// Path prefixes after which the path names a model, then an endpoint of
/// [`MODEL_PATH_ENDPOINTS`]: LiteLLM's `/engines/{model}/…` and `/openai/deployments/{model}/…`
/// (Azure's form, used by Azure clients). `{model}` may hold slashes.
pub const MODEL_CALL_PREFIXES: &[&str] = &["/engines/", "/openai/deployments/"];

/// Path prefixes after which the whole rest is a model id: `GET /models/{id}`.
pub const MODEL_ID_PREFIXES: &[&str] = &["/models/", "/v1/models/"];

/// The endpoints of the `/engines/{model}/…` and `/openai/deployments/{model}/…` forms, chat
/// first: `/x/chat/completions` also ends in `/completions`.
const MODEL_PATH_ENDPOINTS: &[(&str, Endpoint)] = &[
    ("/chat/completions", Endpoint::ChatCompletions),
    ("/completions", Endpoint::Completions),
    ("/embeddings", Endpoint::Embeddings),
];

impl ProxyRoute {
    /// The route for an exact path (no prefix, no trailing slash), if the proxy answers it.
    pub fn for_path(path: &str) -> Option<ProxyRoute> {
        ROUTES.iter().find(|(p, _)| *p == path).map(|(_, r)| *r)
    }

    /// The one method the route accepts; others get an OpenAI-shaped 405.
    pub fn method(self) -> Method {
        match self {
            ProxyRoute::Llm(_) => Method::POST,
            _ => Method::GET,
        }
    }

    /// Whether the route answers without auth (the health probes).
    pub fn is_public(self) -> bool {
        matches!(self, ProxyRoute::Liveliness | ProxyRoute::Readiness)
    }
}

/// The route for a path relative to the mount, and the model the path names (percent-decoded)
/// in the forms of [`MODEL_CALL_PREFIXES`] and [`MODEL_ID_PREFIXES`]; a model in the path wins over the body's, as in
/// LiteLLM.
pub(crate) fn match_path(path: &str) -> Option<(ProxyRoute, Option<String>)> {
    if let Some(route) = ProxyRoute::for_path(path) {
        return Some((route, None));
    }
    let named = |model: &str| (!model.is_empty()).then(|| percent_decoded(model));
    if let Some(id) = MODEL_ID_PREFIXES
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
    {
        return Some((ProxyRoute::Model, Some(named(id)?)));
    }
    let rest = MODEL_CALL_PREFIXES
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))?;
    let (model, endpoint) = MODEL_PATH_ENDPOINTS
        .iter()
        .find_map(|(suffix, endpoint)| Some((rest.strip_suffix(suffix)?, *endpoint)))?;
    Some((ProxyRoute::Llm(endpoint), Some(named(model)?)))
}

/// `%XX` escapes decoded (a model id with a slash may come as `%2F`); text that does not decode
/// to UTF-8 is kept as it came.
fn percent_decoded(text: &str) -> String {
    if !text.contains('%') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// One worker's proxy: the shared state and the worker's own HTTP actor. Built once per worker
/// (by [`configure`] or by the middleware's `new_transform`), on the worker's thread, and
/// cloned into every request's future: an `Rc`, because cloning an actix `Addr` allocates twice.
#[derive(Clone)]
pub(crate) struct Worker(Rc<WorkerParts>);

pub(crate) struct WorkerParts {
    shared: Arc<Shared>,
    http: Addr<HttpActor>,
}

impl Worker {
    /// Starts the worker's HTTP actor; must run on the worker's thread.
    pub(crate) fn start(shared: Arc<Shared>) -> Worker {
        let http = HttpActor::new(shared.clone()).start();
        if shared.background_health.as_ref().is_some_and(|b| b.claim()) {
            http.do_send(health::RunInBackground);
        }
        Worker(Rc::new(WorkerParts { shared, http }))
    }
}

impl std::ops::Deref for Worker {
    type Target = WorkerParts;

    fn deref(&self) -> &WorkerParts {
        &self.0
    }
}

/// Register every route of [`ROUTES`] on `cfg` and start this worker's HTTP actor. Call once per
/// worker (from the `HttpServer::new` factory), as `App::configure` does. The routes hold the
/// worker's state themselves: nothing is added to the host's app data.
pub fn configure(shared: Arc<Shared>, cfg: &mut web::ServiceConfig) {
    let worker = Worker::start(shared);
    for &(path, route) in ROUTES {
        let worker = worker.clone();
        cfg.service(
            web::resource(path).to(move |req: HttpRequest, payload: web::Payload| {
                let worker = worker.clone();
                async move { respond(&worker, route, None, &req, payload.into_inner()).await }
            }),
        );
    }
    // The forms that name a model in the path: everything under their prefixes comes here, and
    // what is not one of them is an OpenAI-shaped 404.
    for &prefix in MODEL_CALL_PREFIXES.iter().chain(MODEL_ID_PREFIXES) {
        let worker = worker.clone();
        cfg.service(web::resource(format!("{prefix}{{tail:.*}}")).to(
            move |req: HttpRequest, payload: web::Payload| {
                let worker = worker.clone();
                async move {
                    let tail = req.match_info().get("tail").unwrap_or_default();
                    match match_path(&[prefix, tail].concat()) {
                        Some((route, model)) => {
                            respond(&worker, route, model, &req, payload.into_inner()).await
                        }
                        None => not_found(req).await,
                    }
                }
            },
        ));
    }
}

/// Answer one request on a proxy path. The routes of [`configure`] and the middleware both call
/// this, so the two mount styles behave the same.
/// `path_model` is the model the path names ([`match_path`]); `completion_model` wins over it.
pub(crate) async fn respond(
    worker: &Worker,
    route: ProxyRoute,
    path_model: Option<String>,
    req: &HttpRequest,
    payload: dev::Payload,
) -> HttpResponse {
    if req.method() != route.method() {
        return method_not_allowed(req, route.method());
    }
    match route {
        ProxyRoute::Llm(endpoint) => llm_call(worker, endpoint, path_model, req, payload).await,
        ProxyRoute::Models => models(&worker.shared, req),
        ProxyRoute::Model => model(&worker.shared, req, path_model.as_deref().unwrap_or("")),
        ProxyRoute::ModelInfo => model_info(&worker.shared, req),
        ProxyRoute::Health => health(worker, req).await,
        ProxyRoute::Liveliness => liveliness(),
        ProxyRoute::Readiness => readiness(),
    }
}

/// OpenAI-shaped 404 for paths the proxy does not serve (the standalone server's default).
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ProxyError::NotFound(format!("Route not found: {} {}", req.method(), req.path()))
        .error_response()
}

/// 405 in OpenAI's error shape (`code` is the status, as in every other error body).
fn method_not_allowed(req: &HttpRequest, allowed: Method) -> HttpResponse {
    let mut body = ProxyError::invalid(format!(
        "Method {} is not allowed on {}",
        req.method(),
        req.path()
    ))
    .body();
    let status = StatusCode::METHOD_NOT_ALLOWED;
    body["error"]["code"] = Value::String(status.as_u16().to_string());
    HttpResponse::build(status)
        .insert_header((ALLOW, allowed.as_str()))
        .json(body)
}

async fn llm_call(
    worker: &Worker,
    endpoint: Endpoint,
    path_model: Option<String>,
    req: &HttpRequest,
    payload: dev::Payload,
) -> HttpResponse {
    let shared = &worker.shared;
    let call_id = req
        .headers()
        .get(X_LITELLM_CALL_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(new_call_id);
    let meta = CallMeta {
        call_id,
        ..CallMeta::default()
    };
    // LiteLLM's precedence: `general_settings.completion_model`, then the path's, then the body's.
    let forced_model = shared
        .config
        .general_settings
        .completion_model
        .clone()
        .filter(|m| !m.is_empty())
        .or(path_model);
    let prepared = async {
        shared.auth.check(req)?;
        let body = read_body(req, payload, shared.max_body_bytes).await?;
        let mut msg = parse_request(endpoint, body, forced_model, req, &meta.call_id)?;
        // `litellm_settings.model_alias_map` renames the requested model before routing.
        if let Some((_, target)) = shared
            .config
            .litellm_settings
            .model_alias_map
            .iter()
            .flatten()
            .find(|(alias, _)| *alias == msg.model)
        {
            msg.model = target.clone();
        }
        let settings = &shared.config.general_settings;
        if let Some(param) = client_side_override(&msg.body) {
            return Err(rejected_override(
                param,
                settings.allow_client_side_credentials == Some(true),
            ));
        }
        msg.client_headers = client_headers_for_upstream(req, settings);
        Ok(msg)
    }
    .await;
    let msg = match prepared {
        Ok(msg) => msg,
        Err(e) => {
            log::info!("{} {} refused: {}", req.method(), req.path(), e);
            let res = error_response(&e, &meta);
            req.extensions_mut().insert(meta);
            return res;
        }
    };
    let model = msg.model.clone();
    let result = match worker.http.send(msg).await {
        Ok(r) => r,
        Err(e) => {
            let e = ProxyError::Internal(format!("the worker's HTTP actor is unavailable: {e}"));
            log::error!("{e}");
            let res = error_response(&e, &meta);
            req.extensions_mut().insert(meta);
            return res;
        }
    };
    match result {
        Ok(Dispatched { body, meta }) => {
            log::debug!(
                "{} model={} deployment={} retries={} fallbacks={} in {:?}",
                req.path(),
                model,
                meta.model_id.as_deref().unwrap_or("-"),
                meta.attempted_retries,
                meta.attempted_fallbacks,
                meta.total_duration
            );
            let mut res = match body {
                Body::Json(bytes) => HttpResponse::Ok()
                    .insert_header((CONTENT_TYPE, APPLICATION_JSON))
                    .body(bytes),
                Body::Frames(frames) => sse_response().streaming(futures_util::stream::iter(
                    frames.into_iter().map(Ok::<_, Infallible>),
                )),
                Body::Live(ticket) => match ticket.redeem() {
                    Some(relay) => sse_response().streaming(relay),
                    None => {
                        let e = ProxyError::Internal(
                            "a stream was answered on another worker's thread".into(),
                        );
                        log::error!("{e}");
                        error_response(&e, &meta)
                    }
                },
            };
            add_litellm_headers(res.headers_mut(), &meta);
            req.extensions_mut().insert(meta);
            res
        }
        Err(failed) => {
            log::warn!(
                "{} model={} failed with {}: {}",
                req.path(),
                model,
                failed.error.status_code().as_u16(),
                failed.error
            );
            let res = error_response(&failed.error, &failed.meta);
            req.extensions_mut().insert(failed.meta);
            res
        }
    }
}

fn error_response(e: &ProxyError, meta: &CallMeta) -> HttpResponse {
    let mut res = e.error_response();
    add_litellm_headers(res.headers_mut(), meta);
    res
}

/// How many `x-litellm-*` headers a response can carry.
const LITELLM_HEADER_COUNT: usize = 11;

// Names as constants: `HeaderName::from_static` only folds to a constant in a const context;
// called on a runtime `&str` it validates the name again on every response.
const X_LITELLM_CALL_ID: HeaderName = HeaderName::from_static("x-litellm-call-id");
const X_LITELLM_VERSION: HeaderName = HeaderName::from_static("x-litellm-version");
const X_LITELLM_MODEL_ID: HeaderName = HeaderName::from_static("x-litellm-model-id");
const X_LITELLM_MODEL_GROUP: HeaderName = HeaderName::from_static("x-litellm-model-group");
const X_LITELLM_MODEL_API_BASE: HeaderName = HeaderName::from_static("x-litellm-model-api-base");
const X_LITELLM_ATTEMPTED_RETRIES: HeaderName =
    HeaderName::from_static("x-litellm-attempted-retries");
const X_LITELLM_ATTEMPTED_FALLBACKS: HeaderName =
    HeaderName::from_static("x-litellm-attempted-fallbacks");
const X_LITELLM_MAX_RETRIES: HeaderName = HeaderName::from_static("x-litellm-max-retries");
const X_LITELLM_RESPONSE_DURATION_MS: HeaderName =
    HeaderName::from_static("x-litellm-response-duration-ms");
const X_LITELLM_OVERHEAD_DURATION_MS: HeaderName =
    HeaderName::from_static("x-litellm-overhead-duration-ms");
const X_LITELLM_RESPONSE_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");
const LITELLM_VERSION: HeaderValue = HeaderValue::from_static(env!("CARGO_PKG_VERSION"));
// Values as constants too: `content_type("…")` copies and checks its text on every response.
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const TEXT_EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

/// LiteLLM's response headers (§2.3 of the reference): a header is left out when it has no
/// value.
fn add_litellm_headers(headers: &mut HeaderMap, meta: &CallMeta) {
    // Room for all of them at once: the map would otherwise grow (and rehash) twice.
    headers.reserve(LITELLM_HEADER_COUNT + meta.upstream_headers.len());
    let mut put = |name: HeaderName, value: Option<HeaderValue>| {
        if let Some(v) = value {
            headers.insert(name, v);
        }
    };
    let text = |s: &str| HeaderValue::from_str(s).ok();
    put(X_LITELLM_CALL_ID, text(&meta.call_id));
    put(X_LITELLM_VERSION, Some(LITELLM_VERSION));
    put(X_LITELLM_MODEL_ID, meta.model_id.as_deref().and_then(text));
    put(
        X_LITELLM_MODEL_GROUP,
        meta.model_group.as_deref().and_then(text),
    );
    put(
        X_LITELLM_MODEL_API_BASE,
        meta.api_base
            .as_deref()
            .and_then(|base| text(base.split('?').next().unwrap_or_default())),
    );
    put(
        X_LITELLM_ATTEMPTED_RETRIES,
        Some(count_value(meta.attempted_retries)),
    );
    put(
        X_LITELLM_ATTEMPTED_FALLBACKS,
        Some(count_value(meta.attempted_fallbacks)),
    );
    if meta.attempted_retries > 0 {
        put(X_LITELLM_MAX_RETRIES, Some(count_value(meta.max_retries)));
    }
    if meta.model_id.is_some() {
        put(
            X_LITELLM_RESPONSE_DURATION_MS,
            Some(millis_value(meta.upstream_duration)),
        );
        put(
            X_LITELLM_OVERHEAD_DURATION_MS,
            Some(millis_value(
                meta.total_duration.saturating_sub(meta.upstream_duration),
            )),
        );
    }
    if let Some(cost) = meta.response_cost {
        put(
            X_LITELLM_RESPONSE_COST,
            text(&crate::config::pyrepr::py_float_repr(cost)),
        );
    }
    for (name, value) in &meta.upstream_headers {
        headers.insert(name.clone(), value.clone());
    }
}

/// A retry or fallback count: almost always a single digit, which needs no allocation.
fn count_value(n: u32) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match DIGITS.get(n as usize) {
        Some(digit) => HeaderValue::from_static(digit),
        None => HeaderValue::from(n),
    }
}

/// A duration in milliseconds with three decimals (`12.345`), as LiteLLM writes them: digits
/// written by hand, as this runs twice on every response.
fn millis_value(d: Duration) -> HeaderValue {
    let micros = u64::try_from((d.as_nanos() + 500) / 1000).unwrap_or(u64::MAX);
    let mut buf = [0u8; 24];
    let mut at = buf.len();
    let mut put = |digit: u64| {
        at -= 1;
        buf[at] = b'0' + (digit % 10) as u8;
    };
    let fraction = micros % 1000;
    put(fraction);
    put(fraction / 10);
    put(fraction / 100);
    at -= 1;
    buf[at] = b'.';
    let mut whole = micros / 1000;
    loop {
        at -= 1;
        buf[at] = b'0' + (whole % 10) as u8;
        whole /= 10;
        if whole == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&buf[at..]).unwrap_or_else(|_| HeaderValue::from_static("0.000"))
}

/// A random UUID v4, as LiteLLM's call ids are.
fn new_call_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = *b"xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx";
    let mut bits = fastrand::u128(..);
    for c in id.iter_mut() {
        let (digit, used) = match *c {
            b'x' => (bits & 0xf, 4),
            b'y' => (0x8 | (bits & 0x3), 2),
            _ => continue,
        };
        *c = HEX[digit as usize];
        bits >>= used;
    }
    id.iter().map(|&b| b as char).collect()
}

/// Read the body, refusing it as soon as it is known to be over the limit.
async fn read_body(
    req: &HttpRequest,
    mut payload: dev::Payload,
    limit: usize,
) -> Result<Bytes, ProxyError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(size) = declared.filter(|s| *s > limit) {
        return Err(ProxyError::PayloadTooLarge { size, limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ProxyError::invalid(format!("could not read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ProxyError::PayloadTooLarge {
                size: body.len() + chunk.len(),
                limit,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parse and check the body; every field is kept for the upstream. Only the top level is read,
/// and only the fields the proxy needs are parsed (`messages` is checked for shape, not copied).
fn parse_request(
    endpoint: Endpoint,
    body: Bytes,
    path_model: Option<String>,
    req: &HttpRequest,
    call_id: &str,
) -> Result<Dispatch, ProxyError> {
    let body = RequestBody::parse(body).map_err(|e| {
        let message = if e.classify() == serde_json::error::Category::Data {
            "The request body must be a JSON object".to_string()
        } else {
            format!("Invalid JSON in the request body: {e}")
        };
        ProxyError::InvalidRequest {
            message,
            param: None,
        }
    })?;
    let model = match path_model
        .map(Value::String)
        .or_else(|| body.value("model"))
    {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(field_error(
                "model",
                "`model` is required: the model group to call (see /v1/models)",
            ))
        }
        Some(_) => return Err(field_error("model", "`model` must be a string")),
    };
    let (field, kind) = match endpoint {
        Endpoint::ChatCompletions => ("messages", "a non-empty list of messages"),
        Endpoint::Completions => ("prompt", "a string or a list"),
        Endpoint::Embeddings => ("input", "a string or a list"),
    };
    let raw = body.raw(field).unwrap_or_default();
    let ok = match endpoint {
        Endpoint::ChatCompletions => is_list_of_objects(raw),
        _ => raw.starts_with('"') || raw.starts_with('['),
    };
    if !ok {
        return Err(field_error(
            field,
            &format!("`{field}` is required and must be {kind}"),
        ));
    }
    let stream = match body.value("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(field_error("stream", "`stream` must be a boolean")),
    };
    if stream && endpoint == Endpoint::Embeddings {
        return Err(field_error("stream", "embeddings cannot be streamed"));
    }
    let overrides = overrides(&body, req)?;
    Ok(Dispatch {
        endpoint,
        model,
        body: Arc::new(body),
        stream,
        overrides,
        call_id: call_id.to_string(),
        client_headers: Vec::new(),
    })
}

/// Request fields that would point the upstream call somewhere else or sign it as someone else
/// (LiteLLM's banned request-body params): a client could send the deployment's key to its own
/// host with them.
const CLIENT_SIDE_OVERRIDES: &[&str] = &[
    "api_base",
    "base_url",
    "user_config",
    "model_list",
    "azure_ad_token",
    "vertex_credentials",
    "aws_bedrock_runtime_endpoint",
    "aws_sts_endpoint",
    "aws_web_identity_token",
    "aws_role_name",
    "aws_profile_name",
    "aws_session_name",
    "aws_external_id",
    "aws_session_tags",
];

/// The first of [`CLIENT_SIDE_OVERRIDES`] the body sets, at its top level or in `extra_body`.
/// One pass over the client's few fields: this runs on every request.
fn client_side_override(body: &RequestBody) -> Option<&'static str> {
    let banned = |key: &str| CLIENT_SIDE_OVERRIDES.iter().copied().find(|p| *p == key);
    let top = body
        .fields()
        .filter(|(_, raw)| *raw != "null")
        .find_map(|(key, _)| banned(key));
    top.or_else(|| match body.value("extra_body") {
        Some(Value::Object(extra)) => extra
            .iter()
            .filter(|(_, v)| !v.is_null())
            .find_map(|(key, _)| banned(key)),
        _ => None,
    })
}

/// LiteLLM refuses these unless `general_settings.allow_client_side_credentials` opts in; with
/// it, llm-proxy still refuses them, as it does not call client-chosen endpoints yet.
fn rejected_override(param: &str, allowed_by_config: bool) -> ProxyError {
    if allowed_by_config {
        return ProxyError::invalid(format!(
            "{param} in the request body is not supported yet by llm-proxy \
             (general_settings.allow_client_side_credentials); the deployment's own settings are used only"
        ));
    }
    ProxyError::Auth(format!(
        "Rejected Request: {param} is not allowed in request body. Clientside passthrough requires \
         explicit admin opt-in via `general_settings.allow_client_side_credentials = true` in your \
         proxy config.yaml."
    ))
}

/// The client's headers LiteLLM passes on when asked: every `x-*` header but the SDK's
/// `x-stainless-*` (and, unlike LiteLLM, the headers a proxy key can come in), plus
/// `anthropic-beta`, under `forward_client_headers_to_llm_api`; `OpenAI-Organization` under
/// `forward_openai_org_id`.
fn client_headers_for_upstream(
    req: &HttpRequest,
    settings: &crate::config::GeneralSettings,
) -> Vec<(String, String)> {
    let all = settings.forward_client_headers_to_llm_api == Some(true);
    let org = settings.forward_openai_org_id == Some(true);
    if !all && !org {
        return Vec::new();
    }
    let key_header = settings.litellm_key_header_name.as_deref();
    req.headers()
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            let forwardable = (name.starts_with("x-") && !name.starts_with("x-stainless"))
                || name.starts_with("anthropic-beta");
            (all && forwardable
                && !auth::is_key_header(name)
                && !key_header.is_some_and(|k| k.eq_ignore_ascii_case(name)))
                || (org && name == "openai-organization")
        })
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect()
}

fn field_error(param: &str, message: &str) -> ProxyError {
    ProxyError::InvalidRequest {
        message: message.to_string(),
        param: Some(param.to_string()),
    }
}

const X_LITELLM_TIMEOUT: HeaderName = HeaderName::from_static("x-litellm-timeout");
const X_LITELLM_STREAM_TIMEOUT: HeaderName = HeaderName::from_static("x-litellm-stream-timeout");
const X_LITELLM_NUM_RETRIES: HeaderName = HeaderName::from_static("x-litellm-num-retries");

/// Per-request routing settings from the body (LiteLLM's control fields) and from
/// `x-litellm-*` request headers.
fn overrides(body: &RequestBody, req: &HttpRequest) -> Result<Overrides, ProxyError> {
    let header = |name: HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let seconds = |field: &str, v: Option<&Value>| -> Result<Option<Duration>, ProxyError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let s = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|s: &f64| *s > 0.0)
                    .and_then(crate::config::seconds)
                    .ok_or_else(|| {
                        field_error(
                            field,
                            &format!("`{field}` must be a positive number of seconds"),
                        )
                    })?;
                Ok(Some(s))
            }
        }
    };
    let header_value = |name: HeaderName| header(name).map(|v| Value::String(v.to_string()));
    let timeout = match seconds("timeout", body.value("timeout").as_ref())? {
        Some(t) => Some(t),
        None => match seconds("request_timeout", body.value("request_timeout").as_ref())? {
            Some(t) => Some(t),
            None => seconds(
                "x-litellm-timeout",
                header_value(X_LITELLM_TIMEOUT).as_ref(),
            )?,
        },
    };
    let stream_timeout = match seconds("stream_timeout", body.value("stream_timeout").as_ref())? {
        Some(t) => Some(t),
        None => seconds(
            "x-litellm-stream-timeout",
            header_value(X_LITELLM_STREAM_TIMEOUT).as_ref(),
        )?,
    };
    let num_retries = match body.value("num_retries") {
        None | Some(Value::Null) => {
            header(X_LITELLM_NUM_RETRIES).and_then(|v| v.trim().parse().ok())
        }
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    field_error(
                        "num_retries",
                        "`num_retries` must be a non-negative integer",
                    )
                })?,
        ),
    };
    let fallbacks = match body.value("fallbacks") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    Value::Object(o) => o
                        .get("model")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| field_error("fallbacks", "each fallback needs a `model`")),
                    _ => Err(field_error(
                        "fallbacks",
                        "`fallbacks` must be a list of model names",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(field_error(
                "fallbacks",
                "`fallbacks` must be a list of model names",
            ))
        }
    };
    Ok(Overrides {
        timeout,
        stream_timeout,
        num_retries,
        fallbacks,
        disable_fallbacks: body
            .value("disable_fallbacks")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        drop_params: body.value("drop_params").and_then(|v| v.as_bool()),
        mock_timeout: body.value("mock_timeout").and_then(|v| v.as_bool()) == Some(true),
    })
}

/// The head of a streamed answer.
fn sse_response() -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::Ok();
    res.insert_header((CONTENT_TYPE, TEXT_EVENT_STREAM))
        .insert_header((CACHE_CONTROL, NO_CACHE));
    res
}

/// `GET /models/{id}`: a listed model group (or alias) as OpenAI's model object, `owned_by` the
/// provider of its first deployment, as LiteLLM answers.
fn model(shared: &Shared, req: &HttpRequest, id: &str) -> HttpResponse {
    if let Err(e) = shared.auth.check(req) {
        return e.error_response();
    }
    let listed = shared.router.model_names().iter().any(|name| name == id);
    let first = listed
        .then(|| shared.router.resolve(id))
        .flatten()
        .and_then(|resolved| {
            shared
                .config
                .deployments
                .iter()
                .find(|d| d.model_name == resolved.group)
        });
    let Some(deployment) = first else {
        return ProxyError::NotFound(format!(
            "The model `{id}` does not exist or is not accessible"
        ))
        .error_response();
    };
    let (prefix, rest) =
        crate::providers::provider_of(deployment.model(), &deployment.litellm_params);
    let owned_by = prefix
        .or_else(|| crate::providers::infer_provider(rest))
        .unwrap_or("openai");
    HttpResponse::Ok().json(
        json!({"id": id, "object": "model", "created": MODEL_CREATED_AT, "owned_by": owned_by}),
    )
}

fn models(shared: &Shared, req: &HttpRequest) -> HttpResponse {
    if let Err(e) = shared.auth.check(req) {
        return e.error_response();
    }
    let data: Vec<Value> = shared
        .router
        .model_names()
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": MODEL_CREATED_AT, "owned_by": "openai"}))
        .collect();
    HttpResponse::Ok().json(json!({"data": data, "object": "list"}))
}

/// One entry per deployment (and per non-hidden alias of its group), secrets masked.
fn model_info(shared: &Shared, req: &HttpRequest) -> HttpResponse {
    if let Err(e) = shared.auth.check(req) {
        return e.error_response();
    }
    let wanted =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("litellm_model_id").cloned());
    let entry = |name: &str, d: &crate::config::DeploymentConfig| {
        let mut info = d.model_info.clone();
        info.insert("id".into(), Value::String(d.id.clone()));
        info.entry("db_model").or_insert(Value::Bool(false));
        json!({"model_name": name, "litellm_params": d.masked_litellm_params(), "model_info": info})
    };
    let deployments = &shared.config.deployments;
    let mut data = Vec::new();
    for alias in shared
        .config
        .router_settings
        .model_group_alias
        .iter()
        .flatten()
    {
        if alias.hidden {
            continue;
        }
        for d in deployments.iter().filter(|d| d.model_name == alias.model) {
            data.push((d.id.as_str(), entry(&alias.alias, d)));
        }
    }
    for d in deployments {
        data.push((d.id.as_str(), entry(&d.model_name, d)));
    }
    if let Some(id) = wanted {
        data.retain(|(d, _)| *d == id);
        if data.is_empty() {
            return ProxyError::invalid(format!("Model id = {id} not found on litellm proxy"))
                .error_response();
        }
    }
    let data: Vec<Value> = data.into_iter().map(|(_, v)| v).collect();
    HttpResponse::Ok().json(json!({"data": data}))
}

/// `GET /health`: the deployments of `?model=` (a group or alias), of `?model_id=`, or all of
/// them, checked by this worker's HTTP actor ([`health`]).
async fn health(worker: &Worker, req: &HttpRequest) -> HttpResponse {
    let shared = &worker.shared;
    if let Err(e) = shared.auth.check(req) {
        return e.error_response();
    }
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .unwrap_or_default();
    let deployments = &shared.config.deployments;
    let ids: Vec<String> = if let Some(id) = query.get("model_id") {
        deployments
            .iter()
            .filter(|d| &d.id == id)
            .map(|d| d.id.clone())
            .collect()
    } else if let Some(model) = query.get("model") {
        match shared.router.resolve(model) {
            Some(resolved) => deployments
                .iter()
                .filter(|d| match &resolved.pinned {
                    Some(pinned) => *d.id == **pinned,
                    None => d.model_name == resolved.group,
                })
                .map(|d| d.id.clone())
                .collect(),
            None => Vec::new(),
        }
    } else {
        deployments.iter().map(|d| d.id.clone()).collect()
    };
    let targeted = query.contains_key("model") || query.contains_key("model_id");
    let report = match shared.background_health.as_ref().and_then(|b| b.latest()) {
        Some(latest) => Ok(latest.only(&ids)),
        // Checked now: no background checks, or their first round is still running.
        None => {
            worker
                .http
                .send(health::HealthCheck { deployments: ids })
                .await
        }
    };
    match report {
        // A targeted check with nothing healthy is a 503, so monitors can go by the status.
        Ok(report) if targeted && report.healthy.is_empty() => {
            HttpResponse::ServiceUnavailable().json(report.to_json())
        }
        Ok(report) => HttpResponse::Ok().json(report.to_json()),
        Err(e) => {
            let e = ProxyError::Internal(format!("the worker's HTTP actor is unavailable: {e}"));
            log::error!("{e}");
            e.error_response()
        }
    }
}

fn liveliness() -> HttpResponse {
    HttpResponse::Ok().json("I'm alive!")
}

fn readiness() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "healthy",
        "db": "Not connected",
        "cache": null,
        "litellm_version": env!("CARGO_PKG_VERSION"),
        "success_callbacks": [],
        "use_aiohttp_transport": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn parse(endpoint: Endpoint, body: &str) -> Result<Dispatch, ProxyError> {
        let req = TestRequest::default().to_http_request();
        parse_request(
            endpoint,
            Bytes::copy_from_slice(body.as_bytes()),
            None,
            &req,
            "id",
        )
    }

    #[test]
    fn paths_that_name_a_model_are_matched_and_decoded() {
        let llm = |e, m: &str| Some((ProxyRoute::Llm(e), Some(m.to_string())));
        assert_eq!(
            match_path("/v1/chat/completions"),
            Some((ProxyRoute::Llm(Endpoint::ChatCompletions), None))
        );
        assert_eq!(
            match_path("/openai/deployments/gpt-4o/chat/completions"),
            llm(Endpoint::ChatCompletions, "gpt-4o")
        );
        assert_eq!(
            match_path("/engines/azure/gpt-4o/completions"),
            llm(Endpoint::Completions, "azure/gpt-4o")
        );
        assert_eq!(
            match_path("/openai/deployments/team%2Fembed/embeddings"),
            llm(Endpoint::Embeddings, "team/embed")
        );
        assert_eq!(
            match_path("/v1/models/a%2Fb%zz"),
            Some((ProxyRoute::Model, Some("a/b%zz".to_string())))
        );
        for unmatched in [
            "/engines//chat/completions",
            "/engines/m/chat",
            "/openai/deployments/m",
            "/models/",
            "/v1/models/",
            "/engine/m/completions",
        ] {
            assert_eq!(match_path(unmatched), None, "{unmatched}");
        }
        // An escape that is not UTF-8 leaves the text as it came.
        assert_eq!(percent_decoded("x%FFy"), "x%FFy");
    }

    #[test]
    fn counts_are_decimal() {
        for n in [0, 7, 9, 10, 123, u32::MAX] {
            assert_eq!(count_value(n), n.to_string().as_str());
        }
    }

    #[test]
    fn durations_are_milliseconds_with_three_decimals() {
        let value = |nanos| millis_value(Duration::from_nanos(nanos));
        assert_eq!(value(0), "0.000");
        assert_eq!(value(1_234_567), "1.235");
        assert_eq!(value(999_499), "0.999");
        assert_eq!(value(12_000_000_000), "12000.000");
        assert_eq!(millis_value(Duration::MAX), "18446744073709551.615");
    }

    #[test]
    fn malformed_bodies_are_400s_naming_the_problem() {
        let cases = [
            ("{", None),
            ("[]", None),
            (
                r#"{"messages":[{"role":"user","content":"hi"}]}"#,
                Some("model"),
            ),
            (r#"{"model":7,"messages":[]}"#, Some("model")),
            (r#"{"model":"m"}"#, Some("messages")),
            (r#"{"model":"m","messages":"hi"}"#, Some("messages")),
            (r#"{"model":"m","messages":[]}"#, Some("messages")),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
                Some("stream"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"timeout":-1}"#,
                Some("timeout"),
            ),
        ];
        for (body, param) in cases {
            let e = parse(Endpoint::ChatCompletions, body)
                .err()
                .unwrap_or_else(|| panic!("accepted {body}"));
            assert_eq!(e.status_code().as_u16(), 400, "{body}");
            assert_eq!(e.body()["error"]["param"].as_str(), param, "{body}");
        }
    }

    #[test]
    fn every_field_is_kept_and_overrides_are_read() {
        let d = parse(
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"zz_custom":{"a":1},"stream":true,"num_retries":1,"timeout":2.5,"fallbacks":["b",{"model":"c"}]}"#,
        )
        .unwrap();
        assert!(d.stream);
        assert_eq!(d.body.value("zz_custom"), Some(json!({"a": 1})));
        assert_eq!(d.overrides.num_retries, Some(1));
        assert_eq!(d.overrides.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(
            d.overrides.fallbacks,
            Some(vec!["b".to_string(), "c".to_string()])
        );
    }

    #[test]
    fn embeddings_and_completions_need_their_input() {
        assert!(parse(Endpoint::Embeddings, r#"{"model":"m","input":"hi"}"#).is_ok());
        assert!(parse(Endpoint::Embeddings, r#"{"model":"m"}"#).is_err());
        assert!(parse(Endpoint::Completions, r#"{"model":"m","prompt":["a"]}"#).is_ok());
        assert!(parse(
            Endpoint::Embeddings,
            r#"{"model":"m","input":"hi","stream":true}"#
        )
        .is_err());
    }

    #[test]
    fn call_ids_look_like_uuids() {
        for _ in 0..64 {
            let id = new_call_id();
            assert_eq!(id.len(), 36);
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(parts.concat().bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(id.as_bytes()[14], b'4');
            assert!(b"89ab".contains(&id.as_bytes()[19]), "{id}");
        }
        assert_ne!(new_call_id(), new_call_id());
    }
}
