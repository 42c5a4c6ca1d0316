//! The URL and headers of an [`UpstreamRequest`](super::UpstreamRequest), checked once per
//! deployment where they do not depend on the request: awc would otherwise parse the URL and every
//! header on each call.
//!
//! A URL or header awc cannot encode used to fail the send as a connection error. It still does,
//! with awc's words, when the request is built; adapters check headers before the URL, as awc
//! reported the last error it met and it met the URL first.

use std::fmt;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Uri;

use super::ProviderError;
use crate::config::SECRET_MASK;

/// An upstream URL, parsed once.
#[derive(Clone)]
pub(crate) struct UpstreamUrl {
    text: String,
    /// awc's error text for a URL it cannot parse.
    uri: Result<Uri, String>,
}

impl UpstreamUrl {
    pub(crate) fn new(text: String) -> UpstreamUrl {
        let uri = Uri::try_from(text.as_str()).map_err(|e| e.to_string());
        UpstreamUrl { text, uri }
    }

    /// The URL as written (what SigV4 signs).
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL (cloning it bumps reference counts), or the error a send to it would give.
    pub(crate) fn uri(&self, label: &str) -> Result<Uri, ProviderError> {
        match &self.uri {
            Ok(uri) => Ok(uri.clone()),
            Err(e) => Err(ProviderError::unreachable(label, e)),
        }
    }
}

impl fmt::Debug for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

/// Headers an adapter sends on every request, built when the adapter is; a request clones the
/// values (reference-count bumps).
#[derive(Clone, Default)]
pub(crate) struct FixedHeaders {
    valid: Vec<(HeaderName, HeaderValue)>,
    /// Configured values awc cannot send (a key with a line break), with awc's error text: they
    /// fail every request that does not replace them with an extra header.
    invalid: Vec<(HeaderName, String)>,
}

impl FixedHeaders {
    pub(crate) fn with(mut self, name: HeaderName, value: HeaderValue) -> FixedHeaders {
        self.valid.push((name, value));
        self
    }

    /// A configured value; a credential's is marked sensitive (see [`checked_value`]).
    pub(crate) fn with_text(mut self, name: HeaderName, value: &str) -> FixedHeaders {
        match checked_value(&name, value) {
            Ok(value) => self.valid.push((name, value)),
            Err(e) => self.invalid.push((name, e)),
        }
        self
    }

    /// These headers, then the request's `extra` ones, each replacing those of its name.
    pub(crate) fn with_extra(
        &self,
        label: &str,
        extra: &[(String, String)],
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ProviderError> {
        let mut headers = Vec::with_capacity(self.valid.len() + extra.len());
        headers.extend(self.valid.iter().cloned());
        merge_extra(label, &mut headers, extra)?;
        let kept = self.invalid.iter().rev().find(|(name, _)| {
            !extra
                .iter()
                .any(|(other, _)| other.eq_ignore_ascii_case(name.as_str()))
        });
        match kept {
            Some((_, error)) => Err(ProviderError::unreachable(label, error)),
            None => Ok(headers),
        }
    }
}

/// Credentials show as the mask.
impl fmt::Debug for FixedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.valid {
            if value.is_sensitive() {
                map.entry(name, &SECRET_MASK);
            } else {
                map.entry(name, value);
            }
        }
        for (name, error) in &self.invalid {
            map.entry(name, error);
        }
        map.finish()
    }
}

/// Adds `extra` after `headers`, each replacing the headers of its name (in any case) set before
/// it. When some cannot be sent, the request fails with awc's error for the last of them (awc
/// kept the last), unless a later extra header of the same name replaced it.
fn merge_extra(
    label: &str,
    headers: &mut Vec<(HeaderName, HeaderValue)>,
    extra: &[(String, String)],
) -> Result<(), ProviderError> {
    let mut refused = None;
    for (i, (name, value)) in extra.iter().enumerate() {
        if extra[i + 1..]
            .iter()
            .any(|(later, _)| later.eq_ignore_ascii_case(name))
        {
            continue;
        }
        match header(name, value) {
            Ok((name, value)) => {
                headers.retain(|(k, _)| *k != name);
                headers.push((name, value));
            }
            Err(e) => refused = Some(e),
        }
    }
    match refused {
        Some(e) => Err(ProviderError::unreachable(label, &e)),
        None => Ok(()),
    }
}

/// Appends headers computed per request (SigV4). When some cannot be sent, the request fails
/// with awc's error for the last of them.
pub(crate) fn push_headers<'a>(
    label: &str,
    headers: &mut Vec<(HeaderName, HeaderValue)>,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ProviderError> {
    let mut refused = None;
    for (name, value) in pairs {
        match header(name, value) {
            Ok(pair) => headers.push(pair),
            Err(e) => refused = Some(e),
        }
    }
    match refused {
        Some(e) => Err(ProviderError::unreachable(label, &e)),
        None => Ok(()),
    }
}

/// A header checked as awc checks a `(String, String)` pair (the name first).
fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
    let value = checked_value(&name, value)?;
    Ok((name, value))
}

/// A value awc can send, marked sensitive when the header carries a credential, so `Debug`
/// (and HTTP/2 header compression) never keeps it.
fn checked_value(name: &HeaderName, value: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
    if matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "x-api-key" | "api-key" | "x-amz-security-token"
    ) {
        value.set_sensitive(true);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::pairs;

    fn extra(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// What awc says when it is handed these headers as strings, the way requests were sent
    /// before headers were typed.
    async fn awc_error(headers: &[(&str, &str)]) -> String {
        let mut request = awc::Client::default().post("http://127.0.0.1:1/v1");
        for (name, value) in headers {
            request = request.insert_header((name.to_string(), value.to_string()));
        }
        match request.send_body("").await {
            Ok(_) => panic!("awc sent {headers:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn error_detail(e: &ProviderError) -> &str {
        e.message
            .strip_prefix(
                "litellm.APIConnectionError: APIConnectionError: OpenAIException - could not reach the upstream: ",
            )
            .unwrap_or(&e.message)
    }

    #[actix_rt::test]
    async fn refused_headers_fail_with_the_error_awc_gave() {
        let fixed = FixedHeaders::default()
            .with_text(HeaderName::from_static("authorization"), "Bearer k\n")
            .with(
                HeaderName::from_static("content-type"),
                HeaderValue::from_static("application/json"),
            );
        for sent in [
            &[("bad name", "v")][..],
            &[("x-ok", "a\nb")],
            &[("bad name", "a\nb")],
            &[("bad name", "v"), ("x-ok", "a\nb")],
            &[("x-ok", "a\nb"), ("bad name", "v")],
            &[("x-ok", "a\nb"), ("X-OK", "fine")],
            &[("authorization", "Bearer other")],
            &[],
        ] {
            // The merge as it was done on strings.
            let mut old = extra(&[
                ("authorization", "Bearer k\n"),
                ("content-type", "application/json"),
            ]);
            for (name, value) in extra(sent) {
                old.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
                old.push((name.to_ascii_lowercase(), value));
            }
            let built = fixed.with_extra("OpenAI", &extra(sent));
            if old.iter().all(|(k, v)| header(k, v).is_ok()) {
                assert_eq!(pairs(&built.unwrap()), old, "{sent:?}");
            } else {
                let old: Vec<(&str, &str)> =
                    old.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                assert_eq!(
                    error_detail(&built.unwrap_err()),
                    awc_error(&old).await,
                    "{sent:?}"
                );
            }
        }
    }

    #[actix_rt::test]
    async fn a_url_awc_cannot_parse_fails_with_its_error() {
        let url = UpstreamUrl::new("http://my host/v1/chat/completions".to_string());
        let e = url.uri("OpenAI").unwrap_err();
        let sent = awc::Client::default()
            .post("http://my host/v1/chat/completions")
            .send_body("")
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(error_detail(&e), sent.to_string());
        let url = UpstreamUrl::new("http://h:8000/v1/embeddings".to_string());
        assert_eq!(
            url.uri("OpenAI").unwrap().to_string(),
            "http://h:8000/v1/embeddings"
        );
    }

    #[test]
    fn credentials_are_sensitive_and_hidden_from_debug() {
        let fixed = FixedHeaders::default()
            .with_text(HeaderName::from_static("x-api-key"), "sk-secret")
            .with_text(HeaderName::from_static("anthropic-version"), "2023-06-01");
        let shown = format!("{fixed:?}");
        assert!(
            !shown.contains("sk-secret") && shown.contains(SECRET_MASK),
            "{shown}"
        );
        assert!(shown.contains("2023-06-01"), "{shown}");
        let built = fixed
            .with_extra(
                "X",
                &extra(&[("authorization", "Bearer t"), ("x-trace", "1")]),
            )
            .unwrap();
        let sensitive: Vec<bool> = built.iter().map(|(_, v)| v.is_sensitive()).collect();
        assert_eq!(sensitive, [true, false, true, false]);
    }
}
