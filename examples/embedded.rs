//! An existing actix-web service with llm-proxy mounted inside it, both ways:
//! - under `/llm` through `web::scope("/llm").configure(proxy.configure())`;
//! - at the root through `.wrap(proxy.middleware())`, which answers the OpenAI paths and passes
//!   everything else to the service's own routes.
//!
//! ```sh
//! cargo run --example embedded            # HOST (127.0.0.1), PORT (8080), CONFIG_FILE_PATH
//! curl http://127.0.0.1:8080/orders/42
//! curl http://127.0.0.1:8080/llm/v1/chat/completions -H 'content-type: application/json' \
//!   -d '{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}'
//! ```

use actix_web::dev::Service;
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer};
use llm_proxy::{AuthDecision, CallMeta, LlmProxy};

/// The service's own health check.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// The service's business route.
async fn order(id: web::Path<u32>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"id": id.into_inner(), "status": "shipped"}))
}

/// The service's own rule for who may call the models, in place of a master key: callers on
/// this machine.
fn local_callers_only(req: &HttpRequest) -> AuthDecision {
    match req.peer_addr() {
        Some(peer) if peer.ip().is_loopback() => AuthDecision::Allow,
        _ => AuthDecision::deny("the LLM routes only answer local callers"),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = match std::env::var("PORT") {
        Ok(p) => p
            .parse::<u16>()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        Err(_) => 8080,
    };
    let config = std::env::var("CONFIG_FILE_PATH")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml").into());

    let proxy = LlmProxy::builder()
        .config_path(config)
        .auth(local_callers_only)
        .start()
        .await
        .map_err(std::io::Error::other)?;

    let server = HttpServer::new(move || {
        App::new()
            .route("/healthz", web::get().to(healthz))
            .route("/orders/{id}", web::get().to(order))
            .service(web::scope("/llm").configure(proxy.configure()))
            .wrap(proxy.middleware())
            // Registered after the proxy, so it sees the proxy's answers too.
            .wrap_fn(|req, srv| {
                let path = req.path().to_string();
                let answered = srv.call(req);
                async move {
                    let res = answered.await?;
                    if let Some(meta) = res.request().extensions().get::<CallMeta>() {
                        log::info!(
                            "{path}: group={} deployment={} in {:?}, usage={:?}",
                            meta.model_group.as_deref().unwrap_or("-"),
                            meta.model_id.as_deref().unwrap_or("-"),
                            meta.total_duration,
                            meta.usage
                        );
                    }
                    Ok(res)
                }
            })
    })
    .bind((host.as_str(), port))?;
    for addr in server.addrs() {
        log::info!(
            "embedded example on http://{addr}: /healthz, /orders/{{id}}, /llm/v1/..., /v1/..."
        );
    }
    server.run().await
}
