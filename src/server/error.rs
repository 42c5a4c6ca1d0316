//! The one error type at the HTTP boundary. Every failure a client can see is rendered here as
//! OpenAI's error body `{"error":{"message","type","param","code"}}` with LiteLLM's status codes
//! (`code` is the HTTP status as a string, as LiteLLM sends it).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::providers::ProviderError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProxyError {
    /// The request itself is wrong: malformed JSON, a missing or mistyped field.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    /// No model group, alias, wildcard or deployment answers to this name.
    #[error("{route}: Invalid model name passed in model={model}. Call `/v1/models` to view available models for your key. Available model groups: [{}]", available.join(", "))]
    UnknownModel {
        route: &'static str,
        model: String,
        available: Vec<String>,
    },
    #[error("Authentication Error, {0}")]
    Auth(String),
    #[error("Request body too large: {size} bytes is over the limit of {limit} bytes (general_settings.max_request_size_mb)")]
    PayloadTooLarge { size: usize, limit: usize },
    /// The route does not exist on this proxy.
    #[error("{0}")]
    NotFound(String),
    /// Every deployment of the group is cooling down or at its rate limit.
    #[error("{message}")]
    NoDeployments {
        message: String,
        retry_after: Duration,
    },
    /// An upstream (or the mock) answered with an error, or could not be reached.
    #[error("{0}")]
    Provider(ProviderError),
    #[error("{0}")]
    Internal(String),
}

impl ProxyError {
    pub fn invalid(message: impl Into<String>) -> ProxyError {
        ProxyError::InvalidRequest {
            message: message.into(),
            param: None,
        }
    }

    /// OpenAI's `error.type` for this error.
    fn error_type(&self) -> Option<String> {
        match self {
            ProxyError::InvalidRequest { .. } | ProxyError::UnknownModel { .. } => {
                Some("invalid_request_error".into())
            }
            ProxyError::Auth(_) => Some("auth_error".into()),
            ProxyError::PayloadTooLarge { .. } => Some("invalid_request_error".into()),
            ProxyError::NotFound(_) => Some("not_found_error".into()),
            ProxyError::NoDeployments { .. } => Some("throttling_error".into()),
            ProxyError::Provider(e) => e.error_type.clone(),
            ProxyError::Internal(_) => Some("internal_server_error".into()),
        }
    }

    fn param(&self) -> Option<String> {
        match self {
            ProxyError::InvalidRequest { param, .. } => param.clone(),
            ProxyError::UnknownModel { .. } => Some("model".into()),
            ProxyError::Provider(e) => e.param.clone(),
            _ => None,
        }
    }

    /// The body every error response carries.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.to_string(),
                "type": self.error_type(),
                "param": self.param(),
                "code": self.status_code().as_u16().to_string(),
            }
        })
    }
}

impl ResponseError for ProxyError {
    fn status_code(&self) -> StatusCode {
        let code = match self {
            ProxyError::InvalidRequest { .. } | ProxyError::UnknownModel { .. } => 400,
            ProxyError::Auth(_) => 401,
            ProxyError::PayloadTooLarge { .. } => 413,
            ProxyError::NotFound(_) => 404,
            ProxyError::NoDeployments { .. } => 429,
            ProxyError::Provider(e) => e.status,
            ProxyError::Internal(_) => 500,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        let retry_after = match self {
            ProxyError::NoDeployments { retry_after, .. } => Some(*retry_after),
            ProxyError::Provider(e) if e.status == 429 => e.retry_after,
            _ => None,
        };
        if let Some(after) = retry_after {
            res.insert_header(("retry-after", retry_after_secs(after).to_string()));
        }
        res.json(self.body())
    }
}

/// Whole seconds, rounded up, never zero (a client told "0" would retry at once).
pub fn retry_after_secs(after: Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

impl From<ProviderError> for ProxyError {
    fn from(e: ProviderError) -> Self {
        ProxyError::Provider(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use llm_proxy_actors::ErrorClass;

    fn render(e: &ProxyError) -> (u16, serde_json::Value, Option<String>) {
        let res = e.error_response();
        let status = res.status().as_u16();
        let retry = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = res.into_body().try_into_bytes().unwrap_or_default();
        (
            status,
            serde_json::from_slice(&body).unwrap_or_default(),
            retry,
        )
    }

    #[test]
    fn unknown_model_is_a_400_naming_the_model_and_the_groups() {
        let e = ProxyError::UnknownModel {
            route: "/chat/completions",
            model: "gpt-5".into(),
            available: vec!["a".into(), "b".into()],
        };
        let (status, body, _) = render(&e);
        assert_eq!(status, 400);
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("model=gpt-5") && msg.contains("[a, b]"),
            "{msg}"
        );
        assert_eq!(body["error"]["code"], "400");
        assert_eq!(body["error"]["param"], "model");
    }

    #[test]
    fn provider_errors_keep_status_type_and_param() {
        let e = ProxyError::Provider(ProviderError::from_upstream(
            "OpenAI",
            429,
            "slow down",
            None,
            None,
            Some(Duration::from_millis(2500)),
        ));
        let (status, body, retry) = render(&e);
        assert_eq!(status, 429);
        assert_eq!(body["error"]["type"], "throttling_error");
        assert_eq!(body["error"]["code"], "429");
        assert_eq!(retry.as_deref(), Some("3"));
        let e = ProxyError::Provider(ProviderError::new(ErrorClass::Timeout, 408, "late"));
        assert_eq!(render(&e).0, 408);
    }

    #[test]
    fn no_deployments_is_a_429_with_retry_after() {
        let e = ProxyError::NoDeployments {
            message: "No deployments available for selected model".into(),
            retry_after: Duration::from_secs(4),
        };
        let (status, body, retry) = render(&e);
        assert_eq!((status, retry.as_deref()), (429, Some("4")));
        assert_eq!(body["error"]["code"], "429");
    }

    #[test]
    fn auth_errors_are_401_auth_error() {
        let (status, body, _) = render(&ProxyError::Auth("No api key passed in.".into()));
        assert_eq!(status, 401);
        assert_eq!(body["error"]["type"], "auth_error");
        assert_eq!(
            body["error"]["message"],
            "Authentication Error, No api key passed in."
        );
    }
}
