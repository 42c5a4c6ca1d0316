//! Field readers that accept what LiteLLM accepts: numbers written as strings (`"6"`), booleans
//! as `"True"`/`"false"`, a single string where a list is expected. Used with
//! `#[serde(default, deserialize_with = "...")]`; null reads as `None`.

use super::secret::Secret;
use super::settings::FallbackList;
use serde::de::{self, Deserializer, Error as _};
use serde_json::{Map, Value};

/// Describes a value for error messages: "found the string \"abc\"".
fn found(value: &Value) -> String {
    match value {
        Value::Null => "found null".to_owned(),
        Value::Bool(b) => format!("found the boolean {b}"),
        Value::Number(n) => format!("found the number {n}"),
        Value::String(s) => format!("found the string {s:?}"),
        Value::Array(_) => "found a list".to_owned(),
        Value::Object(_) => "found a mapping".to_owned(),
    }
}

fn fail<E: de::Error>(expected: &str, value: &Value) -> E {
    E::custom(format!("expected {expected}, {}", found(value)))
}

/// A non-negative integer from a number or a numeric string.
pub(crate) fn value_as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 18_446_744_073_709_551_616.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .and_then(|f| value_as_u64(&Value::from(f)))
            })
        }
        _ => None,
    }
}

/// A finite number from a number or a numeric string.
pub(crate) fn value_as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A boolean from a boolean or `true`/`false`/`yes`/`no`/`on`/`off`/`1`/`0` in any case.
pub(crate) fn value_as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A string from a string, or a number written without quotes.
fn value_as_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn read<'de, D, T>(
    deserializer: D,
    expected: &str,
    convert: impl FnOnce(&Value) -> Option<T>,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    let value: Value = serde::Deserialize::deserialize(deserializer)?;
    if value.is_null() {
        return Ok(None);
    }
    convert(&value)
        .map(Some)
        .ok_or_else(|| fail(expected, &value))
}

pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    read(d, "a non-negative integer", value_as_u64)
}

pub(crate) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    read(d, "an integer", |v| match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

pub(crate) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    read(d, "a number", value_as_f64)
}

pub(crate) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    read(d, "a boolean", value_as_bool)
}

pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    read(d, "a string", value_as_string)
}

pub(crate) fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    read(d, "a string", |v| value_as_string(v).map(Secret::new))
}

pub(crate) fn opt_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Map<String, Value>>, D::Error> {
    read(d, "a mapping", |v| v.as_object().cloned())
}

/// A list of strings; a single string is a one-element list.
pub(crate) fn opt_string_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    read(d, "a list of strings", string_list)
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => items.iter().map(value_as_string).collect(),
        other => value_as_string(other).map(|s| vec![s]),
    }
}

/// A mapping of strings to strings, in YAML order.
pub(crate) fn opt_string_pairs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<(String, String)>>, D::Error> {
    read(d, "a mapping of names to names", |v| {
        v.as_object()?
            .iter()
            .map(|(k, v)| Some((k.clone(), value_as_string(v)?)))
            .collect()
    })
}

/// LiteLLM's fallback lists: `[{"a": ["b", "c"]}, {"d": ["e"]}]` (each mapping may hold several
/// keys; a single name may stand for a one-element list). A plain mapping `{a: [b]}` is accepted
/// too.
pub(crate) fn opt_fallbacks<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<FallbackList>, D::Error> {
    let value: Value = serde::Deserialize::deserialize(d)?;
    let maps: Vec<&Map<String, Value>> = match &value {
        Value::Null => return Ok(None),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Object(map) => Ok(map),
                other => Err(fail::<D::Error>(
                    "a list of mappings like {\"model-a\": [\"model-b\"]}",
                    other,
                )),
            })
            .collect::<Result<_, _>>()?,
        Value::Object(map) => vec![map],
        other => {
            return Err(fail(
                "a list of mappings like {\"model-a\": [\"model-b\"]}",
                other,
            ))
        }
    };
    let mut out = Vec::new();
    for map in maps {
        for (group, targets) in map {
            let targets = string_list(targets).ok_or_else(|| {
                D::Error::custom(format!(
                    "{group}: expected a list of model names, {}",
                    found(targets)
                ))
            })?;
            out.push((group.clone(), targets));
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_booleans_from_strings() {
        assert_eq!(value_as_u64(&json!("6")), Some(6));
        assert_eq!(value_as_u64(&json!(6.0)), Some(6));
        assert_eq!(value_as_u64(&json!(-1)), None);
        assert_eq!(value_as_u64(&json!("6.5")), None);
        assert_eq!(value_as_f64(&json!("0.5")), Some(0.5));
        assert_eq!(value_as_bool(&json!("True")), Some(true));
        assert_eq!(value_as_bool(&json!("off")), Some(false));
        assert_eq!(value_as_bool(&json!("maybe")), None);
    }
}
