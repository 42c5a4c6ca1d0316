//! The floor of an actix-web proxy hop, for the benchmark's Finding 18: the same server setup,
//! allocator and upstream transport as llm-proxy, but none of the proxy's own work (no auth, no
//! JSON, no router, no HTTP actor, no headers of its own). Every POST is forwarded as it is to
//! one upstream and its answer returned as it is.
//!
//! `cargo run --release --example bare_hop -- <listen port> <upstream URL, http://…>`

use std::cell::OnceCell;

use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use actix_web::http::Uri;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use llm_proxy::providers::UpstreamRequest;
use llm_proxy::server::upstream::{self, Transport};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

thread_local! {
    /// The worker's pooled upstream connections, as llm-proxy's HTTP actor keeps them.
    static TRANSPORT: OnceCell<Transport> = const { OnceCell::new() };
}

async fn forward(req: HttpRequest, body: web::Bytes, upstream: web::Data<Uri>) -> HttpResponse {
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(2);
    for name in [CONTENT_TYPE, AUTHORIZATION] {
        if let Some(value) = req.headers().get(&name) {
            headers.push((name, value.clone()));
        }
    }
    let request = UpstreamRequest {
        method: "POST",
        url: upstream.get_ref().clone(),
        headers,
        body,
    };
    let transport = TRANSPORT.with(|t| t.get_or_init(Transport::default).clone());
    let answer = async {
        let mut reply = upstream::send(&transport, request, "Upstream").await?;
        let body = upstream::read_body(&mut reply, "Upstream").await?;
        Ok::<_, llm_proxy::providers::ProviderError>((reply.status(), body))
    };
    match answer.await {
        Ok((status, body)) => HttpResponse::build(status)
            .insert_header((CONTENT_TYPE, "application/json"))
            .body(body),
        Err(e) => HttpResponse::BadGateway().body(e.message),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(4115);
    let upstream: Uri = args
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| Uri::from_static("http://127.0.0.1:18080/v1/chat/completions"));
    let upstream = web::Data::new(upstream);
    HttpServer::new(move || {
        App::new()
            .app_data(upstream.clone())
            .route("/health/readiness", web::get().to(HttpResponse::Ok))
            .default_service(web::post().to(forward))
    })
    .tcp_nodelay(true)
    .workers(1)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
