//! The `http://` transport: actix-http's own HTTP/1.1 client codec over this worker's pooled
//! keep-alive TCP connections.
//!
//! awc sends with the same codec, but builds a new codec configuration for every request, and
//! each configuration spawns an actix-http date task and timer; its pool also takes a semaphore
//! permit and two hashed lookups a request, and its builder re-inserts every header. Here one
//! configuration serves the worker and a connection keeps its buffers between requests
//! (`bench/README.md`, Finding 11). HTTPS deployments stay on awc, which owns TLS.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use actix_codec::{AsyncRead, Framed, ReadBuf};
use actix_http::body::BodySize;
use actix_http::error::{ParseError, PayloadError};
use actix_http::h1::{ClientCodec, ClientPayloadCodec, Message, MessageType};
use actix_http::header::{HeaderMap, HeaderValue, HOST};
use actix_http::{Method, RequestHead, RequestHeadType, ResponseHead, ServiceConfig, StatusCode};
use actix_tls::connect::{ConnectError, ConnectInfo};
use actix_web::dev::Service;
use actix_web::http::uri::{Authority, Uri};
use actix_web::rt::net::TcpStream;
use bytes::Bytes;
use tokio::sync::Notify;

use super::NoDelayConnector;
use crate::providers::UpstreamRequest;

/// A connection idle longer than this is closed rather than reused (awc's `conn_keep_alive`).
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// A connection older than this is closed when it comes back (awc's `conn_lifetime`).
const LIFETIME: Duration = Duration::from_secs(300);
/// How long opening a connection may take (awc's connector timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept per upstream address; more are closed when they come back.
const MAX_IDLE_PER_ADDRESS: usize = 1024;
/// Connections open to one upstream address at once, in use or idle. A request past it waits
/// (within its timeout) for one to come back or close, so a burst of clients cannot open
/// thousands of connections to one upstream. awc's limit was 1,024 per worker for all
/// addresses together; httpx's, under LiteLLM, is 1,000 per client.
const MAX_OPEN_PER_ADDRESS: usize = 1024;

/// One per worker: its idle connections, by upstream address, and the codec configuration
/// every connection shares.
#[derive(Clone)]
pub struct Pool(Rc<PoolInner>);

struct PoolInner {
    config: ServiceConfig,
    idle_limit: Duration,
    open_limit: usize,
    connector: NoDelayConnector,
    addresses: RefCell<Vec<Address>>,
}

/// The idle connections to one `host:port`, and the `Host` header its requests carry.
struct Address {
    authority: Authority,
    host: HeaderValue,
    slots: Rc<Slots>,
    /// Oldest release first. The newest is reused first: the least likely to have been closed
    /// by an upstream with a short keep-alive (uvicorn's is 5 s); the oldest are closed once
    /// idle past [`IDLE_LIMIT`], so a burst's connections do not stay open for good.
    idle: VecDeque<Idle>,
}

struct Idle {
    framed: Framed<TcpStream, ClientCodec>,
    slot: Slot,
    created: Instant,
    released: Instant,
}

/// How many connections to one address are open, against [`MAX_OPEN_PER_ADDRESS`]; `freed`
/// wakes a request waiting for one when a connection closes or comes back idle. Outside the
/// address list's `RefCell`, as a [`Slot`] may drop while the list is borrowed.
struct Slots {
    open: Cell<usize>,
    limit: usize,
    freed: Notify,
}

/// One open connection's place under its address's limit, given back when the connection is
/// dropped, wherever that happens.
struct Slot(Rc<Slots>);

impl Slots {
    fn take(self: &Rc<Slots>) -> Option<Slot> {
        let open = self.open.get();
        (open < self.limit).then(|| {
            self.open.set(open + 1);
            Slot(Rc::clone(self))
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
        self.0.freed.notify_one();
    }
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened.
    Connect(ConnectError),
    /// Opening a connection took longer than [`CONNECT_TIMEOUT`].
    ConnectTimeout,
    /// Writing the request failed.
    Write(io::Error),
    /// The response head is not valid HTTP/1, or the connection broke while it arrived.
    Parse(ParseError),
    /// The upstream closed the connection before any byte of an answer arrived.
    Closed,
    /// The upstream reset the connection before any byte of an answer arrived.
    Reset(io::Error),
    /// The URL has no host to connect to.
    NoHost,
}

impl SendError {
    /// The connection failed before any byte of an answer came back: the upstream had closed
    /// it (or reset it) while it sat idle.
    fn closed_before_answering(&self) -> bool {
        matches!(
            self,
            SendError::Closed | SendError::Reset(_) | SendError::Write(_)
        )
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "failed to connect: {e}"),
            SendError::ConnectTimeout => f.write_str("timed out connecting to the upstream"),
            SendError::Write(e) => write!(f, "could not send the request: {e}"),
            SendError::Parse(e) => write!(f, "the response head is not valid HTTP/1: {e}"),
            SendError::Closed => f.write_str("the upstream closed the connection before answering"),
            SendError::Reset(e) => {
                write!(f, "the upstream reset the connection before answering: {e}")
            }
            SendError::NoHost => f.write_str("the URL has no host"),
        }
    }
}

/// A response head, and its body still on the connection.
pub struct Response {
    head: ResponseHead,
    body: Option<BodyReader>,
}

/// The body's end of a connection. Reading it to the end puts the connection back in the pool;
/// dropping it earlier closes the connection.
struct BodyReader {
    framed: Framed<TcpStream, ClientPayloadCodec>,
    slot: Slot,
    pool: Pool,
    address: Authority,
    created: Instant,
}

impl Pool {
    pub fn new(connector: NoDelayConnector) -> Pool {
        Pool::with_limits(connector, IDLE_LIMIT, MAX_OPEN_PER_ADDRESS)
    }

    /// Also starts the pool's sweep, on this thread's runtime; it ends when the pool drops.
    fn with_limits(connector: NoDelayConnector, idle_limit: Duration, open_limit: usize) -> Pool {
        let inner = Rc::new(PoolInner {
            config: ServiceConfig::default(),
            idle_limit,
            open_limit,
            connector,
            addresses: RefCell::new(Vec::new()),
        });
        actix_web::rt::spawn(sweep(Rc::downgrade(&inner), idle_limit / 2));
        Pool(inner)
    }

    /// Send `req` on an idle connection to its address, or a new one, and read the response head.
    /// With [`MAX_OPEN_PER_ADDRESS`] connections open to the address, waits for one to come back
    /// or close.
    ///
    /// An upstream may close an idle connection just as it is reused (uvicorn, under vLLM, does
    /// after 5 s); such a connection fails before any byte of an answer. The request then goes
    /// once more, on a new connection, instead of failing the call and counting against the
    /// deployment.
    pub async fn send(&self, req: UpstreamRequest) -> Result<Response, SendError> {
        let authority = req.url.authority().ok_or(SendError::NoHost)?.clone();
        let (mut idle, host, slots) = self.checkout(&authority);
        let head = Rc::new(request_head(req.method, req.url, req.headers, host));
        let mut reused_one_failed = false;
        loop {
            if let Some(conn) = idle.take() {
                match self
                    .exchange(
                        conn.framed,
                        conn.slot,
                        conn.created,
                        &authority,
                        &head,
                        &req.body,
                    )
                    .await
                {
                    Err(e) if e.closed_before_answering() && !reused_one_failed => {
                        log::debug!("an idle upstream connection to {authority} was closed; sending again on a new one");
                        reused_one_failed = true;
                    }
                    done => return done,
                }
            }
            if let Some(slot) = slots.take() {
                let framed = self.connect(&head.uri).await?;
                return self
                    .exchange(framed, slot, Instant::now(), &authority, &head, &req.body)
                    .await;
            }
            // At the limit: a connection that closes frees a slot, one that comes back idle can
            // be taken (the one that failed above has closed, so this ends).
            slots.freed.notified().await;
            idle = self.checkout(&authority).0;
        }
    }

    /// One request and its response head on one connection.
    async fn exchange(
        &self,
        framed: Framed<TcpStream, ClientCodec>,
        slot: Slot,
        created: Instant,
        authority: &Authority,
        head: &Rc<RequestHead>,
        body: &Bytes,
    ) -> Result<Response, SendError> {
        let mut framed = framed.replace_codec(ClientCodec::new(self.0.config.clone()));
        let length = BodySize::Sized(body.len() as u64);
        {
            let mut pinned = Pin::new(&mut framed);
            let request = RequestHeadType::Rc(Rc::clone(head), None);
            pinned
                .as_mut()
                .write(Message::Item((request, length)))
                .map_err(SendError::Write)?;
            if !body.is_empty() {
                pinned
                    .as_mut()
                    .write(Message::Chunk(Some(body.clone())))
                    .map_err(SendError::Write)?;
            }
            pinned
                .as_mut()
                .write(Message::Chunk(None))
                .map_err(SendError::Write)?;
            poll_fn(|cx| pinned.as_mut().flush(cx))
                .await
                .map_err(SendError::Write)?;
        }
        let head = match poll_fn(|cx| Pin::new(&mut framed).next_item(cx)).await {
            Some(Ok(head)) => head,
            None => return Err(SendError::Closed),
            Some(Err(ParseError::Io(e)))
                if framed.is_read_buf_empty()
                    && matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    ) =>
            {
                return Err(SendError::Reset(e))
            }
            Some(Err(e)) => return Err(SendError::Parse(e)),
        };
        let body = match framed.codec_ref().message_type() {
            MessageType::None => {
                if framed.codec_ref().keep_alive() {
                    self.checkin(authority.clone(), framed, slot, created);
                }
                None
            }
            _ => Some(BodyReader {
                framed: framed.into_map_codec(ClientCodec::into_payload_codec),
                slot,
                pool: self.clone(),
                address: authority.clone(),
                created,
            }),
        };
        Ok(Response { head, body })
    }

    /// A live idle connection to `authority`, if there is one, the address's `Host` value and
    /// its connection limit.
    fn checkout(&self, authority: &Authority) -> (Option<Idle>, HeaderValue, Rc<Slots>) {
        let mut addresses = self.0.addresses.borrow_mut();
        let index = match addresses.iter().position(|a| a.authority == *authority) {
            Some(i) => i,
            None => {
                addresses.push(Address {
                    authority: authority.clone(),
                    host: host_value(authority),
                    slots: Rc::new(Slots {
                        open: Cell::new(0),
                        limit: self.0.open_limit,
                        freed: Notify::new(),
                    }),
                    idle: VecDeque::new(),
                });
                addresses.len() - 1
            }
        };
        let address = &mut addresses[index];
        let now = Instant::now();
        while address
            .idle
            .front()
            .is_some_and(|idle| now.duration_since(idle.released) > self.0.idle_limit)
        {
            address.idle.pop_front();
        }
        let found = loop {
            match address.idle.pop_back() {
                Some(mut idle) => {
                    if now.duration_since(idle.created) <= LIFETIME
                        && still_open(idle.framed.io_mut())
                    {
                        break Some(idle);
                    }
                }
                None => break None,
            }
        };
        (found, address.host.clone(), Rc::clone(&address.slots))
    }

    /// Back to the idle list, unless it is too old, the list is full, or the upstream sent
    /// bytes nobody asked for.
    fn checkin(
        &self,
        authority: Authority,
        framed: Framed<TcpStream, ClientCodec>,
        slot: Slot,
        created: Instant,
    ) {
        let now = Instant::now();
        if !framed.is_read_buf_empty() || now.duration_since(created) > LIFETIME {
            return;
        }
        let mut addresses = self.0.addresses.borrow_mut();
        if let Some(address) = addresses.iter_mut().find(|a| a.authority == authority) {
            if address.idle.len() < MAX_IDLE_PER_ADDRESS {
                address.idle.push_back(Idle {
                    framed,
                    slot,
                    created,
                    released: now,
                });
                // A request waiting at the limit can take it.
                address.slots.freed.notify_one();
            }
        }
    }

    /// Closes the idle connections that are past the idle limit or that the upstream closed:
    /// those of an address no request uses any more would otherwise stay open (and, once the
    /// upstream closed its side, linger half-closed) until the worker stops.
    fn sweep_once(inner: &PoolInner) {
        let now = Instant::now();
        for address in inner.addresses.borrow_mut().iter_mut() {
            address.idle.retain_mut(|idle| {
                now.duration_since(idle.released) <= inner.idle_limit
                    && still_open(idle.framed.io_mut())
            });
        }
    }

    async fn connect(&self, url: &Uri) -> Result<Framed<TcpStream, ClientCodec>, SendError> {
        let connecting =
            Service::<ConnectInfo<Uri>>::call(&self.0.connector, ConnectInfo::new(url.clone()));
        let connection = actix_web::rt::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| SendError::ConnectTimeout)?
            .map_err(SendError::Connect)?;
        let (io, _) = connection.into_parts();
        Ok(Framed::new(io, ClientCodec::new(self.0.config.clone())))
    }
}

/// Sweeps the pool every `every` while it lives.
async fn sweep(pool: std::rc::Weak<PoolInner>, every: Duration) {
    loop {
        actix_web::rt::time::sleep(every).await;
        match pool.upgrade() {
            Some(inner) => Pool::sweep_once(&inner),
            None => return,
        }
    }
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.head.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// The next piece of the body; `None` at its end. A body that ends by the upstream closing
    /// the connection ends with `None` too, as awc's does.
    pub fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, PayloadError>>> {
        let Some(reader) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let item = ready!(Pin::new(&mut reader.framed).next_item(cx));
        Poll::Ready(match item {
            Some(Ok(Some(chunk))) => Some(Ok(chunk)),
            Some(Ok(None)) => {
                if let Some(reader) = self.body.take() {
                    reader.release();
                }
                None
            }
            Some(Err(e)) => {
                self.body = None;
                Some(Err(e))
            }
            None => {
                self.body = None;
                None
            }
        })
    }
}

impl BodyReader {
    fn release(self) {
        if self.framed.codec_ref().keep_alive() {
            let framed = self
                .framed
                .into_map_codec(ClientPayloadCodec::into_message_codec);
            self.pool
                .checkin(self.address, framed, self.slot, self.created);
        }
    }
}

fn request_head(
    method: &'static str,
    url: Uri,
    headers: Vec<(actix_http::header::HeaderName, HeaderValue)>,
    host: HeaderValue,
) -> RequestHead {
    let mut head = RequestHead::default();
    head.method = match method {
        "POST" => Method::POST,
        "GET" => Method::GET,
        other => Method::from_bytes(other.as_bytes()).unwrap_or(Method::POST),
    };
    head.uri = url;
    let mut map = HeaderMap::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        map.insert(name, value);
    }
    if !map.contains_key(HOST) {
        map.insert(HOST, host);
    }
    head.headers = map;
    head
}

/// `host`, or `host:port` when the URL names a port that is not its scheme's default (what awc
/// sends). Built from the host and port only: user info in a URL never reaches a header.
fn host_value(authority: &Authority) -> HeaderValue {
    let value = match authority.port_u16() {
        None | Some(80) | Some(443) => HeaderValue::from_str(authority.host()),
        Some(port) => HeaderValue::from_str(&format!("{}:{port}", authority.host())),
    };
    value.unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether an idle connection can take a request: the upstream has neither closed it nor sent
/// anything since. Reads at most two bytes, without waiting; a connection with nothing to read
/// is open.
fn still_open(io: &mut TcpStream) -> bool {
    let mut buf = [0u8; 2];
    let mut read = ReadBuf::new(&mut buf);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(io).poll_read(&mut cx, &mut read), Poll::Pending)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread;

    use actix_http::header::{HeaderName, CONTENT_TYPE};

    use super::*;

    /// What the test upstream answers to one request, and whether it then closes the connection.
    struct Answer {
        bytes: &'static [u8],
        close: bool,
    }

    /// A loopback HTTP/1 upstream that answers from a script, one answer per request in order,
    /// and records each request's raw bytes and how many connections it accepted.
    struct Upstream {
        url: String,
        connections: Arc<AtomicUsize>,
        requests: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl Upstream {
        fn start(script: Vec<Answer>) -> Upstream {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let connections = Arc::new(AtomicUsize::new(0));
            let requests = Arc::new(Mutex::new(Vec::new()));
            let (count, seen) = (connections.clone(), requests.clone());
            thread::spawn(move || {
                let mut script = script.into_iter();
                for stream in listener.incoming().take(16) {
                    let Ok(mut stream) = stream else { return };
                    count.fetch_add(1, Ordering::SeqCst);
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    // Bounded: the script is finite and every read times out.
                    while let Some(request) = read_request(&mut stream) {
                        seen.lock().unwrap().push(request);
                        let Some(answer) = script.next() else { return };
                        stream.write_all(answer.bytes).unwrap();
                        if answer.close {
                            break;
                        }
                    }
                }
            });
            Upstream {
                url,
                connections,
                requests,
            }
        }

        fn request(&self, path: &str, body: &'static str) -> UpstreamRequest {
            UpstreamRequest {
                method: "POST",
                url: format!("{}{path}", self.url).parse().unwrap(),
                headers: vec![
                    (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (
                        HeaderName::from_static("authorization"),
                        HeaderValue::from_static("Bearer sk-test"),
                    ),
                ],
                body: Bytes::from_static(body.as_bytes()),
            }
        }

        fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }
    }

    /// Answer, then wait for the next request on the same connection.
    fn keep(bytes: &'static [u8]) -> Answer {
        Answer {
            bytes,
            close: false,
        }
    }

    /// Answer, then close the connection.
    fn then_close(bytes: &'static [u8]) -> Answer {
        Answer { bytes, close: true }
    }

    /// One request's head and `content-length` body, or `None` when the client closed.
    fn read_request(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        for _ in 0..64 {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            data.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&data).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if data.len() >= end + 4 + length {
                    return Some(data);
                }
            }
        }
        None
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
    const OK_BODY: &[u8] = b"{\"ok\":true}";

    /// One exchange on `pool`, read to the end: the body.
    async fn fetch(pool: &Pool, upstream: &Upstream, body: &'static str) -> Vec<u8> {
        let mut response = pool.send(upstream.request("/v1", body)).await.unwrap();
        body_of(&mut response).await
    }

    async fn body_of(response: &mut Response) -> Vec<u8> {
        let mut body = Vec::new();
        for _ in 0..64 {
            match poll_fn(|cx| response.poll_chunk(cx)).await {
                Some(chunk) => body.extend_from_slice(&chunk.unwrap()),
                None => return body,
            }
        }
        panic!("the body did not end");
    }

    #[actix_rt::test]
    async fn sends_the_request_as_awc_would_and_reads_the_answer() {
        let upstream = Upstream::start(vec![keep(OK)]);
        let pool = Pool::new(NoDelayConnector::default());
        let mut response = pool
            .send(upstream.request("/v1/chat/completions?x=1", "{\"a\":1}"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().get(CONTENT_TYPE).unwrap(),
            "application/json"
        );
        assert_eq!(body_of(&mut response).await, OK_BODY);
        let sent = String::from_utf8(upstream.requests.lock().unwrap()[0].clone()).unwrap();
        let host = upstream.url.trim_start_matches("http://");
        let (head, body) = sent.split_once("\r\n\r\n").unwrap();
        let mut lines: Vec<&str> = head.lines().collect();
        assert_eq!(lines.remove(0), "POST /v1/chat/completions?x=1 HTTP/1.1");
        lines.sort_unstable();
        // actix-http's encoder dates every request, awc's included.
        let date = lines.iter().position(|l| l.starts_with("date: ")).unwrap();
        lines.remove(date);
        let host_line = format!("host: {host}");
        assert_eq!(
            lines,
            [
                "authorization: Bearer sk-test",
                "content-length: 7",
                "content-type: application/json",
                host_line.as_str(),
            ]
        );
        assert_eq!(body, "{\"a\":1}");
    }

    #[actix_rt::test]
    async fn a_connection_read_to_the_end_serves_the_next_request() {
        let upstream = Upstream::start(vec![
            keep(OK),
            keep(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
            keep(OK),
        ]);
        let pool = Pool::new(NoDelayConnector::default());
        for expected in [OK_BODY, b"abcde", OK_BODY] {
            assert_eq!(fetch(&pool, &upstream, "{}").await, expected);
        }
        assert_eq!(upstream.connections(), 1);
    }

    #[actix_rt::test]
    async fn a_connection_is_not_reused_after_close_or_an_unread_body() {
        let upstream = Upstream::start(vec![
            // The upstream says it will close: the next request opens a new connection.
            then_close(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi"),
            // Its body is dropped unread: that connection is closed too.
            keep(OK),
            keep(OK),
        ]);
        let pool = Pool::new(NoDelayConnector::default());
        assert_eq!(fetch(&pool, &upstream, "{}").await, b"hi");
        let unread = pool.send(upstream.request("/v1", "{}")).await.unwrap();
        drop(unread);
        assert_eq!(fetch(&pool, &upstream, "{}").await, OK_BODY);
        assert_eq!(upstream.connections(), 3);
    }

    #[actix_rt::test]
    async fn an_idle_connection_the_upstream_closed_is_skipped() {
        let upstream = Upstream::start(vec![
            // Answers as if it kept the connection, then closes it while it sits idle.
            then_close(OK),
            keep(OK),
        ]);
        let pool = Pool::new(NoDelayConnector::default());
        assert_eq!(fetch(&pool, &upstream, "{}").await, OK_BODY);
        // Bounded wait for the close to arrive; the check sees it without taking the connection.
        let mut seen_closed = false;
        for _ in 0..100 {
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            let mut addresses = pool.0.addresses.borrow_mut();
            if !still_open(addresses[0].idle[0].framed.io_mut()) {
                seen_closed = true;
                break;
            }
        }
        assert!(seen_closed);
        assert_eq!(fetch(&pool, &upstream, "{}").await, OK_BODY);
        assert_eq!(upstream.connections(), 2);
    }

    #[actix_rt::test]
    async fn a_reused_connection_closed_before_answering_is_retried_once_on_a_new_one() {
        let upstream = Upstream::start(vec![
            keep(OK),
            // Reads the second request on the kept connection and closes it unanswered, as an
            // upstream closing an idle connection at that very moment would.
            then_close(b""),
            keep(OK),
        ]);
        let pool = Pool::new(NoDelayConnector::default());
        assert_eq!(fetch(&pool, &upstream, "{}").await, OK_BODY);
        assert_eq!(fetch(&pool, &upstream, "{\"n\":2}").await, OK_BODY);
        assert_eq!(upstream.connections(), 2);
        let requests = upstream.requests.lock().unwrap();
        assert_eq!(requests.len(), 3);
        // The same bytes, sent again (but for the date, which may have ticked in between).
        let undated = |raw: &[u8]| {
            let text = String::from_utf8_lossy(raw).to_string();
            text.split("\r\n")
                .filter(|line| !line.starts_with("date: "))
                .collect::<Vec<_>>()
                .join("\r\n")
        };
        assert_eq!(undated(&requests[1]), undated(&requests[2]));
        assert!(undated(&requests[2]).ends_with("{\"n\":2}"));
    }

    #[actix_rt::test]
    async fn a_connection_idle_past_the_limit_is_closed_not_reused() {
        let upstream = Upstream::start(vec![keep(OK), keep(OK)]);
        let pool = Pool::with_limits(
            NoDelayConnector::default(),
            Duration::from_millis(20),
            MAX_OPEN_PER_ADDRESS,
        );
        assert_eq!(fetch(&pool, &upstream, "{}").await, OK_BODY);
        actix_web::rt::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(fetch(&pool, &upstream, "{}").await, OK_BODY);
        assert_eq!(upstream.connections(), 2);
    }

    #[actix_rt::test]
    async fn the_sweep_closes_idle_connections_nobody_asks_for() {
        let upstream = Upstream::start(vec![keep(OK)]);
        let pool = Pool::with_limits(
            NoDelayConnector::default(),
            Duration::from_millis(20),
            MAX_OPEN_PER_ADDRESS,
        );
        assert_eq!(fetch(&pool, &upstream, "{}").await, OK_BODY);
        assert_eq!(pool.0.addresses.borrow()[0].idle.len(), 1);
        let mut swept = false;
        for _ in 0..50 {
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            if pool.0.addresses.borrow()[0].idle.is_empty() {
                swept = true;
                break;
            }
        }
        assert!(
            swept,
            "no request came, yet the idle connection should be gone"
        );
    }

    #[actix_rt::test]
    async fn at_the_connection_limit_a_request_waits_for_one_to_come_back() {
        let upstream = Upstream::start(vec![keep(OK), keep(OK), keep(OK), keep(OK)]);
        let pool = Pool::with_limits(NoDelayConnector::default(), IDLE_LIMIT, 1);
        // The second waits for the first's connection rather than opening another (this
        // upstream serves one connection at a time: a second one would wait out its 5 s read).
        let (first, second) = futures_util::future::join(
            fetch(&pool, &upstream, "{\"n\":1}"),
            fetch(&pool, &upstream, "{\"n\":2}"),
        )
        .await;
        assert_eq!((first.as_slice(), second.as_slice()), (OK_BODY, OK_BODY));
        assert_eq!(upstream.connections(), 1);
        // A connection closed (its body dropped unread) frees its place for a waiting request.
        let unread = pool.send(upstream.request("/v1", "{}")).await.unwrap();
        let waiting = fetch(&pool, &upstream, "{}");
        futures_util::pin_mut!(waiting);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(std::future::Future::poll(waiting.as_mut(), &mut cx).is_pending());
        drop(unread);
        assert_eq!(waiting.await, OK_BODY);
        assert_eq!(upstream.connections(), 2);
        let address = &pool.0.addresses.borrow()[0];
        assert_eq!((address.slots.open.get(), address.idle.len()), (1, 1));
    }

    #[actix_rt::test]
    async fn faults_are_errors() {
        let upstream = Upstream::start(vec![
            then_close(b"HTTP/1.1 200 OK\r\ncontent-len"),
            then_close(b"garbage\r\n\r\n"),
            then_close(b""),
        ]);
        let pool = Pool::new(NoDelayConnector::default());
        let cut = pool.send(upstream.request("/v1", "{}")).await;
        // Cut mid-head: the codec reports the leftover bytes.
        assert!(
            matches!(cut, Err(SendError::Closed | SendError::Parse(_))),
            "{:?}",
            cut.err()
        );
        let garbage = pool.send(upstream.request("/v1", "{}")).await;
        assert!(
            matches!(garbage, Err(SendError::Parse(_))),
            "{:?}",
            garbage.err()
        );

        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url: Uri = format!("http://{}/v1", closed.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(closed);
        let refused = pool
            .send(UpstreamRequest {
                method: "POST",
                url,
                headers: Vec::new(),
                body: Bytes::new(),
            })
            .await;
        assert!(
            matches!(refused, Err(SendError::Connect(_))),
            "{:?}",
            refused.err()
        );
    }

    #[test]
    fn the_host_header_leaves_out_user_info_and_default_ports() {
        let value = |a: &str| host_value(&a.parse().unwrap());
        assert_eq!(value("user:secret@example.com:8000"), "example.com:8000");
        assert_eq!(value("example.com:80"), "example.com");
        assert_eq!(value("127.0.0.1"), "127.0.0.1");
    }
}
