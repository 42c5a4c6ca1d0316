//! A client's JSON body, read one level deep: its bytes, and where each top-level field's value
//! lies in them. The proxy looks at a handful of fields (`model`, `stream`, ...) and forwards the
//! rest; an OpenAI-compatible upstream gets the client's own bytes for every field the proxy does
//! not touch, with no parse of `messages` and no re-serialisation.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A JSON object body with its top-level fields indexed, in the client's order.
#[derive(Clone, Debug)]
pub struct RequestBody {
    bytes: Bytes,
    /// Key and the byte range of its value in `bytes`. A key sent twice keeps its first place
    /// and its last value, as `serde_json::Map` does.
    fields: Vec<(String, Range<usize>)>,
}

impl RequestBody {
    /// Index a body; anything but a JSON object is an error.
    pub fn parse(bytes: Bytes) -> Result<RequestBody, serde_json::Error> {
        let found = {
            let mut de = serde_json::Deserializer::from_slice(&bytes);
            let found = de.deserialize_map(TopLevel)?;
            de.end()?;
            found
        };
        let start = bytes.as_ptr() as usize;
        let mut fields: Vec<(String, Range<usize>)> = Vec::with_capacity(found.len());
        for (key, offset, len) in found {
            let range = (offset - start)..(offset - start + len);
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some((_, r)) => *r = range,
                None => fields.push((key, range)),
            }
        }
        Ok(RequestBody { bytes, fields })
    }

    /// A body from an already parsed object (tests, mocks).
    pub fn from_map(map: &Map<String, Value>) -> RequestBody {
        let bytes = Bytes::from(serde_json::to_vec(map).unwrap_or_else(|_| b"{}".to_vec()));
        RequestBody::parse(bytes).unwrap_or(RequestBody {
            bytes: Bytes::from_static(b"{}"),
            fields: Vec::new(),
        })
    }

    /// The raw JSON text of a field's value.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, r)| std::str::from_utf8(&self.bytes[r.clone()]).ok())
    }

    /// A field's value, parsed as `T`: `None` when absent, `Some(Err)` when of another type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<Result<T, serde_json::Error>> {
        self.raw(key).map(serde_json::from_str)
    }

    /// A field's value as a JSON value (`None` when absent).
    pub fn value(&self, key: &str) -> Option<Value> {
        self.get::<Value>(key).and_then(Result::ok)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == key)
    }

    /// Every field as `(key, raw JSON)`, in the client's order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().filter_map(|(k, r)| {
            std::str::from_utf8(&self.bytes[r.clone()])
                .ok()
                .map(|v| (k.as_str(), v))
        })
    }

    /// Size of the whole body in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes of a field's raw value: what a size estimate can use without parsing it.
    pub fn raw_len(&self, key: &str) -> usize {
        self.raw(key).map_or(0, str::len)
    }
}

/// Things that can become the body of a prepared request.
pub trait IntoBody {
    fn into_body(self) -> Arc<RequestBody>;
}

impl IntoBody for Arc<RequestBody> {
    fn into_body(self) -> Arc<RequestBody> {
        self
    }
}

impl IntoBody for Map<String, Value> {
    fn into_body(self) -> Arc<RequestBody> {
        Arc::new(RequestBody::from_map(&self))
    }
}

/// Collects each top-level key with the address and length of its raw value.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Vec<(String, usize, usize)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let raw: &'de RawValue = map.next_value()?;
            let text = raw.get();
            out.push((key, text.as_ptr() as usize, text.len()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_indexed_in_order_with_their_raw_text() {
        let body = RequestBody::parse(Bytes::from_static(
            br#"{"model": "m", "messages":[{"role":"user","content":"hi"}] ,"n":1e2}"#,
        ))
        .unwrap();
        let fields: Vec<_> = body.fields().collect();
        assert_eq!(
            fields,
            vec![
                ("model", "\"m\""),
                ("messages", r#"[{"role":"user","content":"hi"}]"#),
                ("n", "1e2")
            ]
        );
        assert_eq!(body.get::<String>("model").unwrap().unwrap(), "m");
        assert!(body.get::<bool>("model").unwrap().is_err());
        assert!(body.get::<bool>("stream").is_none());
        assert_eq!(body.value("n"), Some(json!(100.0)));
    }

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_last_value() {
        let body = RequestBody::parse(Bytes::from_static(br#"{"a":1,"b":2,"a":3}"#)).unwrap();
        assert_eq!(
            body.fields().collect::<Vec<_>>(),
            vec![("a", "3"), ("b", "2")]
        );
    }

    #[test]
    fn only_objects_are_bodies() {
        for bad in [&b"[1]"[..], b"\"x\"", b"{", b"{} trailing", b""] {
            assert!(
                RequestBody::parse(Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn escaped_keys_are_read() {
        let body = RequestBody::parse(Bytes::from_static(br#"{"mo\u0064el":"x"}"#)).unwrap();
        assert_eq!(body.raw("model"), Some("\"x\""));
    }
}
