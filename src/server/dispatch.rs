//! The per-worker HTTP actor. It owns the worker's upstream transport (and so its connection
//! pools), takes a parsed request, walks it through the router's retry and fallback loop, and
//! performs each upstream attempt on this worker's thread. The Deployment and ModelGroup actors only make
//! decisions; the I/O stays here.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::{Actor, AsyncContext, Context, Handler, Message, ResponseFuture};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

use bytes::Bytes;
use llm_proxy_actors::{Attempt, ErrorClass, Reservation, RouteErrorKind, RouteRequest};

use super::error::ProxyError;
use super::health::{self, HealthCheck, HealthReport, RunInBackground};
use super::state::Shared;
pub use super::stream::StreamUsage;
use super::stream::{sse_error_frame, sse_frame, Relay, StreamTicket, DONE_FRAME};
use super::upstream;
use crate::providers::mock::{self, MockOutcome};
use crate::providers::{
    params, Endpoint, ParsedResponse, ProviderAdapter, ProviderError, RequestBody, RequestContext,
    StreamContext, StreamEvent, UpstreamRequest, UpstreamResponse, Usage,
};

/// A request, parsed and authorised, ready for routing.
#[derive(Debug)]
pub struct Dispatch {
    pub endpoint: Endpoint,
    pub model: String,
    pub body: Arc<RequestBody>,
    pub stream: bool,
    pub overrides: Overrides,
    pub call_id: String,
    /// Client headers for the upstream (`general_settings.forward_client_headers_to_llm_api`,
    /// `forward_openai_org_id`), lowercase names; under the extra headers.
    pub client_headers: Vec<(String, String)>,
}

/// Per-request settings that come from the body or from `x-litellm-*` request headers.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub timeout: Option<Duration>,
    pub stream_timeout: Option<Duration>,
    pub num_retries: Option<u32>,
    pub fallbacks: Option<Vec<String>>,
    pub disable_fallbacks: bool,
    pub drop_params: Option<bool>,
    /// LiteLLM's `mock_timeout: true`: each attempt waits out its timeout, then times out.
    pub mock_timeout: bool,
}

/// What the router and the upstream did, for response headers and the host's logging.
#[derive(Debug, Clone, Default)]
pub struct CallMeta {
    pub call_id: String,
    pub model_id: Option<String>,
    pub model_group: Option<String>,
    pub api_base: Option<String>,
    pub attempted_retries: u32,
    pub attempted_fallbacks: u32,
    pub max_retries: u32,
    /// Upstream response headers worth forwarding (`x-ratelimit-*` and `llm_provider-*`).
    pub upstream_headers: Vec<(HeaderName, HeaderValue)>,
    /// Time spent in upstream calls for the answering attempt.
    pub upstream_duration: Duration,
    /// Time from dispatch to the answer (or to the first chunk of a stream).
    pub total_duration: Duration,
    /// Tokens of a non-stream answer (or of a mocked stream).
    pub usage: Option<Usage>,
    /// USD, from the answering deployment's custom pricing and `usage`, when both are known.
    pub response_cost: Option<f64>,
    /// Tokens of a live stream, known once it has ended: keep the handle and read it after the
    /// response body is done.
    pub stream_usage: Option<StreamUsage>,
}

/// The answer for the client.
pub enum Body {
    Json(Bytes),
    /// A stream known whole (a mocked one): SSE frames, ending with `data: [DONE]\n\n`.
    Frames(Vec<Bytes>),
    /// A live upstream stream, relayed by the response body (see [`StreamTicket`]).
    Live(StreamTicket),
}

pub struct Dispatched {
    pub body: Body,
    pub meta: CallMeta,
}

pub struct DispatchFailed {
    pub error: ProxyError,
    pub meta: CallMeta,
}

impl Message for Dispatch {
    type Result = Result<Dispatched, DispatchFailed>;
}

/// One per actix-web worker, started in the App factory.
pub struct HttpActor {
    shared: Arc<Shared>,
    client: upstream::Transport,
}

impl HttpActor {
    pub fn new(shared: Arc<Shared>) -> HttpActor {
        let client = upstream::Transport::default();
        if shared.may_use_tls() {
            client.prepare_tls();
        }
        HttpActor { shared, client }
    }
}

impl Actor for HttpActor {
    type Context = Context<Self>;
}

impl Handler<Dispatch> for HttpActor {
    type Result = ResponseFuture<Result<Dispatched, DispatchFailed>>;

    fn handle(&mut self, msg: Dispatch, _: &mut Self::Context) -> Self::Result {
        let shared = self.shared.clone();
        let client = self.client.clone();
        Box::pin(dispatch(shared, client, msg))
    }
}

impl Handler<RunInBackground> for HttpActor {
    type Result = ();

    fn handle(&mut self, _: RunInBackground, ctx: &mut Self::Context) {
        let checks = health::background(self.shared.clone(), self.client.clone());
        ctx.spawn(actix::fut::wrap_future(checks));
    }
}

impl Handler<HealthCheck> for HttpActor {
    type Result = ResponseFuture<HealthReport>;

    fn handle(&mut self, msg: HealthCheck, _: &mut Self::Context) -> Self::Result {
        Box::pin(health::check(
            self.shared.clone(),
            self.client.clone(),
            msg.deployments,
        ))
    }
}

/// What one successful attempt produced.
struct Answer {
    body: Body,
    api_base: Option<String>,
    upstream_headers: Vec<(HeaderName, HeaderValue)>,
    upstream_duration: Duration,
    usage: Option<Usage>,
    stream_usage: Option<StreamUsage>,
}

async fn dispatch(
    shared: Arc<Shared>,
    client: upstream::Transport,
    msg: Dispatch,
) -> Result<Dispatched, DispatchFailed> {
    let started = Instant::now();
    let mut meta = CallMeta {
        call_id: msg.call_id.clone(),
        ..CallMeta::default()
    };
    if shared.router.resolve(&msg.model).is_none() {
        return Err(DispatchFailed {
            error: ProxyError::UnknownModel {
                route: msg.endpoint.route(),
                model: msg.model.clone(),
                available: shared.router.model_names(),
            },
            meta,
        });
    }
    let mut route = RouteRequest {
        model: msg.model.clone(),
        input_tokens: estimate_input_tokens(&msg.body),
        stream: msg.stream,
        num_retries: msg.overrides.num_retries,
        fallbacks: msg.overrides.fallbacks.clone(),
        disable_fallbacks: msg.overrides.disable_fallbacks,
    };
    // LiteLLM's `mock_testing_*` flags: the requested group fails as asked, without a call and
    // without a retry or a cooldown, and its fallbacks for that failure answer.
    let mocked = mock_testing_failure(&msg.body);
    if let Some(class) = mocked {
        let group = shared
            .router
            .resolve(&msg.model)
            .map_or_else(|| msg.model.clone(), |r| r.group);
        let chain = match &msg.overrides.fallbacks {
            _ if msg.overrides.disable_fallbacks => Vec::new(),
            Some(own) => own.clone(),
            None => llm_proxy_actors::fallback_groups(
                shared.router.settings(),
                &msg.model,
                &group,
                Some(class),
            ),
        };
        let Some((first, rest)) = chain.split_first() else {
            meta.model_group = Some(msg.model.clone());
            return Err(DispatchFailed {
                error: ProxyError::Provider(mock_testing_error(class, &msg.model, &chain)),
                meta,
            });
        };
        route.model = first.clone();
        route.fallbacks = Some(rest.to_vec());
    }
    let request = Rc::new(msg);
    let result = shared
        .router
        .execute(&route, |attempt| {
            // Boxed: an attempt's state is ~4.6 KB, and a future is moved by copying all of it;
            // inline, it made this future 6.7 KB, copied again into the actor's answer.
            Box::pin(attempt_once(
                shared.clone(),
                client.clone(),
                request.clone(),
                attempt,
            ))
        })
        .await;
    meta.total_duration = started.elapsed();
    match result {
        Ok(routed) => {
            let answer = routed.value;
            // `String::from`, not `to_string`: an `Arc<str>`'s `Display` goes through the
            // formatter's padding, ~500 instructions on every response.
            meta.model_id = Some(String::from(&*routed.deployment));
            // LiteLLM names the requested group (the alias, if one was used) unless a fallback
            // group answered.
            meta.model_group = Some(if routed.attempted_fallbacks == 0 && mocked.is_none() {
                route.model.clone()
            } else {
                routed.model_group
            });
            meta.attempted_retries = routed.attempted_retries;
            // A mocked failure of the requested group counts as the first fallback.
            meta.attempted_fallbacks = routed.attempted_fallbacks + u32::from(mocked.is_some());
            meta.max_retries = routed.max_retries;
            meta.api_base = answer.api_base;
            meta.upstream_headers = answer.upstream_headers;
            meta.upstream_duration = answer.upstream_duration;
            meta.response_cost = answer.usage.filter(|_| shared.priced).and_then(|usage| {
                let (input, output) = shared.deployment(&routed.deployment)?.prices?;
                Some(usage.prompt_tokens as f64 * input + usage.completion_tokens as f64 * output)
            });
            meta.usage = answer.usage;
            meta.stream_usage = answer.stream_usage;
            Ok(Dispatched {
                body: answer.body,
                meta,
            })
        }
        Err(e) => {
            meta.model_id = e.last_deployment.as_deref().map(String::from);
            meta.model_group = Some(e.model_group.clone());
            meta.attempted_retries = e.attempted_retries;
            meta.attempted_fallbacks = e.attempted_fallbacks;
            let error = match e.kind {
                RouteErrorKind::Upstream(mut pe) => {
                    let tried = if e.fallbacks_tried.is_empty() {
                        "None".to_string()
                    } else {
                        format!("[{}]", e.fallbacks_tried.join(", "))
                    };
                    pe.message = format!(
                        "{}. Received Model Group={}\nAvailable Model Group Fallbacks={}",
                        pe.message, e.model_group, tried
                    );
                    ProxyError::Provider(pe)
                }
                RouteErrorKind::NoDeployments(nd) => ProxyError::NoDeployments {
                    message: nd.message,
                    retry_after: nd.retry_after,
                },
            };
            Err(DispatchFailed { error, meta })
        }
    }
}

/// The failure a request's `mock_testing_*` flag asks for, in LiteLLM's order: fallbacks,
/// context window, content policy (each `true` or a true string), then the rate limit (`true`).
fn mock_testing_failure(body: &RequestBody) -> Option<ErrorClass> {
    // One pass over the client's few fields first: this runs on every request.
    if !body.keys().any(|key| key.starts_with("mock_testing_")) {
        return None;
    }
    let set = |flag: &str, strings: bool| match body.value(flag) {
        Some(serde_json::Value::Bool(b)) => b,
        Some(serde_json::Value::String(s)) if strings => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    };
    [
        ("mock_testing_fallbacks", ErrorClass::ServerError),
        (
            "mock_testing_context_fallbacks",
            ErrorClass::ContextWindowExceeded,
        ),
        (
            "mock_testing_content_policy_fallbacks",
            ErrorClass::ContentPolicy,
        ),
    ]
    .into_iter()
    .find(|(flag, _)| set(flag, true))
    .map(|(_, class)| class)
    .or_else(|| set("mock_testing_rate_limit_error", false).then_some(ErrorClass::RateLimit))
}

/// LiteLLM's mock exception for a requested group with nowhere to fall back to.
fn mock_testing_error(class: ErrorClass, model: &str, fallbacks: &[String]) -> ProviderError {
    let status = match class {
        ErrorClass::ServerError => 500,
        ErrorClass::RateLimit => 429,
        _ => 400,
    };
    let purpose = match class {
        ErrorClass::RateLimit => "to trigger a rate limit error.".to_string(),
        _ if fallbacks.is_empty() => "to trigger a fallback. Fallbacks=None".to_string(),
        _ => format!("to trigger a fallback. Fallbacks={fallbacks:?}"),
    };
    let mut error = ProviderError::new(
        class,
        status,
        format!(
            "litellm.{}: This is a mock exception for model={model}, {purpose}",
            crate::providers::error::class_name(class, status)
        ),
    );
    if class == ErrorClass::RateLimit {
        error.error_type = Some("throttling_error".to_string());
    }
    error
}

/// Rough prompt size for tpm checks before the upstream has counted: four bytes of the prompt's
/// JSON a token (the JSON is not parsed for this).
fn estimate_input_tokens(body: &RequestBody) -> u64 {
    let bytes: usize = ["messages", "prompt", "input"]
        .iter()
        .map(|k| body.raw_len(k))
        .sum();
    (bytes as u64).div_ceil(4)
}

/// One upstream call on the deployment the router reserved.
async fn attempt_once(
    shared: Arc<Shared>,
    client: upstream::Transport,
    request: Rc<Dispatch>,
    attempt: Attempt,
) -> Result<Answer, ProviderError> {
    if request.overrides.mock_timeout {
        return mock_timeout(&shared, &request, &attempt.deployment).await;
    }
    let call = match prepare_call(
        &shared,
        &request,
        &attempt.deployment,
        attempt.upstream_model.as_deref(),
    )? {
        Prepared::Mock(outcome) => return mock_answer(outcome, &attempt.reservation),
        Prepared::Upstream(call) => call,
    };
    let UpstreamCall {
        adapter,
        request: upstream_request,
        timeout,
        stream_ctx,
    } = *call;
    let label = adapter.label();
    let started = Instant::now();
    let (mut reply, body) = exchange(
        &client,
        upstream_request,
        label,
        request.stream,
        started,
        timeout,
    )
    .await?;
    let forwarded = forwardable_headers(reply.headers());
    if let Some(body) = body {
        let parsed = read_answer(&*adapter, request.endpoint, &reply, &body, &stream_ctx)?;
        let usage = parsed.usage.unwrap_or_default();
        attempt
            .reservation
            .succeed(usage.prompt_tokens, usage.completion_tokens);
        return Ok(Answer {
            body: Body::Json(parsed.body),
            api_base: adapter.api_base().map(str::to_string),
            upstream_headers: forwarded,
            upstream_duration: started.elapsed(),
            usage: parsed.usage,
            stream_usage: None,
        });
    }
    // A stream: read until the first event so that an upstream that fails before its first
    // chunk is still retried or falls back; after that the client owns the stream.
    let mut decoder = adapter.stream_decoder(request.endpoint, &stream_ctx);
    let mut pending = Vec::new();
    loop {
        match with_timeout(timeout, label, async {
            Ok(upstream::next_chunk(&mut reply, label).await)
        })
        .await?
        {
            Some(Ok(bytes)) => decoder.feed(&bytes, &mut pending),
            Some(Err(e)) => return Err(e),
            None => {
                decoder.finish(&mut pending);
                if pending.is_empty() {
                    return Err(ProviderError::connection(
                        label,
                        "the upstream closed the stream before sending anything",
                    ));
                }
            }
        }
        if let Some(first) = pending.iter().find(|e| !matches!(e, StreamEvent::Usage(_))) {
            if let StreamEvent::Error(e) = first {
                return Err(e.clone());
            }
            break;
        }
    }
    attempt.reservation.first_token();
    let stream_usage = StreamUsage::default();
    let relay = Relay::new(
        reply,
        decoder,
        attempt.reservation.clone(),
        pending,
        timeout,
        label,
        stream_usage.clone(),
    );
    Ok(Answer {
        body: Body::Live(StreamTicket::park(relay)),
        api_base: adapter.api_base().map(str::to_string),
        upstream_headers: forwarded,
        upstream_duration: started.elapsed(),
        usage: None,
        stream_usage: Some(stream_usage),
    })
}

/// `mock_timeout`: the attempt's whole timeout spent, then LiteLLM's timeout error.
async fn mock_timeout(
    shared: &Shared,
    request: &Dispatch,
    deployment_id: &str,
) -> Result<Answer, ProviderError> {
    let deployment = shared.deployment_to_call(deployment_id)?;
    let timeout = shared.timeout_for(&deployment, &request.overrides, request.stream);
    tokio::time::sleep(timeout).await;
    let label = shared
        .adapter(&deployment, None)
        .map_or("LiteLLM", |adapter| adapter.label());
    Err(ProviderError::timeout(label, timeout))
}

/// A call made ready for one deployment: its mocked answer, or the request for its upstream.
pub(crate) enum Prepared {
    Mock(MockOutcome),
    /// Boxed: the request and its context are large, and this value is moved on every call.
    Upstream(Box<UpstreamCall>),
}

/// The request for an upstream, with what reading its answer needs.
pub(crate) struct UpstreamCall {
    pub(crate) adapter: Arc<dyn ProviderAdapter>,
    pub(crate) request: UpstreamRequest,
    pub(crate) timeout: Duration,
    pub(crate) stream_ctx: StreamContext,
}

/// The deployment's defaults merged into the request, then its `mock_response`, or its
/// adapter's request for the upstream. `upstream_model` is a wildcard's resolved model.
pub(crate) fn prepare_call(
    shared: &Shared,
    request: &Dispatch,
    deployment_id: &str,
    upstream_model: Option<&str>,
) -> Result<Prepared, ProviderError> {
    let deployment = shared.deployment_to_call(deployment_id)?;
    let model_for_upstream = upstream_model.unwrap_or(&deployment.model);
    // One wall-clock read for the attempt: `created` of translated answers and the signing time.
    let now = SystemTime::now();
    // The request's own value wins, even a null one (as LiteLLM's kwargs override the
    // deployment's params).
    let mock = match request.body.value("mock_response") {
        Some(v) => Some(v).filter(|v| !v.is_null()),
        None => deployment.mock_response.clone(),
    };
    let mut prepared = params::prepare_with(request.body.clone(), &deployment.defaults);
    let stream_ctx = StreamContext {
        id: ["chatcmpl-", &request.call_id].concat(),
        created: now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        model: crate::providers::split_provider(model_for_upstream)
            .1
            .to_string(),
        include_usage: prepared.include_usage,
    };
    if let Some(mock) = mock {
        return Ok(Prepared::Mock(mock::respond(
            request.endpoint,
            &mock,
            model_for_upstream,
            &prepared,
            &stream_ctx.id,
            stream_ctx.created,
        )));
    }
    if let Some(var) = deployment.config.missing_env.first() {
        return Err(ProviderError::missing_env(var, deployment.config.model()));
    }
    let adapter = shared.adapter(&deployment, upstream_model)?;
    let drop_params =
        request.overrides.drop_params.unwrap_or(shared.drop_params) || deployment.drop_params;
    let ctx = RequestContext { now, drop_params };
    prepared.stream = request.stream;
    if !request.client_headers.is_empty() {
        // The extra headers come last and win on a clash (the upstream client gives them the
        // last word in LiteLLM too).
        let forwarded = request
            .client_headers
            .iter()
            .filter(|(name, _)| name != "openai-organization" || adapter.sends_organization())
            .cloned();
        prepared.extra_headers = forwarded
            .chain(std::mem::take(&mut prepared.extra_headers))
            .collect();
    }
    let upstream_request = adapter.build_request(request.endpoint, &prepared, &ctx)?;
    Ok(Prepared::Upstream(Box::new(UpstreamCall {
        timeout: shared.timeout_for(&deployment, &request.overrides, request.stream),
        adapter,
        request: upstream_request,
        stream_ctx,
    })))
}

/// Sends the request and reads the answer's body (unless it is a stream that started well),
/// all under one deadline counted from `started`.
pub(crate) async fn exchange(
    client: &upstream::Transport,
    request: UpstreamRequest,
    label: &str,
    stream: bool,
    started: Instant,
    timeout: Duration,
) -> Result<(upstream::Reply, Option<Bytes>), ProviderError> {
    // Boxed, so that the attempt's future does not carry the exchange's state, which every move
    // of the attempt copies.
    let exchange = Box::pin(async {
        let mut reply = upstream::send(client, request, label).await?;
        let body = if !stream || reply.status().as_u16() >= 400 {
            Some(upstream::read_body(&mut reply, label).await?)
        } else {
            None
        };
        Ok((reply, body))
    });
    with_deadline(started, timeout, label, exchange).await
}

/// A whole answer: the adapter's error for a failure status, else the answer in OpenAI's shape.
pub(crate) fn read_answer(
    adapter: &dyn ProviderAdapter,
    endpoint: Endpoint,
    reply: &upstream::Reply,
    body: &Bytes,
    stream_ctx: &StreamContext,
) -> Result<ParsedResponse, ProviderError> {
    let response = UpstreamResponse {
        status: reply.status().as_u16(),
        headers: reply.headers(),
        body,
    };
    if response.status >= 400 {
        let mut e = adapter.parse_error(&response);
        if e.retry_after.is_none() {
            e.retry_after = crate::providers::retry_after(response.headers);
        }
        return Err(e);
    }
    adapter.parse_response(endpoint, &response, stream_ctx)
}

async fn with_timeout<T>(
    timeout: Duration,
    label: &str,
    fut: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    with_deadline(Instant::now(), timeout, label, fut).await
}

/// [`with_timeout`] counted from `start`, a clock reading the caller already has.
async fn with_deadline<T>(
    start: Instant,
    timeout: Duration,
    label: &str,
    fut: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    let deadline = tokio::time::Instant::from_std(start) + timeout;
    tokio::time::timeout_at(deadline, fut)
        .await
        .map_err(|_| ProviderError::timeout(label, timeout))?
}

/// Upstream headers LiteLLM passes on: `x-ratelimit-*` as they are, and every header again as
/// `llm_provider-<name>`. Hop-by-hop and framing headers are not forwarded.
fn forwardable_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    const SKIP: &[&str] = &[
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "content-encoding",
    ];
    let mut out = Vec::with_capacity(headers.len() * 2);
    for (name, value) in headers {
        if SKIP.contains(&name.as_str()) {
            continue;
        }
        if name.as_str().starts_with("x-ratelimit-") {
            out.push((name.clone(), value.clone()));
        }
        if let Some(prefixed) = provider_header_name(name) {
            out.push((prefixed, value.clone()));
        }
    }
    out
}

/// `llm_provider-<name>`, built once per name and worker: an upstream sends the same few
/// headers on every answer. The cache is bounded; past it, names are built each time.
fn provider_header_name(name: &HeaderName) -> Option<HeaderName> {
    const CACHED_NAMES: usize = 128;
    thread_local! {
        static PREFIXED: RefCell<foldhash::HashMap<HeaderName, HeaderName>> =
            RefCell::new(foldhash::HashMap::default());
    }
    PREFIXED.with(|cache| {
        if let Some(found) = cache.borrow().get(name) {
            return Some(found.clone());
        }
        let built = HeaderName::from_bytes(format!("llm_provider-{name}").as_bytes()).ok()?;
        let mut cache = cache.borrow_mut();
        if cache.len() < CACHED_NAMES {
            cache.insert(name.clone(), built.clone());
        }
        Some(built)
    })
}

/// Answer from `mock_response`, with the same bookkeeping as an upstream call.
fn mock_answer(outcome: MockOutcome, reservation: &Reservation) -> Result<Answer, ProviderError> {
    let answer = |body, usage| Answer {
        body,
        api_base: None,
        upstream_headers: Vec::new(),
        upstream_duration: Duration::ZERO,
        usage,
        stream_usage: None,
    };
    let frames = |chunks: Vec<Bytes>, last: Vec<Bytes>| {
        chunks.iter().map(|c| sse_frame(c)).chain(last).collect()
    };
    match outcome {
        MockOutcome::Response { body, usage } => {
            reservation.succeed(usage.prompt_tokens, usage.completion_tokens);
            Ok(answer(Body::Json(body), Some(usage)))
        }
        MockOutcome::Stream { chunks, usage } => {
            reservation.first_token();
            reservation.succeed(usage.prompt_tokens, usage.completion_tokens);
            let frames = frames(chunks, vec![Bytes::from_static(DONE_FRAME)]);
            Ok(answer(Body::Frames(frames), Some(usage)))
        }
        MockOutcome::StreamError { chunks, error } if chunks.is_empty() => Err(error),
        MockOutcome::StreamError { chunks, error } => {
            reservation.first_token();
            reservation.fail(error.class, error.status, error.retry_after);
            let frames = frames(
                chunks,
                vec![sse_error_frame(&error), Bytes::from_static(DONE_FRAME)],
            );
            Ok(answer(Body::Frames(frames), None))
        }
        MockOutcome::Error(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_tokens_are_estimated_from_the_prompt_bytes() {
        let body = RequestBody::parse(Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"user","content":"12345678"}]}"#,
        ))
        .unwrap();
        assert_eq!(estimate_input_tokens(&body), 10);
    }

    #[test]
    fn upstream_headers_are_forwarded_as_litellm_does() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-ratelimit-remaining-requests", "9"),
            ("x-request-id", "abc"),
            ("content-length", "10"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let mut got: Vec<(String, String)> = forwardable_headers(&h)
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        got.sort();
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            got,
            vec![
                pair("llm_provider-x-ratelimit-remaining-requests", "9"),
                pair("llm_provider-x-request-id", "abc"),
                pair("x-ratelimit-remaining-requests", "9"),
            ]
        );
        // Served from the worker's cache the second time: the same name.
        assert_eq!(forwardable_headers(&h).len(), 3);
    }
}
