//! How LiteLLM turns a deployment into its id: Python's `str()`, `repr()` and `json.dumps()` of
//! the YAML values, concatenated and hashed with SHA-256 (`Router._generate_model_id`).
//!
//! Only the string-building rules are reproduced here, so that a config loaded by llm-proxy gets
//! the same deployment ids as under LiteLLM's proxy.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The id LiteLLM derives for a deployment without `model_info.id`: the lowercase hex SHA-256 of
/// `model_name` followed by each `litellm_params` key and value (strings as is, mappings as
/// `json.dumps`, everything else as Python `str()`), in YAML order, with no separators.
pub(crate) fn generate_model_id(model_name: &str, litellm_params: &Map<String, Value>) -> String {
    let mut text = String::from(model_name);
    for (key, value) in litellm_params {
        text.push_str(key);
        match value {
            Value::Object(_) => json_dumps(value, &mut text),
            other => py_str(other, &mut text),
        }
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Python `str(value)`: strings unchanged, containers through `repr`.
pub(crate) fn py_str(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        other => py_repr(other, out),
    }
}

/// Python `str(value)` as a new string.
pub(crate) fn py_string(value: &Value) -> String {
    let mut out = String::new();
    py_str(value, &mut out);
    out
}

/// Python `repr(value)` of the value PyYAML would have produced.
pub(crate) fn py_repr(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => push_number(n, out),
        Value::String(s) => py_repr_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr_str(key, out);
                out.push_str(": ");
                py_repr(item, out);
            }
            out.push('}');
        }
    }
}

fn push_number(n: &serde_json::Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        out.push_str(&py_float_repr(f));
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent is in -4..16, else in scientific notation with a signed, two-digit exponent.
pub(crate) fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` prints the shortest round-trip digits, like Python's repr.
    let scientific = format!("{:e}", x.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if x < 0.0 { "-" } else { "" };
    let point = exponent + 1; // digits are 0.d1d2... × 10^point
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if !(-3..=16).contains(&point) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{sign}{first}{dot}{rest}e{exp_sign}{:02}",
            exponent.unsigned_abs()
        )
    } else if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        format!("{sign}0.{zeros}{digits}")
    } else if point >= n {
        let zeros = "0".repeat((point - n).unsigned_abs() as usize);
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (int, frac) = digits.split_at(point.unsigned_abs() as usize);
        format!("{sign}{int}.{frac}")
    }
}

/// Python's `repr(str)`: single quotes unless the text holds a `'` and no `"`.
fn py_repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !py_printable(c) => {
                let code = u32::from(c);
                let _ = if code < 0x100 {
                    write!(out, "\\x{code:02x}")
                } else if code < 0x10000 {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `str.isprintable` for one character, approximated without the Unicode tables: control
/// characters, separators other than the space, and the common format characters are not
/// printable.
fn py_printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c,
            '\u{a0}' | '\u{ad}' | '\u{1680}' | '\u{2000}'..='\u{200f}' | '\u{2028}'..='\u{202f}'
            | '\u{205f}'..='\u{206f}' | '\u{3000}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
            | '\u{e000}'..='\u{f8ff}'))
}

/// Python's `json.dumps(value)` with its defaults, as a new string.
pub(crate) fn python_json(value: &Value) -> String {
    let mut out = String::new();
    json_dumps(value, &mut out);
    out
}

/// Python's `json.dumps(value)` with its defaults: `", "` and `": "` separators, ASCII-only
/// output, floats as `repr`.
pub(crate) fn json_dumps(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => push_number(n, out),
        Value::String(s) => json_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json_dumps(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json_str(key, out);
                out.push_str(": ");
                json_dumps(item, out);
            }
            out.push('}');
        }
    }
}

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (0.2, "0.2"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (-2.5, "-2.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123456.789, "123456.789"),
            (2.5e-7, "2.5e-07"),
            (0.0, "0.0"),
            (f64::INFINITY, "inf"),
        ];
        for (x, expected) in cases {
            assert_eq!(py_float_repr(x), expected, "{x}");
        }
    }

    #[test]
    fn repr_of_lists_and_dicts() {
        let mut out = String::new();
        py_repr(
            &json!(["org-1", "it's", 2, 0.5, true, null, {"a": "b"}, "a\"b'c"]),
            &mut out,
        );
        assert_eq!(
            out,
            r#"['org-1', "it's", 2, 0.5, True, None, {'a': 'b'}, 'a"b\'c']"#
        );
    }

    #[test]
    fn json_dumps_like_python() {
        let mut out = String::new();
        json_dumps(
            &json!({"AI-Resource Group": "ishaan-resource", "n": [1, 2.0, null], "é": "\u{1F600}\n"}),
            &mut out,
        );
        assert_eq!(
            out,
            r#"{"AI-Resource Group": "ishaan-resource", "n": [1, 2.0, null], "\u00e9": "\ud83d\ude00\n"}"#
        );
    }
}
