//! llm-proxy embedded in a host actix-web service: the host's own routes, extractors and
//! middleware next to the proxy mounted as a middleware and under a `web::scope`, served by a
//! real `HttpServer` on 127.0.0.1:0 and driven over HTTP by the blocking client of
//! `tests/common` (run on the blocking pool, so the test's runtime keeps serving).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::{ServerHandle, Service};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer};
use common::*;
use llm_proxy::{AuthDecision, CallMeta, LlmProxy};
use serde::Deserialize;
use serde_json::{json, Value};

const STRONG_KEY: &str = "sk-test-0123456789abcdef";
/// Upper bound on any single await in these tests.
const WAIT: Duration = Duration::from_secs(30);

fn bundled_config() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"))
        .expect("config.yaml")
}

// === the host's own service ===

#[derive(Deserialize)]
struct NewOrder {
    item: String,
    qty: u32,
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

async fn get_order(id: web::Path<u32>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"id": id.into_inner(), "status": "shipped"}))
}

async fn create_order(order: web::Json<NewOrder>) -> HttpResponse {
    HttpResponse::Created().json(json!({"item": order.item, "qty": order.qty}))
}

async fn host_not_found(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().body(format!("host: no route for {}", req.path()))
}

fn host_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/orders/{id}", web::get().to(get_order))
        .route("/orders", web::post().to(create_order));
}

/// Who the host's own auth middleware says the caller is.
#[derive(Clone)]
struct Tenant(String);

/// Every response the host's outer middleware saw: path and the proxy's `CallMeta`, if any.
type Seen = Arc<Mutex<Vec<(String, Option<CallMeta>)>>>;

fn seen_for(seen: &Seen, path: &str) -> Vec<Option<CallMeta>> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == path)
        .map(|(_, m)| m.clone())
        .collect()
}

/// The host's outer middleware (registered after the proxy, so it wraps it): reads a tenant
/// token into the extensions, records `CallMeta` after the inner service answered, and adds a
/// header to every response.
macro_rules! host_outer_middleware {
    ($seen:expr) => {{
        let seen: Seen = $seen.clone();
        move |req: actix_web::dev::ServiceRequest, srv: &_| {
            if let Some(t) = req
                .headers()
                .get("x-api-token")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("token-"))
            {
                req.extensions_mut().insert(Tenant(t.to_string()));
            }
            let path = req.path().to_string();
            let answered = srv.call(req);
            let seen = seen.clone();
            async move {
                let mut res: actix_web::dev::ServiceResponse<_> = answered.await?;
                let meta = res.request().extensions().get::<CallMeta>().cloned();
                seen.lock().unwrap().push((path, meta));
                res.headers_mut().insert(
                    HeaderName::from_static("x-host-outer"),
                    HeaderValue::from_static("1"),
                );
                Ok(res)
            }
        }
    }};
}

struct Host {
    port: u16,
    handle: ServerHandle,
    server: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
}

impl Host {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Graceful stop, bounded.
    async fn stop(self) {
        actix_web::rt::time::timeout(WAIT, self.handle.stop(true))
            .await
            .expect("the server did not stop in time");
        actix_web::rt::time::timeout(WAIT, self.server)
            .await
            .expect("the server task did not end")
            .expect("server task")
            .expect("server error");
    }
}

/// Serve an App factory on 127.0.0.1:0 with two workers (each builds its own proxy worker).
macro_rules! serve {
    ($factory:expr) => {{
        let server = HttpServer::new($factory)
            .workers(2)
            .disable_signals()
            .shutdown_timeout(10)
            .bind(("127.0.0.1", 0))
            .expect("bind");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        Host {
            port,
            handle,
            server: actix_web::rt::spawn(server),
        }
    }};
}

/// Run the blocking client off the test's runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    actix_web::rt::time::timeout(WAIT, actix_web::rt::task::spawn_blocking(f))
        .await
        .expect("bounded by the client's own timeouts")
        .expect("client thread")
}

async fn get_url(url: String, headers: Vec<(&'static str, String)>) -> Response {
    blocking(move || {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        get(&url, &h)
    })
    .await
}

async fn post_url(url: String, body: Value, headers: Vec<(&'static str, String)>) -> Response {
    blocking(move || {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post_json(&url, &body, &h)
    })
    .await
}

async fn post_raw(url: String, body: &'static [u8]) -> Response {
    blocking(move || {
        request(
            "POST",
            &url,
            &[("content-type", "application/json")],
            Some(body),
        )
    })
    .await
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn stream_chat(model: &str) -> Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

/// The `content` deltas of an SSE body, joined.
fn streamed_text(res: &Response) -> String {
    res.sse_data()
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

fn assert_openai_error(res: &Response, status: u16, kind: &str) -> String {
    assert_eq!(res.status, status, "{}", res.text());
    let body = res.json();
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert_eq!(body["error"]["code"], status.to_string(), "{body}");
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[actix_web::test]
async fn the_middleware_answers_openai_paths_and_the_host_keeps_everything_else() {
    let proxy = LlmProxy::from_yaml(&bundled_config()).await.unwrap();
    let seen = Seen::default();
    let (p, s) = (proxy.clone(), seen.clone());
    let host = serve!(move || {
        App::new()
            .configure(host_routes)
            // inside the proxy: only the host's own requests pass through it
            .wrap(DefaultHeaders::new().add(("x-host-inner", "1")))
            .wrap(p.middleware())
            .wrap_fn(host_outer_middleware!(s))
            .default_service(web::to(host_not_found))
    });

    // The host's routes, extractors and middleware, untouched.
    let res = get_url(host.url("/healthz"), vec![]).await;
    assert_eq!((res.status, res.text().as_str()), (200, "ok"));
    assert_eq!(res.header("x-host-inner"), Some("1"));
    assert_eq!(res.header("x-host-outer"), Some("1"));
    let res = get_url(host.url("/orders/42"), vec![]).await;
    assert_eq!(res.json(), json!({"id": 42, "status": "shipped"}));
    let res = get_url(host.url("/orders/not-a-number"), vec![]).await;
    assert_eq!(res.status, 404, "web::Path's own error: {}", res.text());
    let res = post_url(
        host.url("/orders"),
        json!({"item": "tea", "qty": 2}),
        vec![],
    )
    .await;
    assert_eq!(res.status, 201);
    assert_eq!(res.json(), json!({"item": "tea", "qty": 2}));
    let res = post_raw(host.url("/orders"), b"{not json").await;
    assert_eq!(res.status, 400);
    assert!(
        !res.text().contains("\"error\""),
        "the host's JSON extractor error is the host's, not OpenAI's: {}",
        res.text()
    );
    // Unknown paths are the host's 404, even where they look like the proxy's.
    for path in [
        "/nope",
        "/v1/nope",
        "/v1/chat/completions/extra",
        "/llm/v1/models",
    ] {
        let res = get_url(host.url(path), vec![]).await;
        assert_eq!(res.status, 404, "{path}");
        assert_eq!(res.text(), format!("host: no route for {path}"));
        assert_eq!(res.header("x-host-inner"), Some("1"));
    }

    // The proxy's paths: answered by the middleware, past the inner host middleware.
    let res = post_url(host.url("/v1/chat/completions"), chat("gpt-4o"), vec![]).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.json()["choices"][0]["message"]["content"],
        "This is a mock answer from gpt-4o."
    );
    assert_eq!(res.header("x-litellm-model-group"), Some("gpt-4o"));
    assert_eq!(res.header("x-host-outer"), Some("1"));
    assert_eq!(res.header("x-host-inner"), None);
    let call_id = res.header("x-litellm-call-id").unwrap().to_string();

    let res = post_url(
        host.url("/chat/completions"),
        stream_chat("gpt-3.5-turbo"),
        vec![],
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/event-stream"));
    assert_eq!(res.sse_data().last().map(String::as_str), Some("[DONE]"));
    assert!(streamed_text(&res).starts_with("Hello from the"));

    let res = post_url(
        host.url("/v1/embeddings"),
        json!({"model": "text-embedding-3-small", "input": "hi"}),
        vec![],
    )
    .await;
    assert_eq!(res.json()["object"], "list");
    let models = get_url(host.url("/v1/models"), vec![]).await.json();
    assert!(models["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "gpt-4o"));
    assert_eq!(get_url(host.url("/model/info"), vec![]).await.status, 200);
    assert_eq!(
        get_url(host.url("/health/liveliness"), vec![]).await.status,
        200
    );
    assert_eq!(
        get_url(host.url("/health/readiness"), vec![]).await.json()["status"],
        "healthy"
    );

    // LiteLLM's path forms: the model in the path wins over the body's, a query is ignored.
    let res = post_url(
        host.url("/openai/deployments/claude-3-haiku/chat/completions?api-version=2024-06-01"),
        chat("gpt-4o"),
        vec![],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-litellm-model-group"), Some("claude-3-haiku"));
    let res = get_url(host.url("/v1/models/claude-3-haiku"), vec![]).await;
    assert_eq!(
        res.json(),
        json!({"id": "claude-3-haiku", "object": "model", "created": 1_677_610_602, "owned_by": "anthropic"})
    );
    assert_openai_error(
        &get_url(host.url("/models/no-such-model"), vec![]).await,
        404,
        "not_found_error",
    );
    // Under those prefixes, what is not one of the forms is still the host's.
    let res = get_url(host.url("/engines/gpt-4o/nope"), vec![]).await;
    assert_eq!(res.text(), "host: no route for /engines/gpt-4o/nope");

    // Errors keep OpenAI's shape.
    let res = get_url(host.url("/v1/chat/completions"), vec![]).await;
    assert_openai_error(&res, 405, "invalid_request_error");
    assert_eq!(res.header("allow"), Some("POST"));
    let res = post_raw(host.url("/v1/chat/completions"), b"{oops").await;
    assert!(assert_openai_error(&res, 400, "invalid_request_error").contains("Invalid JSON"));
    let res = post_url(
        host.url("/v1/chat/completions"),
        chat("no-such-model"),
        vec![],
    )
    .await;
    assert!(assert_openai_error(&res, 400, "invalid_request_error").contains("no-such-model"));

    // The host's outer middleware read each call's CallMeta after the proxy answered.
    let metas = seen_for(&seen, "/v1/chat/completions");
    let first = metas[0].clone().expect("CallMeta for a proxied call");
    assert_eq!(first.call_id, call_id);
    assert_eq!(first.model_group.as_deref(), Some("gpt-4o"));
    assert!(first.model_id.is_some());
    let usage = first.usage.expect("usage of a plain call");
    assert_eq!(usage.prompt_tokens + usage.completion_tokens, 30);
    let bad = metas[2].clone().expect("CallMeta for a refused call");
    assert!(bad.model_id.is_none() && !bad.call_id.is_empty());
    let unknown = metas[3].clone().expect("CallMeta for an unknown model");
    assert_eq!(unknown.model_group, None);
    let streamed = seen_for(&seen, "/chat/completions")[0]
        .clone()
        .expect("CallMeta for a stream");
    assert_eq!(streamed.model_group.as_deref(), Some("gpt-3.5-turbo"));
    assert!(streamed.model_id.unwrap().starts_with("gpt-35-turbo-"));
    for path in ["/orders/42", "/v1/models"] {
        let metas = seen_for(&seen, path);
        assert!(metas.len() == 1 && metas[0].is_none(), "{path}");
    }

    host.stop().await;
}

#[actix_web::test]
async fn under_a_scope_the_routes_get_the_prefix_and_keep_the_master_key() {
    let config = format!(
        "{}general_settings:\n  master_key: {STRONG_KEY}\n",
        bundled_config()
    );
    let proxy = LlmProxy::from_yaml(&config).await.unwrap();
    assert!(proxy.requires_key());
    let seen = Seen::default();
    let (p, s) = (proxy.clone(), seen.clone());
    let host = serve!(move || {
        App::new()
            .configure(host_routes)
            .service(web::scope("/llm").configure(p.configure()))
            // The middleware form works under a scope too: paths after the prefix.
            .service(
                web::scope("/ai")
                    .wrap(p.middleware())
                    .default_service(web::to(host_not_found)),
            )
            .wrap(DefaultHeaders::new().add(("x-host-default", "1")))
            .wrap_fn(host_outer_middleware!(s))
            .default_service(web::to(host_not_found))
    });
    let key = || vec![("authorization", format!("Bearer {STRONG_KEY}"))];

    let res = post_url(host.url("/llm/v1/chat/completions"), chat("gpt-4"), vec![]).await;
    assert!(assert_openai_error(&res, 401, "auth_error").contains("No api key passed in"));
    let res = post_url(host.url("/llm/v1/chat/completions"), chat("gpt-4"), key()).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-host-default"), Some("1"));
    assert_eq!(
        res.json()["choices"][0]["message"]["content"],
        "This is a mock answer from gpt-4o."
    );
    let res = post_url(
        host.url("/llm/chat/completions"),
        stream_chat("gpt-4o"),
        key(),
    )
    .await;
    assert_eq!(res.sse_data().last().map(String::as_str), Some("[DONE]"));
    assert_eq!(streamed_text(&res), "This is a mock answer from gpt-4o.");

    // Probes stay public; everything else needs the key.
    assert_eq!(
        get_url(host.url("/llm/health/liveliness"), vec![])
            .await
            .status,
        200
    );
    assert_eq!(
        get_url(host.url("/llm/health/readiness"), vec![])
            .await
            .status,
        200
    );
    assert_openai_error(
        &get_url(host.url("/llm/v1/models"), vec![]).await,
        401,
        "auth_error",
    );
    assert_eq!(get_url(host.url("/llm/v1/models"), key()).await.status, 200);
    assert_openai_error(
        &get_url(host.url("/llm/model/info"), vec![]).await,
        401,
        "auth_error",
    );

    // The path forms under the prefix: the model from the path (a slash in it escaped or not).
    let res = post_url(
        host.url("/llm/engines/gpt-4/chat/completions"),
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        key(),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-litellm-model-group"), Some("gpt-4"));
    let res = post_url(
        host.url("/llm/openai/deployments/text-embedding-3-small/embeddings"),
        json!({"input": "hi"}),
        key(),
    )
    .await;
    assert_eq!(res.json()["object"], "list", "{}", res.text());
    let res = get_url(host.url("/llm/v1/models/gpt-4"), key()).await;
    assert_eq!(
        (res.status, res.json()["owned_by"].clone()),
        (200, json!("openai"))
    );
    assert_openai_error(
        &get_url(host.url("/llm/v1/models/gpt-4"), vec![]).await,
        401,
        "auth_error",
    );
    let res = get_url(host.url("/llm/engines/gpt-4o/nope"), key()).await;
    assert_openai_error(&res, 404, "not_found_error");
    let res = get_url(
        host.url("/llm/openai/deployments/gpt-4o/chat/completions"),
        key(),
    )
    .await;
    assert_openai_error(&res, 405, "invalid_request_error");

    // Errors keep OpenAI's shape under the prefix.
    let res = get_url(host.url("/llm/v1/chat/completions"), key()).await;
    assert_openai_error(&res, 405, "invalid_request_error");
    let res = post_url(
        host.url("/llm/v1/chat/completions"),
        json!({"model": "gpt-4o"}),
        key(),
    )
    .await;
    assert!(assert_openai_error(&res, 400, "invalid_request_error").contains("messages"));

    // Outside the prefix the paths are the host's.
    assert_eq!(get_url(host.url("/v1/models"), key()).await.status, 404);
    assert_eq!(
        get_url(host.url("/llm/unknown"), key()).await.text(),
        "host: no route for /llm/unknown"
    );
    assert_eq!(get_url(host.url("/orders/7"), vec![]).await.json()["id"], 7);

    // The middleware under /ai.
    assert_eq!(get_url(host.url("/ai/v1/models"), key()).await.status, 200);
    assert_eq!(
        get_url(host.url("/ai/health/liveliness"), vec![])
            .await
            .status,
        200
    );
    let res = post_url(host.url("/ai/v1/chat/completions"), chat("gpt-4o"), key()).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        get_url(host.url("/ai/other"), vec![]).await.text(),
        "host: no route for /ai/other"
    );

    // 401, 200, 405 (not a call: no CallMeta), 400.
    let metas = seen_for(&seen, "/llm/v1/chat/completions");
    assert_eq!(metas.len(), 4);
    assert!(
        metas[0].as_ref().is_some_and(|m| m.model_id.is_none()),
        "refused: no deployment"
    );
    assert!(metas[2].is_none());
    assert!(metas[3].is_some());
    let ok = metas[1].clone().expect("CallMeta under the scope");
    assert_eq!(ok.model_group.as_deref(), Some("gpt-4"));
    assert_eq!(ok.attempted_retries, 0);
    let ai = seen_for(&seen, "/ai/v1/chat/completions")[0]
        .clone()
        .expect("CallMeta from the middleware under a scope");
    assert_eq!(ai.model_group.as_deref(), Some("gpt-4o"));

    host.stop().await;
}

#[actix_web::test]
async fn the_host_auth_callback_replaces_the_master_key() {
    let config = format!(
        "{}general_settings:\n  master_key: {STRONG_KEY}\n",
        bundled_config()
    );
    let proxy = LlmProxy::builder()
        .config_yaml(config)
        .auth(|req: &HttpRequest| match req.extensions().get::<Tenant>() {
            Some(Tenant(t)) if t == "acme" => AuthDecision::Allow,
            Some(Tenant(t)) => AuthDecision::deny(format!("tenant {t} has no LLM access")),
            None => AuthDecision::deny("no tenant token (x-api-token)"),
        })
        .start()
        .await
        .unwrap();
    assert!(!proxy.requires_key());
    let seen = Seen::default();
    let (p, s) = (proxy.clone(), seen.clone());
    let host = serve!(move || {
        App::new()
            .configure(host_routes)
            .service(web::scope("/llm").configure(p.configure()))
            .wrap(p.middleware())
            .wrap_fn(host_outer_middleware!(s))
            .default_service(web::to(host_not_found))
    });
    let token = |t: &str| vec![("x-api-token", format!("token-{t}"))];

    for prefix in ["", "/llm"] {
        let url = host.url(&format!("{prefix}/v1/chat/completions"));
        let res = post_url(url.clone(), chat("gpt-4o"), vec![]).await;
        let message = assert_openai_error(&res, 401, "auth_error");
        assert_eq!(
            message,
            "Authentication Error, no tenant token (x-api-token)"
        );
        let res = post_url(url.clone(), chat("gpt-4o"), token("globex")).await;
        let message = assert_openai_error(&res, 401, "auth_error");
        assert_eq!(
            message,
            "Authentication Error, tenant globex has no LLM access"
        );
        let res = post_url(url.clone(), chat("gpt-4o"), token("acme")).await;
        assert_eq!(res.status, 200, "{prefix}: {}", res.text());
        // The config's master key no longer opens the door.
        let bearer = vec![("authorization", format!("Bearer {STRONG_KEY}"))];
        assert_eq!(post_url(url, chat("gpt-4o"), bearer).await.status, 401);

        let models = host.url(&format!("{prefix}/v1/models"));
        assert_eq!(get_url(models.clone(), vec![]).await.status, 401);
        assert_eq!(get_url(models, token("acme")).await.status, 200);
        let probe = host.url(&format!("{prefix}/health/readiness"));
        assert_eq!(
            get_url(probe, vec![]).await.status,
            200,
            "probes stay public"
        );
    }
    // Host routes never ask the callback.
    assert_eq!(get_url(host.url("/orders/1"), vec![]).await.status, 200);

    let denied = seen_for(&seen, "/v1/chat/completions")[0]
        .clone()
        .expect("a denied call still leaves its CallMeta");
    assert!(denied.model_id.is_none());
    host.stop().await;
}

fn upstream_config(base: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: plain
    litellm_params:
      model: openai/m-plain
      api_base: {base}/plain/v1
      api_key: sk-upstream
    model_info:
      id: plain-1
  - model_name: streamy
    litellm_params:
      model: openai/m-stream
      api_base: {base}/stream/v1
      api_key: sk-upstream
    model_info:
      id: streamy-1
"#
    )
}

fn sse_events(words: &[&str]) -> Vec<String> {
    let mut events: Vec<String> = words
        .iter()
        .map(|w| {
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m-stream",
                   "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}]})
            .to_string()
        })
        .collect();
    events.push("[DONE]".into());
    events
}

#[actix_web::test]
async fn a_loopback_upstream_answers_through_both_mounts() {
    let mock = MockUpstream::start();
    mock.script(
        "/plain/v1/chat/completions",
        vec![Reply::ok(completion("from the upstream", "m-plain"))
            .with_header("x-ratelimit-remaining-requests", "99")],
    );
    let events = sse_events(&["one ", "two ", "three"]);
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    mock.script(
        "/stream/v1/chat/completions",
        vec![Reply::sse(&refs, Duration::from_millis(20))],
    );
    let proxy = LlmProxy::from_yaml(&upstream_config(&mock.base()))
        .await
        .unwrap();
    let seen = Seen::default();
    let (p, s) = (proxy.clone(), seen.clone());
    let host = serve!(move || {
        App::new()
            .configure(host_routes)
            .service(web::scope("/llm").configure(p.configure()))
            .wrap(p.middleware())
            .wrap_fn(host_outer_middleware!(s))
            .default_service(web::to(host_not_found))
    });

    for prefix in ["", "/llm"] {
        let res = post_url(
            host.url(&format!("{prefix}/v1/chat/completions")),
            chat("plain"),
            vec![],
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(
            res.json()["choices"][0]["message"]["content"],
            "from the upstream"
        );
        assert_eq!(res.header("x-litellm-model-id"), Some("plain-1"));
        assert_eq!(res.header("x-ratelimit-remaining-requests"), Some("99"));

        let res = post_url(
            host.url(&format!("{prefix}/chat/completions")),
            stream_chat("streamy"),
            vec![],
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(streamed_text(&res), "one two three");
        assert_eq!(res.sse_data().last().map(String::as_str), Some("[DONE]"));
    }
    let sent = mock.received_on("/plain/v1/chat/completions");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].json()["model"], "m-plain");
    assert_eq!(sent[0].header("authorization"), Some("Bearer sk-upstream"));
    assert_eq!(mock.received_on("/stream/v1/chat/completions").len(), 2);

    for path in ["/v1/chat/completions", "/llm/v1/chat/completions"] {
        let meta = seen_for(&seen, path)[0].clone().expect("CallMeta");
        assert_eq!(meta.model_id.as_deref(), Some("plain-1"), "{path}");
        assert_eq!(meta.model_group.as_deref(), Some("plain"));
        assert_eq!(
            meta.api_base.as_deref(),
            Some(format!("{}/plain/v1", mock.base()).as_str())
        );
        let usage = meta.usage.expect("usage of a plain call");
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 7));
        assert!(meta.total_duration >= meta.upstream_duration);
    }
    for path in ["/chat/completions", "/llm/chat/completions"] {
        let meta = seen_for(&seen, path)[0]
            .clone()
            .expect("CallMeta of a stream");
        assert_eq!(meta.model_id.as_deref(), Some("streamy-1"), "{path}");
        // The stream has been read to its end, so its usage is known: the upstream sent none,
        // so it is the estimate from the streamed text ("one two three": 1 + 1 + 2 tokens).
        let usage = meta
            .stream_usage
            .as_ref()
            .and_then(|u| u.get())
            .expect("usage once the stream ended");
        assert_eq!(usage.completion_tokens, 4, "{path}");
    }
    host.stop().await;
}

#[actix_web::test]
async fn a_graceful_stop_lets_a_stream_finish_then_the_actors_stop() {
    let mock = MockUpstream::start();
    let words = ["a", "b", "c", "d", "e", "f"];
    let events = sse_events(&words);
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    mock.script(
        "/stream/v1/chat/completions",
        vec![Reply::sse(&refs, Duration::from_millis(150))],
    );
    let proxy = LlmProxy::from_yaml(&upstream_config(&mock.base()))
        .await
        .unwrap();
    let group = proxy.router().group("streamy").expect("the streamy group");
    let p = proxy.clone();
    let host = serve!(move || App::new().wrap(p.middleware()));
    // Only the server (its App factory and its workers) holds the proxy from here on.
    drop(proxy);

    let url = host.url("/v1/chat/completions");
    let in_flight =
        actix_web::rt::task::spawn_blocking(move || post_json(&url, &stream_chat("streamy"), &[]));
    let asked = blocking({
        let mock_received = move || !mock.received_on("/stream/v1/chat/completions").is_empty();
        move || eventually(Duration::from_secs(10), mock_received)
    })
    .await;
    assert!(asked, "the upstream was never called");
    assert!(group.connected());

    // Stop while the upstream is still sending (six events, 150 ms apart): the stop waits for it.
    let stopping = std::time::Instant::now();
    host.stop().await;
    assert!(
        stopping.elapsed() >= Duration::from_millis(300),
        "the stop did not wait for the stream: {:?}",
        stopping.elapsed()
    );
    let res = actix_web::rt::time::timeout(WAIT, in_flight)
        .await
        .expect("bounded")
        .expect("client thread");
    assert_eq!(res.status, 200);
    assert_eq!(streamed_text(&res), words.concat(), "the stream finished");
    assert_eq!(res.sse_data().last().map(String::as_str), Some("[DONE]"));

    // The workers dropped their HTTP actors, the server its factory: the router's Arbiter stops.
    let stopped =
        blocking(move || eventually(Duration::from_secs(10), || !group.connected())).await;
    assert!(stopped, "the proxy's actors outlived the server");
}

/// A host with no actix System (as under `#[tokio::main]`): the proxy runs its actors in a
/// System of its own, which stops with the proxy.
#[test]
fn a_host_without_an_actix_system_gets_one_for_the_proxy() {
    let rt = actix_web::rt::Runtime::new().unwrap();
    rt.block_on(async {
        assert!(actix_web::rt::System::try_current().is_none());
        let proxy = LlmProxy::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"))
            .await
            .unwrap();
        assert!(actix_web::rt::System::try_current().is_none());
        let group = proxy.router().group("gpt-4o").expect("gpt-4o");
        let p = proxy.clone();
        let host = serve!(move || App::new().configure(host_routes).wrap(p.middleware()));
        drop(proxy);
        let res = post_url(host.url("/v1/chat/completions"), chat("gpt-4o"), vec![]).await;
        assert_eq!(res.status, 200, "{}", res.text());
        let res = post_url(
            host.url("/v1/chat/completions"),
            stream_chat("gpt-3.5-turbo"),
            vec![],
        )
        .await;
        assert_eq!(res.sse_data().last().map(String::as_str), Some("[DONE]"));
        assert_eq!(get_url(host.url("/orders/3"), vec![]).await.json()["id"], 3);
        host.stop().await;
        let stopped =
            blocking(move || eventually(Duration::from_secs(10), || !group.connected())).await;
        assert!(stopped, "the proxy's own System outlived the proxy");
    });
}
