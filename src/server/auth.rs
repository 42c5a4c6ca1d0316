//! Who may call the proxy: master-key auth, as LiteLLM's proxy reads keys from headers, or the
//! host's own callback when the proxy is embedded; plus the start-up rule that keeps a proxy
//! without a strong key off the network.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use actix_web::HttpRequest;

use super::error::ProxyError;

/// Keys printed in LiteLLM's docs and quick-starts: anyone can guess them.
const PUBLICLY_KNOWN_KEYS: &[&str] = &[
    "sk-1234",
    "sk-12345",
    "sk-123456",
    "sk-1234567890",
    "sk-master",
    "sk-master-key",
    "sk-admin",
    "sk-test",
    "sk-litellm",
    "sk-my-master-key",
    "changeme",
    "password",
];

/// Shorter keys than this are refused off loopback: they can be brute-forced.
const MIN_STRONG_KEY_LEN: usize = 16;

/// What a host's auth callback decided about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    Allow,
    /// Refuse with a 401 in OpenAI's error shape, `type: "auth_error"` and the message
    /// `"Authentication Error, <reason>"`.
    Deny(String),
}

impl AuthDecision {
    pub fn deny(reason: impl Into<String>) -> AuthDecision {
        AuthDecision::Deny(reason.into())
    }
}

/// A host's auth callback: it sees the request (headers, peer address, and the extensions the
/// host's own middleware set) and decides. It runs on the worker thread before the body is read;
/// it must not block.
pub type AuthCallback = Arc<dyn Fn(&HttpRequest) -> AuthDecision + Send + Sync>;

/// Who decides whether a request may use the proxy. The health probes never ask.
#[derive(Clone)]
pub enum Authorizer {
    /// `general_settings.master_key` (or `LITELLM_MASTER_KEY`); no key lets everything through.
    MasterKey(MasterKeyAuth),
    /// The embedding host's callback, in place of the master key.
    Host(AuthCallback),
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authorizer::MasterKey(auth) => f.debug_tuple("MasterKey").field(auth).finish(),
            Authorizer::Host(_) => f.write_str("Host(<callback>)"),
        }
    }
}

impl Authorizer {
    /// Allow or refuse one request.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ProxyError> {
        match self {
            Authorizer::MasterKey(auth) => auth.check(req.headers()),
            Authorizer::Host(callback) => match callback(req) {
                AuthDecision::Allow => Ok(()),
                AuthDecision::Deny(reason) => Err(ProxyError::Auth(reason)),
            },
        }
    }

    /// Whether requests need the master key (false with a host callback).
    pub fn requires_master_key(&self) -> bool {
        matches!(self, Authorizer::MasterKey(auth) if auth.enabled())
    }
}

/// How a request's key is checked.
#[derive(Clone)]
pub struct MasterKeyAuth {
    master_key: Option<String>,
    /// `general_settings.litellm_key_header_name`: when set, the only header read.
    header_name: Option<String>,
}

impl std::fmt::Debug for MasterKeyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeyAuth")
            .field("master_key", &self.master_key.as_ref().map(|_| "*****"))
            .field("header_name", &self.header_name)
            .finish()
    }
}

impl MasterKeyAuth {
    pub fn new(master_key: Option<String>, header_name: Option<String>) -> MasterKeyAuth {
        MasterKeyAuth {
            master_key: master_key.filter(|k| !k.is_empty()),
            header_name,
        }
    }

    pub fn enabled(&self) -> bool {
        self.master_key.is_some()
    }

    /// Allow or refuse one request. Without a master key every request passes (LiteLLM). The
    /// public health probes never call this.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ProxyError> {
        let Some(master) = &self.master_key else {
            return Ok(());
        };
        let presented = self.presented_key(headers)?;
        match presented {
            None => Err(ProxyError::Auth("No api key passed in.".into())),
            Some(key) if constant_time_eq(key.as_bytes(), master.as_bytes()) => Ok(()),
            Some(_) => Err(ProxyError::Auth(
                "Invalid proxy server token passed. Unable to verify the api key: it is not the proxy's master key.".into(),
            )),
        }
    }

    /// The key the client sent, from the first header LiteLLM reads that is present.
    fn presented_key<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, ProxyError> {
        // Fixed names as constants: a `&str` name would be parsed again on every lookup.
        let get = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(name) = &self.header_name {
            let value = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
            return Ok(value.map(strip_bearer).filter(|k| !k.is_empty()));
        }
        if let Some(v) = get(&X_LITELLM_API_KEY) {
            return Ok(Some(strip_bearer(v)).filter(|k| !k.is_empty()));
        }
        if let Some(v) = get(&AUTHORIZATION) {
            let key = ["Bearer ", "bearer ", "Basic ", "basic "]
                .iter()
                .find_map(|p| v.strip_prefix(p));
            return match key {
                Some(k) => Ok(Some(k.trim()).filter(|k| !k.is_empty())),
                None => Err(ProxyError::Auth(
                    "Malformed API Key passed in. Ensure Key has `Bearer ` prefix.".into(),
                )),
            };
        }
        for name in &OTHER_KEY_HEADERS {
            if let Some(v) = get(name) {
                return Ok(Some(v.trim()).filter(|k| !k.is_empty()));
            }
        }
        Ok(None)
    }
}

const X_LITELLM_API_KEY: HeaderName = HeaderName::from_static("x-litellm-api-key");

/// Provider-style key headers LiteLLM also accepts, in the order it reads them.
const OTHER_KEY_HEADERS: [HeaderName; 4] = [
    HeaderName::from_static("api-key"),
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("x-goog-api-key"),
    HeaderName::from_static("ocp-apim-subscription-key"),
];

/// Whether a (lowercase) header name is one a proxy key is read from: never forwarded upstream.
pub(crate) fn is_key_header(name: &str) -> bool {
    name == X_LITELLM_API_KEY.as_str() || OTHER_KEY_HEADERS.iter().any(|h| h.as_str() == name)
}

fn strip_bearer(v: &str) -> &str {
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .unwrap_or(v)
        .trim()
}

/// Compare without an early exit, so the time taken says nothing about where keys differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Every byte of `a` is compared (against `b` repeated), so the time depends on `a`'s
    // length only.
    let mut diff = a.len() ^ b.len();
    for (x, y) in a.iter().zip(b.iter().cycle()) {
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// Why a master key is not good enough to face a network.
pub fn weak_key_reason(key: Option<&str>) -> Option<&'static str> {
    match key {
        None => Some("no master key is set"),
        Some(k)
            if PUBLICLY_KNOWN_KEYS
                .iter()
                .any(|w| w.eq_ignore_ascii_case(k)) =>
        {
            Some("the master key is a publicly known example key")
        }
        Some(k) if k.len() < MIN_STRONG_KEY_LEN => {
            Some("the master key is shorter than 16 characters")
        }
        Some(_) => None,
    }
}

/// Refuse to listen on a non-loopback address with no key or a weak one, unless the operator
/// said so explicitly. Returns the message to print.
pub fn check_bind_is_safe(host: &str, key: Option<&str>, permit_weak: bool) -> Result<(), String> {
    if permit_weak || is_loopback(host) {
        return Ok(());
    }
    match weak_key_reason(key) {
        None => Ok(()),
        Some(reason) => Err(format!(
            "refusing to listen on {host}: {reason}, so anyone who can reach this address could use your provider keys. \
             Fix it by setting a strong general_settings.master_key (or LITELLM_MASTER_KEY), at least {MIN_STRONG_KEY_LEN} random characters, \
             or listen on loopback only (--host 127.0.0.1). To accept the risk anyway set \
             general_settings.dangerously_permit_weak_or_unset_master_key: true or LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY=true."
        )),
    }
}

pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const KEY: &str = "sk-a-strong-master-key-123";

    #[test]
    fn a_host_callback_replaces_the_master_key() {
        let auth = Authorizer::Host(Arc::new(|req: &HttpRequest| {
            if req.headers().contains_key("x-tenant") {
                AuthDecision::Allow
            } else {
                AuthDecision::deny("no tenant")
            }
        }));
        assert!(!auth.requires_master_key());
        let bearer = format!("Bearer {KEY}");
        let with_key = actix_web::test::TestRequest::default()
            .insert_header(("authorization", bearer.as_str()))
            .to_http_request();
        let e = auth.check(&with_key).unwrap_err();
        assert_eq!(e.to_string(), "Authentication Error, no tenant");
        let tenant = actix_web::test::TestRequest::default()
            .insert_header(("x-tenant", "acme"))
            .to_http_request();
        assert!(auth.check(&tenant).is_ok());
        let master = Authorizer::MasterKey(MasterKeyAuth::new(Some(KEY.into()), None));
        assert!(master.requires_master_key());
        assert!(master.check(&with_key).is_ok());
    }

    #[test]
    fn no_master_key_lets_everything_through() {
        let auth = MasterKeyAuth::new(None, None);
        assert!(auth.check(&headers(&[])).is_ok());
    }

    #[test]
    fn every_header_litellm_reads_is_accepted() {
        let auth = MasterKeyAuth::new(Some(KEY.into()), None);
        let bearer = format!("Bearer {KEY}");
        for (name, value) in [
            ("authorization", bearer.as_str()),
            ("x-litellm-api-key", KEY),
            ("x-litellm-api-key", bearer.as_str()),
            ("api-key", KEY),
            ("x-api-key", KEY),
            ("x-goog-api-key", KEY),
            ("ocp-apim-subscription-key", KEY),
        ] {
            assert!(auth.check(&headers(&[(name, value)])).is_ok(), "{name}");
        }
    }

    #[test]
    fn wrong_missing_and_malformed_keys_are_refused() {
        let auth = MasterKeyAuth::new(Some(KEY.into()), None);
        let msg = |h: &[(&str, &str)]| auth.check(&headers(h)).err().map(|e| e.to_string());
        assert_eq!(
            msg(&[]).as_deref(),
            Some("Authentication Error, No api key passed in.")
        );
        assert!(msg(&[("authorization", "Bearer sk-wrong")]).is_some());
        assert!(msg(&[("authorization", KEY)])
            .unwrap_or_default()
            .contains("Malformed API Key"));
    }

    #[test]
    fn a_custom_header_is_the_only_source() {
        let auth = MasterKeyAuth::new(Some(KEY.into()), Some("x-my-key".into()));
        assert!(auth.check(&headers(&[("x-my-key", KEY)])).is_ok());
        let bearer = format!("Bearer {KEY}");
        assert!(auth.check(&headers(&[("authorization", &bearer)])).is_err());
    }

    #[test]
    fn constant_time_eq_compares_whole_keys() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn weak_keys_are_refused_off_loopback_only() {
        assert!(check_bind_is_safe("127.0.0.1", None, false).is_ok());
        assert!(check_bind_is_safe("::1", None, false).is_ok());
        assert!(check_bind_is_safe("localhost", Some("sk-1234"), false).is_ok());
        let err = check_bind_is_safe("0.0.0.0", None, false).unwrap_err();
        assert!(
            err.contains("no master key")
                && err.contains("dangerously_permit_weak_or_unset_master_key")
        );
        assert!(check_bind_is_safe("0.0.0.0", Some("sk-1234"), false)
            .unwrap_err()
            .contains("publicly known"));
        assert!(check_bind_is_safe("0.0.0.0", Some("short"), false).is_err());
        assert!(check_bind_is_safe("0.0.0.0", Some(KEY), false).is_ok());
        assert!(check_bind_is_safe("0.0.0.0", None, true).is_ok());
    }
}
