//! A client's JSON body, read one level deep: its bytes, and where each top-level field's value
//! lies in them. The proxy looks at a handful of fields (`model`, `stream`, ...) and forwards the
//! rest; an OpenAI-compatible upstream gets the client's own bytes for every field the proxy does
//! not touch, with no parse of `messages` and no re-serialisation.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::json_scan;

/// A JSON object body with its top-level fields indexed, in the client's order.
#[derive(Clone, Debug)]
pub struct RequestBody {
    /// The client's bytes, checked as UTF-8 once (a JSON text that parsed is UTF-8), so fields
    /// are read as `&str` slices without checking them again.
    text: ByteString,
    /// Key and the byte range of its value in `text`. A key sent twice keeps its first place
    /// and its last value, as `serde_json::Map` does.
    fields: Vec<(String, Range<usize>)>,
    /// No key was sent twice: the bytes say exactly what `fields` says.
    unique_keys: bool,
}

impl RequestBody {
    /// Index a body; anything but a JSON object is an error.
    pub fn parse(bytes: Bytes) -> Result<RequestBody, serde_json::Error> {
        let not_utf8 = |e: std::str::Utf8Error| {
            <serde_json::Error as serde::de::Error>::custom(format!("the body is not UTF-8: {e}"))
        };
        let mut members = Vec::with_capacity(16);
        if json_scan::object_members(&bytes, &mut members).is_some() {
            let mut body = RequestBody {
                fields: Vec::with_capacity(members.len()),
                text: ByteString::try_from(bytes).map_err(not_utf8)?,
                unique_keys: true,
            };
            for member in members {
                let key = &body.text[member.key];
                body.add(key.to_string(), member.value);
            }
            return Ok(body);
        }
        // Whatever the scanner leaves (errors among it): serde_json decides and words the error.
        let found = {
            let mut de = serde_json::Deserializer::from_slice(&bytes);
            let found = de.deserialize_map(TopLevel)?;
            de.end()?;
            found
        };
        let start = bytes.as_ptr() as usize;
        let text = ByteString::try_from(bytes).map_err(not_utf8)?;
        let mut body = RequestBody {
            fields: Vec::with_capacity(found.len()),
            text,
            unique_keys: true,
        };
        for (key, offset, len) in found {
            body.add(key, (offset - start)..(offset - start + len));
        }
        Ok(body)
    }

    /// Records a member; a key seen before keeps its place and takes the new value.
    fn add(&mut self, key: String, value: Range<usize>) {
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some((_, r)) => {
                *r = value;
                self.unique_keys = false;
            }
            None => self.fields.push((key, value)),
        }
    }

    /// A body from an already parsed object (tests, mocks).
    pub fn from_map(map: &Map<String, Value>) -> RequestBody {
        let bytes = Bytes::from(serde_json::to_vec(map).unwrap_or_else(|_| b"{}".to_vec()));
        RequestBody::parse(bytes).unwrap_or(RequestBody {
            text: ByteString::from_static("{}"),
            fields: Vec::new(),
            unique_keys: true,
        })
    }

    /// The raw JSON text of a field's value.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, r)| &self.text[r.clone()])
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
        self.fields
            .iter()
            .map(|(k, r)| (k.as_str(), &self.text[r.clone()]))
    }

    /// Every key, in the client's order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_str())
    }

    /// The client's bytes when they say exactly what the fields say (no key sent twice): what
    /// can be forwarded untouched.
    pub fn verbatim(&self) -> Option<&Bytes> {
        self.unique_keys.then(|| self.text.as_bytes())
    }

    /// Size of the whole body in bytes.
    pub fn byte_len(&self) -> usize {
        self.text.len()
    }

    /// Bytes of a field's raw value: what a size estimate can use without parsing it.
    pub fn raw_len(&self, key: &str) -> usize {
        self.raw(key).map_or(0, str::len)
    }
}

/// Whether `raw`, a JSON text already parsed as valid, is a non-empty array whose every element
/// is an object: the shape `messages` must have. Walks brackets and skips strings (memchr's
/// vectorised search finds their ends) instead of parsing the array a second time.
pub fn is_list_of_objects(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut i = bytes
        .iter()
        .position(|b| !is_space(*b))
        .unwrap_or(bytes.len());
    if bytes.get(i) != Some(&b'[') {
        return false;
    }
    i += 1;
    let mut depth = 1usize;
    let mut element_next = true;
    let mut elements = 0usize;
    while let Some(&b) = bytes.get(i) {
        if depth == 1 && element_next && !is_space(b) {
            if b != b'{' {
                return false;
            }
            elements += 1;
            element_next = false;
        }
        match b {
            b'"' => {
                i = string_end(bytes, i + 1);
                continue;
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return elements > 0;
                }
            }
            b',' if depth == 1 => element_next = true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// The index just past the closing quote of the string whose contents start at `i`.
fn string_end(bytes: &[u8], mut i: usize) -> usize {
    while let Some(rest) = bytes.get(i..) {
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(at) if rest[at] == b'"' => return i + at + 1,
            // A backslash escapes the byte after it, whatever it is.
            Some(at) => i += at + 2,
            None => break,
        }
    }
    bytes.len()
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
pub(crate) struct TopLevel;

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
    fn lists_of_objects_are_told_from_other_json() {
        for yes in [
            r#"[{}]"#,
            r#" [ {"role":"user","content":"a ] } \" [ {"} , {"c":[1,{"d":"]"}]} ] "#,
            r#"[{"content":"\\"},{"content":"\\\""}]"#,
        ] {
            assert!(is_list_of_objects(yes), "{yes}");
        }
        for no in [
            "[]",
            " [ ] ",
            r#"[{},"x"]"#,
            r#"[{}, []]"#,
            r#"[1]"#,
            r#"{"a":[{}]}"#,
            r#""[{}]""#,
            "null",
            "",
            // Not valid JSON (never passed in), but still answered without a panic.
            r#"[{"a":"\"#,
            "[{",
            r#"[{"a"#,
        ] {
            assert!(!is_list_of_objects(no), "{no}");
        }
    }

    #[test]
    fn the_shape_walk_agrees_with_parsing_the_array() {
        let by_parsing = |raw: &str| {
            serde_json::from_str::<Vec<&RawValue>>(raw)
                .map(|m| !m.is_empty() && m.iter().all(|v| v.get().starts_with('{')))
                .unwrap_or(false)
        };
        let element = [
            r#"{"role":"user","content":"hi"}"#,
            r#"{"content":[{"type":"text","text":"]}\\\"["}]}"#,
            r#""{}""#,
            "[{}]",
            "{}",
            "3",
            "null",
        ];
        let mut checked = 0;
        for a in element {
            for b in element {
                for raw in [
                    format!("[{a}]"),
                    format!("[ {a} ,\n{b} ]"),
                    format!("[{a},{b},{a}]"),
                ] {
                    assert_eq!(is_list_of_objects(&raw), by_parsing(&raw), "{raw}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 3 * element.len() * element.len());
    }

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_last_value() {
        let body = RequestBody::parse(Bytes::from_static(br#"{"a":1,"b":2,"a":3}"#)).unwrap();
        assert_eq!(
            body.fields().collect::<Vec<_>>(),
            vec![("a", "3"), ("b", "2")]
        );
        assert_eq!(body.verbatim(), None, "the bytes hold two values for a");
    }

    #[test]
    fn unique_keys_make_the_bytes_forwardable() {
        let raw = Bytes::from_static(br#"{"model": "m", "n": 1}"#);
        let body = RequestBody::parse(raw.clone()).unwrap();
        assert_eq!(body.verbatim(), Some(&raw));
        assert_eq!(body.keys().collect::<Vec<_>>(), vec!["model", "n"]);
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
