//! A value that must not reach logs or API responses.

use serde::{Serialize, Serializer};
use std::fmt;

/// What `Debug`, `Display` and `Serialize` print instead of a secret.
pub const SECRET_MASK: &str = "*****";

/// A secret string (master key, database URL, Redis password). `Debug`, `Display` and `Serialize`
/// print [`SECRET_MASK`]; reading the value takes an explicit [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares with `candidate` in time that depends only on the lengths, not on where the
    /// first difference is (for checking a client's key against the master key).
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        let mut diff = u8::from(a.len() != b.len());
        for (i, x) in a.iter().enumerate() {
            diff |= x ^ b.get(i).copied().unwrap_or(!x);
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({SECRET_MASK})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(SECRET_MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("sk-1234");
        assert_eq!(format!("{s}"), "*****");
        assert_eq!(format!("{s:?}"), "Secret(*****)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"*****\"");
        assert_eq!(s.expose(), "sk-1234");
    }

    #[test]
    fn matches_compares_whole_values() {
        let s = Secret::new("sk-1234");
        assert!(s.matches("sk-1234"));
        assert!(!s.matches("sk-123"));
        assert!(!s.matches("sk-12345"));
        assert!(!s.matches("sk-1235"));
        assert!(!s.matches(""));
        assert!(Secret::new("").matches(""));
    }
}
