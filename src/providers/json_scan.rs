//! A fast, conservative check of a JSON object that also says where its top-level members lie.
//!
//! Every request body and every OpenAI-shaped answer is checked as JSON and read one level deep
//! (`model`, `stream`, `usage`, `error`, ...); the rest passes through as bytes. serde_json did
//! that at some 10 instructions a byte, most of it in its visitor machinery. This scanner walks
//! the bytes once: a string's first bytes are tested eight at a time in a register, the rest of
//! a long one by memchr and a control-byte check the compiler vectorises.
//!
//! It is conservative: it accepts only what serde_json accepts, and gives up (`None`) on
//! anything else, on escaped keys and on deep nesting. Callers then parse with serde_json, which
//! makes the final call and words the error. It does not check UTF-8: callers do that (the
//! request body is checked whole; an answer's fields are checked when serde_json reads them).

use std::ops::Range;

/// serde_json refuses more than 128 levels; beyond this many the scanner leaves it to serde_json.
const MAX_DEPTH: u32 = 100;

/// One top-level member: its key (between the quotes, no escapes in it) and its value's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub key: Range<usize>,
    pub value: Range<usize>,
}

/// Checks that `bytes` is one JSON object, with only whitespace around it, and appends its
/// top-level members to `members` in order (a repeated key appears each time). `None`: not
/// valid JSON, an escaped key, or nesting deeper than [`MAX_DEPTH`]; `members` is then
/// unspecified and the caller falls back to serde_json.
pub(crate) fn object_members(bytes: &[u8], members: &mut Vec<Member>) -> Option<()> {
    let mut i = skip_space(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_space(bytes, i + 1);
    if bytes.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let (key, escaped, after_key) = key_at(bytes, i)?;
            if escaped {
                return None;
            }
            i = skip_space(bytes, after_key);
            let start = i;
            i = value_end(bytes, i)?;
            members.push(Member {
                key,
                value: start..i,
            });
            i = skip_space(bytes, i);
            match bytes.get(i) {
                Some(b',') => i = skip_space(bytes, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_space(bytes, i) == bytes.len()).then_some(())
}

/// A key at `i` up to and past its colon: the key's range (between its quotes), whether it
/// holds an escape, and where its value starts (before any whitespace). `None` for anything but
/// a string followed by `:`.
fn key_at(bytes: &[u8], i: usize) -> Option<(Range<usize>, bool, usize)> {
    if bytes.get(i) != Some(&b'"') {
        return None;
    }
    let (end, escaped) = string_end(bytes, i)?;
    let colon = skip_space(bytes, end);
    (bytes.get(colon) == Some(&b':')).then(|| ((i + 1)..(end - 1), escaped, colon + 1))
}

/// Where the value that starts at `i` ends, checking all of it. Containers are walked with a
/// bit stack (1 = object) rather than by recursion.
fn value_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    let mut objects: u128 = 0;
    let mut depth: u32 = 0;
    loop {
        // A value starts at `i`.
        match *bytes.get(i)? {
            b'"' => i = string_end(bytes, i)?.0,
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                i = skip_space(bytes, i + 1);
                if bytes.get(i) == Some(&close) {
                    i += 1;
                } else {
                    if depth == MAX_DEPTH {
                        return None;
                    }
                    objects = (objects << 1) | u128::from(open == b'{');
                    depth += 1;
                    if open == b'{' {
                        i = skip_space(bytes, key_at(bytes, i)?.2);
                    }
                    continue;
                }
            }
            b't' => i = literal(bytes, i, b"true")?,
            b'f' => i = literal(bytes, i, b"false")?,
            b'n' => i = literal(bytes, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number_end(bytes, i)?,
            _ => return None,
        }
        // After a value: close what ends here, then go on to the next element or member.
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = skip_space(bytes, i);
            let in_object = objects & 1 == 1;
            match (*bytes.get(i)?, in_object) {
                (b',', true) => {
                    i = skip_space(bytes, key_at(bytes, skip_space(bytes, i + 1))?.2);
                    break;
                }
                (b',', false) => {
                    i = skip_space(bytes, i + 1);
                    break;
                }
                (b'}', true) | (b']', false) => {
                    objects >>= 1;
                    depth -= 1;
                    i += 1;
                }
                _ => return None,
            }
        }
    }
}

/// The string that opens at `i` (on its quote): the index past its closing quote, and whether
/// it held an escape. `None` for a control character, a bad escape or no closing quote.
fn string_end(bytes: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut at = i + 1;
    let mut escaped = false;
    loop {
        at = special_byte(bytes, at)?;
        if bytes[at] == b'"' {
            return Some((at + 1, escaped));
        }
        if bytes[at] < 0x20 {
            return None;
        }
        escaped = true;
        at += match *bytes.get(at + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
            b'u' if bytes
                .get(at + 2..at + 6)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) =>
            {
                6
            }
            _ => return None,
        };
    }
}

/// The first quote, backslash or control character at or after `at`. Most strings in a request
/// are short (keys, roles), so the first bytes are tested eight at a time in a register; a long
/// string's rest goes to memchr's vector search.
fn special_byte(bytes: &[u8], at: usize) -> Option<usize> {
    const SHORT: usize = 32;
    let head = bytes.get(at..(at + SHORT).min(bytes.len()))?;
    let mut words = head.chunks_exact(8);
    for (n, word) in words.by_ref().enumerate() {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        let found = special_in_word(word);
        if found != 0 {
            return Some(at + 8 * n + (found.trailing_zeros() / 8) as usize);
        }
    }
    let at = at + head.len() - words.remainder().len();
    let rest = &bytes[at..];
    let found = memchr::memchr2(b'"', b'\\', rest);
    let scanned = &rest[..found.unwrap_or(rest.len())];
    if has_control(scanned) {
        return scanned.iter().position(|&b| b < 0x20).map(|c| at + c);
    }
    found.map(|f| at + f)
}

/// The high bit of each byte of `word` (little-endian) that is a quote, a backslash or below
/// 0x20, exact up to the lowest one set (borrows only carry upwards). The three byte tests
/// (`x - 0x01` where `x` is zero, `word - 0x20` where `word` is small) share one `& !word`: a
/// quote's and a backslash's high bit is clear, so XOR with them keeps `word`'s high bits.
fn special_in_word(word: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    (quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES) | word.wrapping_sub(ONES * 0x20))
        & !word
        & HIGH
}

/// Whether any byte is below 0x20, which JSON strings may not hold raw. No early exit, so the
/// compiler turns it into wide compares.
fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &b| found | (b < 0x20))
}

fn literal(bytes: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (bytes.get(i..i + word.len()) == Some(word)).then_some(i + word.len())
}

/// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    let digits = |bytes: &[u8], from: usize| -> usize {
        from + bytes[from.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    match bytes.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(bytes, i),
        _ => return None,
    }
    if bytes.get(i) == Some(&b'.') {
        let end = digits(bytes, i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits(bytes, i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::body::TopLevel;

    fn members(text: &str) -> Option<Vec<(&str, &str)>> {
        let mut found = Vec::new();
        object_members(text.as_bytes(), &mut found)?;
        Some(
            found
                .into_iter()
                .map(|m| (&text[m.key], &text[m.value]))
                .collect(),
        )
    }

    /// What serde_json says (through the request body's own fallback visitor): the top-level
    /// members of a valid object, keys unescaped.
    fn by_serde(text: &str) -> Option<Vec<(String, String)>> {
        let mut de = serde_json::Deserializer::from_str(text);
        let found = serde::Deserializer::deserialize_map(&mut de, TopLevel).ok()?;
        de.end().ok()?;
        let start = text.as_ptr() as usize;
        Some(
            found
                .into_iter()
                .map(|(key, at, len)| (key, text[at - start..at - start + len].to_string()))
                .collect(),
        )
    }

    #[test]
    fn members_are_listed_with_their_raw_values() {
        assert_eq!(
            members(
                r#" {"model": "m" , "messages":[{"role":"user","content":"a\"}"}],"n":-1.5e+3,"s":true,"x":null,"o":{}} "#
            ),
            Some(vec![
                ("model", r#""m""#),
                ("messages", r#"[{"role":"user","content":"a\"}"}]"#),
                ("n", "-1.5e+3"),
                ("s", "true"),
                ("x", "null"),
                ("o", "{}"),
            ])
        );
        assert_eq!(members("{}"), Some(vec![]));
        assert_eq!(
            members(r#"{"a":1,"a":2}"#),
            Some(vec![("a", "1"), ("a", "2")])
        );
    }

    #[test]
    fn invalid_json_is_never_accepted() {
        for bad in [
            "",
            "[]",
            "\"x\"",
            "{",
            "{} x",
            "{,}",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":{1:2}}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":+1}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"\u12G4"}"#,
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"new\nline\"}",
            r#"{"a":"open}"#,
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            r#"{"a":[1}"#,
            r#"{"a" 1}"#,
            r#"{'a':1}"#,
            r#"{"a":NaN}"#,
        ] {
            assert_eq!(members(bad), None, "{bad}");
            assert!(by_serde(bad).is_none(), "serde should refuse {bad}");
        }
    }

    #[test]
    fn what_it_leaves_to_serde_is_escaped_keys_and_deep_nesting() {
        assert_eq!(members(r#"{"mo\u0064el":"x"}"#), None);
        assert!(by_serde(r#"{"mo\u0064el":"x"}"#).is_some());
        let deep = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH as usize + 1),
            "]".repeat(MAX_DEPTH as usize + 1)
        );
        assert_eq!(members(&deep), None);
        let fine = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH as usize),
            "]".repeat(MAX_DEPTH as usize)
        );
        assert_eq!(members(&fine).map(|m| m.len()), Some(1));
    }

    /// The word-at-a-time and vector searches find exactly the first quote, backslash or
    /// control byte, wherever it falls against the 8-byte words and the 32-byte switch, among
    /// neighbours that are not special (0x20, 0x21, 0x23, 0x5B, 0x5D, 0x7F, high bytes).
    #[test]
    fn the_first_special_byte_is_found_at_every_offset() {
        let naive = |bytes: &[u8], at: usize| {
            bytes[at..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .map(|p| at + p)
        };
        let fillers: [&[u8]; 3] = [b"a", b" !#[]\x7f", &[0x80, 0xc3, 0xa9, 0xff, 0x5b, 0x5d]];
        let specials = [b'"', b'\\', 0x00, 0x01, 0x1f];
        for filler in fillers {
            for len in 0..80 {
                let plain: Vec<u8> = filler.iter().copied().cycle().take(len).collect();
                for start in 0..len.min(9) {
                    assert_eq!(special_byte(&plain, start), None, "{plain:?} from {start}");
                }
                for pos in 0..len {
                    for special in specials {
                        let mut bytes = plain.clone();
                        bytes[pos] = special;
                        for start in 0..=pos.min(9) {
                            assert_eq!(
                                special_byte(&bytes, start),
                                naive(&bytes, start),
                                "{bytes:?} from {start}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Every text built from these pieces gets the same answer from the scanner and serde_json
    /// wherever the scanner answers at all, and the scanner answers for every valid one here.
    #[test]
    fn it_agrees_with_serde_json() {
        let values = [
            "0",
            "-0.0e0",
            "12.50E-3",
            "1e400",
            "00",
            "1.e3",
            "true",
            "false",
            "null",
            "\"\"",
            r#""\\\/\b\f\n\r\t\"\u00e9\uD83D\uDE00""#,
            r#""\ud800""#,
            "\"é ü 😀\"",
            "[]",
            "[ 1 , [ ] , { } ]",
            r#"{"k\"ey":{"n":[{"m":null}]}}"#,
            r#"{"a":1 , "b" : [true]}"#,
            "[1,]",
            "{\"a\":1,}",
            "[\"\u{1}\"]",
            "[}",
            "-",
        ];
        let mut checked = 0;
        for a in values {
            for b in values {
                for text in [
                    format!("{{\"a\":{a}}}"),
                    format!("{{ \"a\" : {a} , \"b\":{b} }}"),
                    format!("{{\"a\":[{a},{b}],\"c\":{{\"d\":{b}}}}}"),
                ] {
                    let serde = by_serde(&text);
                    let scan = members(&text).map(|m| {
                        m.into_iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect::<Vec<_>>()
                    });
                    assert_eq!(scan, serde, "{text}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 3 * values.len() * values.len());
    }
}
