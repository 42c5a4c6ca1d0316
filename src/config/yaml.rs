//! YAML text to a `serde_json::Value` tree, with PyYAML's treatment of merge keys (`<<`) and
//! duplicate keys (the last one wins), and errors that name the line and column.

use super::error::ConfigError;
use super::pyrepr::py_string;
use super::Warnings;
use serde::de::{self, Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess};
use serde_json::{Map, Value};
use std::fmt;

/// A YAML node as written: mappings keep duplicate keys and their order.
enum Node {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> de::Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v.to_string())))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v.to_string())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        // JSON has no NaN or infinity: keep Python's spelling (`inf`, `nan`) as a string.
        Ok(Node::Scalar(
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(super::pyrepr::py_float_repr(v))),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }

    /// A value with a custom tag (`!foo value`): the tag is dropped, the value kept.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        let (_tag, variant): (String, _) = data.variant()?;
        variant.newtype_variant()
    }
}

/// Parses one YAML document. `Ok(None)` is an empty document.
pub(crate) fn parse(
    text: &str,
    origin: &str,
    warnings: &mut Warnings,
) -> Result<Option<Value>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let node = Node::deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|e| yaml_error(&e, origin))?;
    let value = to_json(node, "", warnings);
    Ok((!value.is_null()).then_some(value))
}

fn yaml_error(error: &serde_yaml::Error, origin: &str) -> ConfigError {
    let mut message = error.to_string();
    let Some(location) = error.location() else {
        return ConfigError::Invalid {
            origin: origin.to_owned(),
            message: format!("invalid YAML: {message}"),
        };
    };
    // serde_yaml appends the location to its message; it is in the variant's fields already.
    let suffix = format!(" at line {} column {}", location.line(), location.column());
    if let Some(pos) = message.find(&suffix) {
        message.replace_range(pos..pos + suffix.len(), "");
    }
    if message.contains("alias") {
        message.push_str(
            " (a bare `*` starts a YAML alias: quote it, e.g. model_name: \"*\" or model: \"openai/*\")",
        );
    }
    ConfigError::Yaml {
        origin: origin.to_owned(),
        line: location.line(),
        column: location.column(),
        message,
    }
}

/// `a.b` or `a[0]` style paths for warnings.
pub(crate) fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn to_json(node: Node, path: &str, warnings: &mut Warnings) -> Value {
    match node {
        Node::Scalar(v) => v,
        Node::Seq(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| to_json(item, &format!("{path}[{i}]"), warnings))
                .collect(),
        ),
        Node::Map(entries) => Value::Object(map_to_json(entries, path, warnings)),
    }
}

fn map_to_json(
    entries: Vec<(Node, Node)>,
    path: &str,
    warnings: &mut Warnings,
) -> Map<String, Value> {
    let mut map = Map::new();
    let mut merged = Vec::new();
    for (key, value) in entries {
        let key = match key {
            Node::Scalar(Value::String(s)) => s,
            other => py_string(&to_json(other, path, warnings)),
        };
        if key == "<<" {
            merged.push(value);
            continue;
        }
        let child = child_path(path, &key);
        let value = to_json(value, &child, warnings);
        if map.insert(key, value).is_some() {
            warnings.push(format!("{child}: duplicate key; the last value wins"));
        }
    }
    // Merge keys: explicit keys win, then earlier merged mappings over later ones.
    for source in merged {
        let sources = match source {
            Node::Seq(items) => items,
            other => vec![other],
        };
        for source in sources {
            match to_json(source, path, warnings) {
                Value::Object(source) => {
                    for (key, value) in source {
                        map.entry(key).or_insert(value);
                    }
                }
                _ => warnings.push(format!(
                    "{}: a merge key (<<) must refer to a mapping; ignored",
                    child_path(path, "<<")
                )),
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(text: &str) -> (Result<Option<Value>, ConfigError>, Vec<String>) {
        let mut warnings = Warnings::default();
        let result = parse(text, "test.yaml", &mut warnings);
        (result, warnings.into_vec())
    }

    #[test]
    fn merge_keys_and_duplicates() {
        let (value, warnings) =
            load("base: &b {api_base: x, rpm: 1}\nm:\n  <<: *b\n  rpm: 2\n  rpm: 3\n");
        assert_eq!(
            value.unwrap().unwrap()["m"],
            json!({"rpm": 3, "api_base": "x"})
        );
        assert_eq!(warnings, vec!["m.rpm: duplicate key; the last value wins"]);
    }

    #[test]
    fn bare_star_is_a_yaml_error_with_location() {
        let (result, _) = load("model_list:\n  - model_name: *\n    litellm_params: {}\n");
        match result {
            Err(ConfigError::Yaml {
                line,
                column,
                message,
                ..
            }) => {
                // The scanner fails just after the `*`; the message names the alias at column 17.
                assert_eq!((line, column), (2, 18), "{message}");
                assert!(message.contains("alias at line 2 column 17"), "{message}");
                assert!(message.contains("quote it"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_documents() {
        assert!(load("").0.unwrap().is_none());
        assert!(load("# only a comment\n").0.unwrap().is_none());
        assert!(load("~\n").0.unwrap().is_none());
    }

    #[test]
    fn scalars_and_tags() {
        let (value, _) = load("a: .inf\nb: !custom 5\nc: 1e-05\nd: 12345678901234567890123\n");
        assert_eq!(
            value.unwrap().unwrap(),
            json!({"a": "inf", "b": 5, "c": 1e-05, "d": "12345678901234567890123"})
        );
    }
}
