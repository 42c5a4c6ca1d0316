//! Helpers shared by the adapters' golden-fixture tests.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use serde_json::{Map, Value};

use super::{
    params, Endpoint, PreparedRequest, ProviderAdapter, RequestBody, RequestContext, StreamContext,
    StreamEvent,
};

/// Feeds `input` whole and one byte at a time; both must give the same events.
pub(crate) fn decode(
    adapter: &dyn ProviderAdapter,
    endpoint: Endpoint,
    ctx: &StreamContext,
    input: &[u8],
) -> Vec<StreamEvent> {
    let mut whole = Vec::new();
    let mut d = adapter.stream_decoder(endpoint, ctx);
    d.feed(input, &mut whole);
    d.finish(&mut whole);
    let mut bytewise = Vec::new();
    let mut d = adapter.stream_decoder(endpoint, ctx);
    for b in input {
        d.feed(std::slice::from_ref(b), &mut bytewise);
    }
    d.finish(&mut bytewise);
    assert_eq!(whole, bytewise);
    whole
}

/// The chunk JSONs among `events`, as text.
pub(crate) fn chunks(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Chunk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}

/// A fixture's JSON object.
pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("test fixture is an object"),
    }
}

/// Upstream response headers, as the transport would hand them to an adapter.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// Upstream request headers as text, for comparing with expected pairs.
pub(crate) fn pairs(headers: &[(HeaderName, HeaderValue)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
        .collect()
}

/// The headers `adapter` sends upstream for `req` as a chat completion, as text.
pub(crate) fn sent_headers(
    adapter: &dyn ProviderAdapter,
    req: &PreparedRequest,
) -> Vec<(String, String)> {
    let built = adapter
        .build_request(Endpoint::ChatCompletions, req, &ctx())
        .unwrap();
    pairs(&built.headers)
}

/// A client body as the server hands it on: indexed, no deployment defaults.
pub(crate) fn request(body: &str) -> PreparedRequest {
    params::prepare(
        Arc::new(RequestBody::parse(Bytes::copy_from_slice(body.as_bytes())).unwrap()),
        &Map::new(),
    )
}

/// A call at the Unix epoch (fixed signatures), `drop_params` off.
pub(crate) fn ctx() -> RequestContext {
    RequestContext {
        now: SystemTime::UNIX_EPOCH,
        drop_params: false,
    }
}
