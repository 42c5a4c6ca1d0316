//! The shared transport: sends an adapter's [`UpstreamRequest`] with this worker's pooled
//! keep-alive `awc::Client` and hands back what came back. No provider knowledge here.

use std::time::Duration;

use actix_web::http::Method;
use awc::error::{PayloadError, SendRequestError};
use awc::{Client, ClientResponse, Connector};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::providers::{ProviderError, UpstreamRequest};

/// Upper bound on a non-stream upstream body; a bigger one is an upstream fault, not a reply.
const MAX_UPSTREAM_BODY: usize = 256 * 1024 * 1024;

/// One per worker thread (`awc::Client` is `!Send`): its connection pool is that worker's own.
pub fn client() -> Client {
    let connector = Connector::new()
        .limit(1024)
        .timeout(Duration::from_secs(10))
        .conn_keep_alive(Duration::from_secs(60))
        .conn_lifetime(Duration::from_secs(300));
    Client::builder()
        .connector(connector)
        .disable_redirects()
        .no_default_headers()
        // Our own timeouts (per deployment, per request) bound every call; awc's default of 5 s
        // would cut long generations short.
        .timeout(Duration::from_secs(24 * 3600))
        .finish()
}

/// Status, headers (names lower-cased) and the body stream of an upstream answer.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ClientResponse,
}

/// Send a request and wait for the response head.
pub async fn send(
    client: &Client,
    req: &UpstreamRequest,
    provider_label: &str,
) -> Result<Reply, ProviderError> {
    let method = Method::from_bytes(req.method.as_bytes()).unwrap_or(Method::POST);
    let mut builder = client.request(method, req.url.as_str());
    for (name, value) in &req.headers {
        builder = builder.insert_header((name.as_str(), value.as_str()));
    }
    let res = builder
        .send_body(req.body.clone())
        .await
        .map_err(|e| send_error(provider_label, &e))?;
    let headers = res
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    Ok(Reply {
        status: res.status().as_u16(),
        headers,
        body: res,
    })
}

/// Read the whole body of a reply.
pub async fn read_body(reply: &mut Reply, provider_label: &str) -> Result<Bytes, ProviderError> {
    reply
        .body
        .body()
        .limit(MAX_UPSTREAM_BODY)
        .await
        .map_err(|e| payload_error(provider_label, &e))
}

/// The next piece of a streamed body; `None` at the end.
pub async fn next_chunk(
    reply: &mut Reply,
    provider_label: &str,
) -> Option<Result<Bytes, ProviderError>> {
    reply
        .body
        .next()
        .await
        .map(|r| r.map_err(|e| payload_error(provider_label, &e)))
}

fn send_error(provider_label: &str, e: &SendRequestError) -> ProviderError {
    match e {
        SendRequestError::Timeout => {
            ProviderError::connection(provider_label, "timed out connecting to the upstream")
        }
        other => ProviderError::connection(
            provider_label,
            &format!("could not reach the upstream: {other}"),
        ),
    }
}

fn payload_error(provider_label: &str, e: &PayloadError) -> ProviderError {
    ProviderError::connection(
        provider_label,
        &format!("the upstream connection broke while reading its answer: {e}"),
    )
}
