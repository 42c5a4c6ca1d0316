//! The shared transport: sends an adapter's [`UpstreamRequest`] with this worker's pooled
//! keep-alive `awc::Client` and hands back what came back. No provider knowledge here.

use std::task::{Context, Poll};
use std::time::Duration;

use actix_tls::connect::{
    ConnectError, ConnectInfo, Connection, ConnectorService as TcpConnectorService,
};
use actix_web::dev::Service;
use actix_web::http::{Method, Uri};
use actix_web::rt::net::TcpStream;
use awc::error::{PayloadError, SendRequestError};
use awc::{Client, ClientResponse, Connector};
use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;

use crate::providers::{ProviderError, UpstreamRequest};

/// Upper bound on a non-stream upstream body; a bigger one is an upstream fault, not a reply.
const MAX_UPSTREAM_BODY: usize = 256 * 1024 * 1024;

/// One per worker thread (`awc::Client` is `!Send`): its connection pool is that worker's own.
pub fn client() -> Client {
    let connector = Connector::new()
        .connector(NoDelayConnector::default())
        .limit(1024)
        .timeout(Duration::from_secs(10))
        .conn_keep_alive(Duration::from_secs(60))
        .conn_lifetime(Duration::from_secs(300));
    Client::builder()
        .connector(connector)
        .disable_redirects()
        .no_default_headers()
        // Our own deadline (per deployment, per request) bounds every exchange; awc's default of
        // 5 s would cut long generations short, and a second timer per request costs CPU.
        .disable_timeout()
        .finish()
}

/// awc's default TCP connector (actix-tls: resolve, then connect) with `TCP_NODELAY` set on each
/// new upstream socket; actix-tls leaves Nagle on. A request whose head and body leave in two
/// writes (TLS records, large or streamed bodies) would otherwise hold its last small segment
/// until the first is acknowledged, which a delayed-ACK peer answers up to 40 ms later. TLS is
/// layered on top of this socket, so HTTPS upstreams get it too.
#[derive(Clone, Default)]
struct NoDelayConnector(TcpConnectorService);

impl Service<ConnectInfo<Uri>> for NoDelayConnector {
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<ConnectInfo<Uri>>::poll_ready(&self.0, cx)
    }

    fn call(&self, req: ConnectInfo<Uri>) -> Self::Future {
        let connecting = Service::<ConnectInfo<Uri>>::call(&self.0, req);
        Box::pin(async move {
            let connection = connecting.await?;
            if let Err(e) = connection.io_ref().set_nodelay(true) {
                log::debug!("could not set TCP_NODELAY on an upstream socket: {e}");
            }
            Ok(connection)
        })
    }
}

/// An upstream answer as awc hands it over: status and headers read in place, the body streamed.
pub type Reply = ClientResponse;

/// Send a request and wait for the response head. Takes the request by value so its URL and
/// headers move into awc's request as they are: already parsed and checked by the adapter.
pub async fn send(
    client: &Client,
    req: UpstreamRequest,
    provider_label: &str,
) -> Result<Reply, ProviderError> {
    let method = Method::from_bytes(req.method.as_bytes()).unwrap_or(Method::POST);
    let mut builder = client.request(method, req.url);
    let headers = builder.headers_mut();
    for (name, value) in req.headers {
        headers.insert(name, value);
    }
    builder
        .send_body(req.body)
        .await
        .map_err(|e| send_error(provider_label, &e))
}

/// Read the whole body of a reply.
pub async fn read_body(reply: &mut Reply, provider_label: &str) -> Result<Bytes, ProviderError> {
    reply
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
        .next()
        .await
        .map(|r| r.map_err(|e| payload_error(provider_label, &e)))
}

fn send_error(provider_label: &str, e: &SendRequestError) -> ProviderError {
    match e {
        SendRequestError::Timeout => {
            ProviderError::connection(provider_label, "timed out connecting to the upstream")
        }
        other => ProviderError::unreachable(provider_label, other),
    }
}

fn payload_error(provider_label: &str, e: &PayloadError) -> ProviderError {
    ProviderError::connection(
        provider_label,
        &format!("the upstream connection broke while reading its answer: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn upstream_sockets_have_nodelay() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri: Uri = format!("http://{}/v1", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let connector = NoDelayConnector::default();
        let connection = Service::<ConnectInfo<Uri>>::call(&connector, ConnectInfo::new(uri))
            .await
            .unwrap();
        assert!(connection.io_ref().nodelay().unwrap());
    }
}
