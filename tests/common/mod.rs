//! Test harness: a recording mock upstream that can be told to fail, stall or space its chunks;
//! the real `llm-proxy` binary started on a free loopback port; and a small blocking HTTP client.
//! Every wait is bounded.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One request the mock received, as it came off the wire.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path with the query string.
    pub target: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// What the mock answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A whole body with a status and extra headers.
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// A chunked body sent piece by piece, each after its delay.
    Chunks {
        status: u16,
        content_type: String,
        pieces: Vec<(Duration, Vec<u8>)>,
    },
    /// Wait, then answer with the inner reply.
    Delay(Duration, Box<Reply>),
    /// Close the connection without answering.
    Drop,
    /// Send these pieces, then close the connection mid-stream.
    ChunksThenDrop {
        content_type: String,
        pieces: Vec<(Duration, Vec<u8>)>,
    },
    /// A whole body of any bytes (binary, NDJSON, HTML...) with its content type.
    Bytes {
        status: u16,
        content_type: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// The reply is chosen from the request itself (e.g. a stream for `"stream": true` bodies).
    Respond(Responder),
}

/// A function from the recorded request to the reply, for [`Reply::Respond`].
#[derive(Clone)]
pub struct Responder(pub Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>);

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder(..)")
    }
}

impl Reply {
    pub fn ok(body: serde_json::Value) -> Reply {
        Reply::Json {
            status: 200,
            headers: vec![],
            body: body.to_string(),
        }
    }
    pub fn status(status: u16, body: serde_json::Value) -> Reply {
        Reply::Json {
            status,
            headers: vec![],
            body: body.to_string(),
        }
    }
    pub fn with_header(self, name: &str, value: &str) -> Reply {
        match self {
            Reply::Json {
                status,
                mut headers,
                body,
            } => {
                headers.push((name.to_string(), value.to_string()));
                Reply::Json {
                    status,
                    headers,
                    body,
                }
            }
            Reply::Bytes {
                status,
                content_type,
                mut headers,
                body,
            } => {
                headers.push((name.to_string(), value.to_string()));
                Reply::Bytes {
                    status,
                    content_type,
                    headers,
                    body,
                }
            }
            other => other,
        }
    }
    /// An OpenAI error body with this status.
    pub fn openai_error(status: u16, message: &str, kind: &str) -> Reply {
        Reply::status(
            status,
            serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        )
    }
    /// Answer with whatever `f` returns for the request.
    pub fn respond(f: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Reply {
        Reply::Respond(Responder(Arc::new(f)))
    }
    /// `body` sent chunked in pieces of at most `piece` bytes, so a reader sees frames cut
    /// anywhere (binary event streams, NDJSON, SSE).
    pub fn chunked(content_type: &str, body: &[u8], piece: usize) -> Reply {
        Reply::Chunks {
            status: 200,
            content_type: content_type.to_string(),
            pieces: body
                .chunks(piece.max(1))
                .map(|p| (Duration::ZERO, p.to_vec()))
                .collect(),
        }
    }
    /// SSE events (each a JSON string or `[DONE]`) spaced by `gap`.
    pub fn sse(events: &[&str], gap: Duration) -> Reply {
        let timed: Vec<(Duration, &str)> = events.iter().map(|e| (gap, *e)).collect();
        Reply::sse_timed(&timed)
    }
    /// SSE events, each sent after its own delay: for streams whose timing is the point.
    pub fn sse_timed(events: &[(Duration, &str)]) -> Reply {
        Reply::Chunks {
            status: 200,
            content_type: "text/event-stream".into(),
            pieces: events
                .iter()
                .map(|(delay, e)| (*delay, format!("data: {e}\n\n").into_bytes()))
                .collect(),
        }
    }
}

#[derive(Default)]
struct MockState {
    received: Vec<Recorded>,
    /// Per path: replies used in order; the last one repeats.
    scripts: HashMap<String, VecDeque<Reply>>,
}

/// A loopback HTTP/1.1 server that records every request and answers from per-path scripts.
pub struct MockUpstream {
    pub port: u16,
    state: Arc<Mutex<MockState>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl MockUpstream {
    pub fn start() -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(MockState::default()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, c) = (state.clone(), connections.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let s = s.clone();
                thread::spawn(move || serve_connection(conn, s));
            }
        });
        MockUpstream {
            port,
            state,
            connections,
        }
    }

    /// How many TCP connections the mock has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answer requests to `path` with these replies in order; the last one repeats.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.state
            .lock()
            .expect("lock")
            .scripts
            .insert(path.to_string(), replies.into());
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.state.lock().expect("lock").received.clone()
    }

    pub fn received_on(&self, path: &str) -> Vec<Recorded> {
        self.received()
            .into_iter()
            .filter(|r| r.path() == path)
            .collect()
    }

    pub fn clear(&self) {
        self.state.lock().expect("lock").received.clear();
    }
}

fn next_reply(state: &Mutex<MockState>, path: &str) -> Reply {
    let mut st = state.lock().expect("lock");
    match st.scripts.get_mut(path) {
        Some(q) if q.len() > 1 => q.pop_front().unwrap_or(Reply::Drop),
        Some(q) if q.len() == 1 => q.front().cloned().unwrap_or(Reply::Drop),
        _ => Reply::Json {
            status: 404,
            headers: vec![],
            body: format!("{{\"error\":{{\"message\":\"mock has no script for {path}\"}}}}"),
        },
    }
}

fn serve_connection(conn: TcpStream, state: Arc<Mutex<MockState>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = conn.set_nodelay(true);
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(conn);
    for _ in 0..10_000 {
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        let path = req.path().to_string();
        state.lock().expect("lock").received.push(req.clone());
        let mut reply = next_reply(&state, &path);
        for _ in 0..8 {
            let Reply::Respond(f) = &reply else { break };
            reply = (f.0)(&req);
        }
        if !write_reply(&mut writer, reply) {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}

/// Returns false when the connection must close.
fn write_reply(w: &mut TcpStream, reply: Reply) -> bool {
    match reply {
        Reply::Json {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            w.write_all(head.as_bytes()).is_ok() && w.write_all(body.as_bytes()).is_ok()
        }
        Reply::Chunks {
            status,
            content_type,
            pieces,
        } => {
            let head = format!("HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n");
            if w.write_all(head.as_bytes()).is_err() {
                return false;
            }
            for (gap, piece) in pieces {
                thread::sleep(gap);
                let chunk = [
                    format!("{:x}\r\n", piece.len()).into_bytes(),
                    piece,
                    b"\r\n".to_vec(),
                ]
                .concat();
                if w.write_all(&chunk).is_err() {
                    return false;
                }
            }
            w.write_all(b"0\r\n\r\n").is_ok()
        }
        Reply::ChunksThenDrop {
            content_type,
            pieces,
        } => {
            let head = format!("HTTP/1.1 200 X\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n");
            let _ = w.write_all(head.as_bytes());
            for (gap, piece) in pieces {
                thread::sleep(gap);
                let chunk = [
                    format!("{:x}\r\n", piece.len()).into_bytes(),
                    piece,
                    b"\r\n".to_vec(),
                ]
                .concat();
                let _ = w.write_all(&chunk);
            }
            false
        }
        Reply::Delay(d, inner) => {
            thread::sleep(d);
            write_reply(w, *inner)
        }
        Reply::Drop | Reply::Respond(_) => false,
        Reply::Bytes {
            status,
            content_type,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            w.write_all(head.as_bytes()).is_ok() && w.write_all(&body).is_ok()
        }
    }
}

/// The real binary, started on a free port with a config written to a temp file.
pub struct Proxy {
    pub port: u16,
    child: Child,
    log: Arc<Mutex<String>>,
    _dir: TempDir,
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "llm-proxy-test-{tag}-{}-{}",
            std::process::id(),
            fastrand_u64()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

impl Proxy {
    /// Start with this config and extra environment; waits (bounded) until it listens.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Proxy {
        Proxy::start_with_args(config, env, &[])
    }

    pub fn start_with_args(config: &str, env: &[(&str, &str)], args: &[&str]) -> Proxy {
        let dir = TempDir::new("proxy");
        let path = dir.0.join("config.yaml");
        std::fs::write(&path, config).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-proxy"));
        cmd.arg("--config")
            .arg(&path)
            .arg("--port")
            .arg("0")
            .args(args);
        cmd.env_remove("LITELLM_MASTER_KEY")
            .env_remove("CONFIG_FILE_PATH")
            .env_remove("HOST")
            .env_remove("PORT")
            .env("RUST_LOG", "info,llm_proxy=debug,llm_proxy_actors=debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (port, child, log) = spawn_and_find_port(cmd);
        Proxy {
            port,
            child,
            log,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Everything the proxy logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("lock").clone()
    }
}

/// Start a command whose log names its address; returns its port.
pub fn spawn_and_find_port(mut cmd: Command) -> (u16, Child, Arc<Mutex<String>>) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn llm-proxy");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    for pipe in [
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("running on http://").nth(1) {
                    let port = rest
                        .split_whitespace()
                        .next()
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| p.parse::<u16>().ok());
                    if let Some(p) = port {
                        let _ = tx.send(p);
                    }
                }
                let mut l = log.lock().expect("lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(port) => (port, child, log),
        Err(_) => {
            let _ = child.kill();
            let out = log.lock().expect("lock").clone();
            panic!("llm-proxy did not start within 20 s; its log:\n{out}");
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response as the test client read it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// For chunked bodies: when each chunk arrived, relative to the request being sent.
    pub chunk_times: Vec<(Duration, Vec<u8>)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The `data:` payloads of an SSE body.
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }
}

/// A blocking HTTP/1.1 request with a 30-second bound on every read.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Response {
    try_request(method, url, headers, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

pub fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, String> {
    let rest = url.strip_prefix("http://").ok_or("http only")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut conn = TcpStream::connect(host).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("content-length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let sent = Instant::now();
    conn.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    if let Some(b) = body {
        conn.write_all(b).map_err(|e| e.to_string())?;
    }
    read_response(conn, sent)
}

fn read_response(conn: TcpStream, sent: Instant) -> Result<Response, String> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).map_err(|e| e.to_string())?;
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    let mut chunk_times = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        for _ in 0..1_000_000 {
            let mut size = String::new();
            r.read_line(&mut size).map_err(|e| e.to_string())?;
            let n = usize::from_str_radix(size.trim(), 16)
                .map_err(|e| format!("chunk size {size:?}: {e}"))?;
            let mut chunk = vec![0; n];
            r.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            let mut crlf = [0; 2];
            r.read_exact(&mut crlf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            chunk_times.push((sent.elapsed(), chunk.clone()));
            body.extend_from_slice(&chunk);
        }
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body = vec![0; len];
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else {
        r.read_to_end(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(Response {
        status,
        headers,
        body,
        chunk_times,
    })
}

pub fn post_json(url: &str, body: &serde_json::Value, headers: &[(&str, &str)]) -> Response {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    request("POST", url, &h, Some(body.to_string().as_bytes()))
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Response {
    request("GET", url, headers, None)
}

/// An OpenAI chat completion body as an upstream would send it.
pub fn completion(content: &str, model: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    })
}

/// Wait (bounded) for `cond`.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    cond()
}
