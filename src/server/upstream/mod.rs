//! The shared transport: sends an adapter's [`UpstreamRequest`] over this worker's pooled
//! keep-alive connections and hands back what came back. `http://` upstreams go through
//! [`plain`] (actix-http's HTTP/1 codec, one configuration per worker), everything else through
//! awc, which owns TLS. No provider knowledge here.

mod plain;

use std::cell::OnceCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_tls::connect::{
    ConnectError, ConnectInfo, Connection, ConnectorService as TcpConnectorService,
};
use actix_web::dev::Service;
use actix_web::http::header::HeaderMap;
use actix_web::http::uri::Scheme;
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::rt::net::TcpStream;
use awc::error::{PayloadError, SendRequestError};
use awc::{Client, ClientResponse, Connector};
use bytes::{Bytes, BytesMut};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;

use crate::providers::{ProviderError, UpstreamRequest};

/// Upper bound on a non-stream upstream body; a bigger one is an upstream fault, not a reply.
const MAX_UPSTREAM_BODY: usize = 256 * 1024 * 1024;

/// One per worker thread (`!Send`): its connection pools are that worker's own. Cloning it
/// shares them.
#[derive(Clone)]
pub struct Transport {
    /// awc's OpenSSL connector reads and parses the system's CA bundle when it is built: 35-70
    /// ms on our VMs, most of the start-up time, which a proxy of `http://` upstreams never
    /// needs. So it is built at start only when a deployment may need it
    /// ([`Transport::prepare_tls`]), else on the worker's first `https://` request.
    awc: Rc<OnceCell<Client>>,
    plain: plain::Pool,
}

impl Default for Transport {
    fn default() -> Transport {
        Transport {
            awc: Rc::default(),
            plain: plain::Pool::new(NoDelayConnector::default()),
        }
    }
}

impl Transport {
    /// Builds the `https://` client now rather than on the first request that needs it.
    pub fn prepare_tls(&self) {
        self.awc.get_or_init(awc_client);
    }
}

fn awc_client() -> Client {
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
pub(crate) struct NoDelayConnector(TcpConnectorService);

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

/// An upstream answer: status and headers read in place, the body streamed.
pub enum Reply {
    Plain(plain::Response),
    Awc(ClientResponse),
}

impl Reply {
    pub fn status(&self) -> StatusCode {
        match self {
            Reply::Plain(r) => r.status(),
            Reply::Awc(r) => r.status(),
        }
    }

    pub fn headers(&self) -> &HeaderMap {
        match self {
            Reply::Plain(r) => r.headers(),
            Reply::Awc(r) => r.headers(),
        }
    }
}

/// Whether a request to `url` goes through the `http://` transport ([`plain`]) rather than awc.
pub fn is_plain_http(url: &Uri) -> bool {
    url.scheme() == Some(&Scheme::HTTP)
}

/// Send a request and wait for the response head. Takes the request by value so its URL and
/// headers move into the transport's request as they are: already parsed and checked by the
/// adapter.
pub async fn send(
    transport: &Transport,
    req: UpstreamRequest,
    provider_label: &str,
) -> Result<Reply, ProviderError> {
    if is_plain_http(&req.url) {
        return match transport.plain.send(req).await {
            Ok(response) => Ok(Reply::Plain(response)),
            Err(plain::SendError::ConnectTimeout) => Err(connect_timeout(provider_label)),
            Err(e) => Err(ProviderError::unreachable(provider_label, &e)),
        };
    }
    let method = Method::from_bytes(req.method.as_bytes()).unwrap_or(Method::POST);
    let mut builder = transport
        .awc
        .get_or_init(awc_client)
        .request(method, req.url);
    let headers = builder.headers_mut();
    for (name, value) in req.headers {
        headers.insert(name, value);
    }
    builder
        .send_body(req.body)
        .await
        .map(Reply::Awc)
        .map_err(|e| send_error(provider_label, &e))
}

/// Read the whole body of a reply. A body that arrives in one piece is returned as it is.
pub async fn read_body(reply: &mut Reply, provider_label: &str) -> Result<Bytes, ProviderError> {
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    while let Some(chunk) = next_chunk(reply, provider_label).await {
        let chunk = chunk?;
        let size = first.as_ref().map_or(0, Bytes::len) + joined.len() + chunk.len();
        if size > MAX_UPSTREAM_BODY {
            return Err(ProviderError::connection(
                provider_label,
                &format!("the upstream's answer is larger than {MAX_UPSTREAM_BODY} bytes"),
            ));
        }
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            None => joined.extend_from_slice(&chunk),
            Some(earlier) => {
                joined.extend_from_slice(&earlier);
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| joined.freeze()))
}

/// The next piece of a streamed body; `None` at the end.
pub async fn next_chunk(
    reply: &mut Reply,
    provider_label: &str,
) -> Option<Result<Bytes, ProviderError>> {
    poll_fn(|cx| poll_chunk(reply, provider_label, cx)).await
}

/// [`next_chunk`] for a caller that polls (a response body relaying a stream).
pub fn poll_chunk(
    reply: &mut Reply,
    provider_label: &str,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, ProviderError>>> {
    let chunk = ready!(match reply {
        Reply::Plain(r) => r.poll_chunk(cx),
        Reply::Awc(r) => r.poll_next_unpin(cx),
    });
    Poll::Ready(chunk.map(|r| r.map_err(|e| payload_error(provider_label, &e))))
}

fn send_error(provider_label: &str, e: &SendRequestError) -> ProviderError {
    match e {
        SendRequestError::Timeout => connect_timeout(provider_label),
        other => ProviderError::unreachable(provider_label, other),
    }
}

/// Opening a connection took too long, whichever transport tried.
fn connect_timeout(provider_label: &str) -> ProviderError {
    ProviderError::connection(provider_label, "timed out connecting to the upstream")
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
