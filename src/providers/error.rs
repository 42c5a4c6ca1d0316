//! The one error type every provider adapter returns, classified for the router and worded the
//! way LiteLLM words it for the client (`litellm.RateLimitError: RateLimitError: OpenAIException - …`).

use std::time::Duration;

use llm_proxy_actors::{AttemptError, ErrorClass};

use super::class_for_status;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub class: ErrorClass,
    /// The HTTP status the client gets.
    pub status: u16,
    /// The whole message the client sees.
    pub message: String,
    /// OpenAI's `error.type` when the upstream gave one (`invalid_request_error`, ...).
    pub error_type: Option<String>,
    pub param: Option<String>,
    pub retry_after: Option<Duration>,
}

impl AttemptError for ProviderError {
    fn class(&self) -> ErrorClass {
        self.class
    }
    fn status(&self) -> u16 {
        self.status
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl ProviderError {
    /// An upstream error response, classified by its message first and its status second, as
    /// LiteLLM's exception mapping does. `provider_label` is the capitalised provider name used
    /// in the message (`OpenAI`, `Azure`, `Anthropic`, ...).
    pub fn from_upstream(
        provider_label: &str,
        status: u16,
        upstream_message: &str,
        error_type: Option<String>,
        param: Option<String>,
        retry_after: Option<Duration>,
    ) -> ProviderError {
        ProviderError::from_upstream_coded(
            provider_label,
            status,
            upstream_message,
            error_type,
            None,
            param,
            retry_after,
        )
    }

    /// [`ProviderError::from_upstream`] for an error body that also carries OpenAI's `error.code`
    /// (`context_length_exceeded`, `content_policy_violation`, `rate_limit_exceeded`, ...).
    /// LiteLLM classifies the whole error string, code included, so the code takes part in the
    /// classification; the message the client sees is the upstream message alone, as before.
    pub fn from_upstream_coded(
        provider_label: &str,
        status: u16,
        upstream_message: &str,
        error_type: Option<String>,
        code: Option<&str>,
        param: Option<String>,
        retry_after: Option<Duration>,
    ) -> ProviderError {
        let class = match code.map(str::trim).filter(|c| !c.is_empty()) {
            Some(code) => classify(
                status,
                &format!("{upstream_message} {code}"),
                error_type.as_deref(),
            ),
            None => classify(status, upstream_message, error_type.as_deref()),
        };
        let status = status_for(class, status);
        let error_type = if class == ErrorClass::RateLimit {
            Some("throttling_error".to_string())
        } else {
            error_type
        };
        ProviderError {
            class,
            status,
            message: litellm_message(class, status, provider_label, upstream_message),
            error_type,
            param,
            retry_after,
        }
    }

    /// A `ProviderError` with a message written by the proxy itself.
    pub fn new(class: ErrorClass, status: u16, message: impl Into<String>) -> ProviderError {
        ProviderError {
            class,
            status,
            message: message.into(),
            error_type: None,
            param: None,
            retry_after: None,
        }
    }

    /// The upstream could not be reached or dropped the connection before answering.
    pub fn connection(provider_label: &str, detail: &str) -> ProviderError {
        ProviderError::new(
            ErrorClass::Connection,
            500,
            format!("litellm.APIConnectionError: APIConnectionError: {provider_label}Exception - {detail}"),
        )
    }

    /// The request could not be sent: no connection, or (found when the request is built) a URL
    /// or header awc cannot encode. `detail` is awc's error text.
    pub fn unreachable(provider_label: &str, detail: &dyn std::fmt::Display) -> ProviderError {
        ProviderError::connection(
            provider_label,
            &format!("could not reach the upstream: {detail}"),
        )
    }

    /// The upstream did not answer within `timeout`.
    pub fn timeout(provider_label: &str, timeout: Duration) -> ProviderError {
        ProviderError::new(
            ErrorClass::Timeout,
            408,
            format!(
                "litellm.Timeout: Timeout Error: {provider_label}Exception - Request timed out. Timeout passed={}, time taken={} seconds",
                timeout.as_secs_f64(),
                timeout.as_secs_f64()
            ),
        )
    }

    /// A deployment whose credentials reference an environment variable that is not set.
    pub fn missing_env(var: &str, model: &str) -> ProviderError {
        ProviderError::new(
            ErrorClass::Auth,
            401,
            format!(
                "litellm.AuthenticationError: the deployment for model={model} reads its credentials from the environment variable {var}, which is not set on the proxy"
            ),
        )
    }

    /// A deployment whose configuration cannot make a request (missing api_base, ...).
    pub fn invalid_config(message: impl Into<String>) -> ProviderError {
        ProviderError::new(
            ErrorClass::BadRequest,
            400,
            format!("litellm.BadRequestError: {}", message.into()),
        )
    }

    pub fn unsupported_provider(provider: &str, model: &str) -> ProviderError {
        ProviderError::new(
            ErrorClass::BadRequest,
            400,
            format!(
                "litellm.BadRequestError: Unmapped LLM provider for this endpoint. You passed model={model}, custom_llm_provider={provider}. llm-proxy does not support this provider yet"
            ),
        )
    }

    pub fn provider_not_provided(model: &str) -> ProviderError {
        ProviderError::new(
            ErrorClass::BadRequest,
            400,
            format!(
                "litellm.BadRequestError: LLM Provider NOT provided. Pass in the LLM provider you are trying to call. You passed model={model}\n Pass model as E.g. For 'Huggingface' inference endpoints pass in `completion(model='huggingface/starcoder',..)`"
            ),
        )
    }

    /// An OpenAI parameter the provider does not take, without `drop_params`.
    pub fn unsupported_params(provider: &str, names: &[String], model: &str) -> ProviderError {
        let list = names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut e = ProviderError::new(
            ErrorClass::BadRequest,
            400,
            format!(
                "litellm.UnsupportedParamsError: {provider} does not support parameters: [{list}], for model={model}. To drop these, set `litellm.drop_params=True` or for proxy:\n\n`litellm_settings:\n drop_params: true`\n. \n If you want to use these params dynamically send allowed_openai_params=[{list}] in your request."
            ),
        );
        e.param = names.first().cloned();
        e
    }

    /// The upstream answered 2xx with a body we cannot read.
    pub fn malformed_response(provider_label: &str, detail: &str) -> ProviderError {
        ProviderError::new(
            ErrorClass::ServerError,
            500,
            format!("litellm.APIError: APIError: {provider_label}Exception - invalid response from the provider: {detail}"),
        )
    }
}

/// LiteLLM checks the error text before the status (§5.4 of the reference).
pub fn classify(status: u16, message: &str, error_type: Option<&str>) -> ErrorClass {
    let lower = message.to_ascii_lowercase();
    if is_rate_limit_text(&lower) {
        return ErrorClass::RateLimit;
    }
    if is_context_window_text(&lower) {
        return ErrorClass::ContextWindowExceeded;
    }
    let invalid_request =
        error_type == Some("invalid_request_error") || lower.contains("invalid_request_error");
    if invalid_request && lower.contains("model_not_found") {
        return ErrorClass::NotFound;
    }
    if lower.contains("a timeout occurred") {
        return ErrorClass::Timeout;
    }
    if is_content_policy_text(&lower, invalid_request) {
        return ErrorClass::ContentPolicy;
    }
    if status < 400 && lower.contains("request too large") {
        return ErrorClass::RateLimit;
    }
    class_for_status(status)
}

fn is_rate_limit_text(lower: &str) -> bool {
    lower.contains("rate limit")
        || lower.contains("rate_limit")
        || lower.contains("rate-limit")
        || lower.contains("service tier capacity exceeded")
}

/// Phrases providers use when the prompt does not fit the model.
pub fn is_context_window_text(lower: &str) -> bool {
    const PHRASES: &[&str] = &[
        "exceed context limit",
        "this model's maximum context length is",
        "string too long. expected a string with maximum length",
        "model's maximum context limit",
        "is longer than the model's context length",
        "input tokens exceed the configured limit",
        "`inputs` tokens + `max_new_tokens` must be",
        "exceeds the maximum number of tokens allowed",
        "context_length_exceeded",
        "prompt is too long",
        "input is too long",
        "too many tokens",
    ];
    PHRASES.iter().any(|p| lower.contains(p))
        || (lower.contains("current length is") && lower.contains("while limit is"))
}

fn is_content_policy_text(lower: &str, invalid_request: bool) -> bool {
    (invalid_request && lower.contains("content_policy_violation"))
        || (lower.contains("invalid prompt") && lower.contains("violating our usage policy"))
        || lower.contains("request was rejected as a result of the safety system")
        || lower.contains("content_filter_policy")
        || lower.contains("the response was filtered due to the prompt triggering")
}

/// The status the client gets for a class (context-window and content-policy errors are 400s
/// whatever the upstream said; everything else keeps the upstream status).
fn status_for(class: ErrorClass, upstream: u16) -> u16 {
    match class {
        ErrorClass::ContextWindowExceeded | ErrorClass::ContentPolicy => 400,
        ErrorClass::BadRequest if !(400..500).contains(&upstream) => 400,
        ErrorClass::RateLimit => 429,
        ErrorClass::NotFound if upstream < 400 => 404,
        ErrorClass::Timeout if upstream != 504 => 408,
        _ => upstream,
    }
}

fn litellm_message(class: ErrorClass, status: u16, provider_label: &str, upstream: &str) -> String {
    let name = class_name(class, status);
    if name == "BadRequestError" {
        format!("litellm.BadRequestError: {provider_label}Exception - {upstream}")
    } else {
        format!("litellm.{name}: {name}: {provider_label}Exception - {upstream}")
    }
}

/// LiteLLM's exception class name for a class and status.
pub fn class_name(class: ErrorClass, status: u16) -> &'static str {
    match class {
        ErrorClass::BadRequest | ErrorClass::UnprocessableEntity => "BadRequestError",
        ErrorClass::ContextWindowExceeded => "ContextWindowExceededError",
        ErrorClass::ContentPolicy => "ContentPolicyViolationError",
        ErrorClass::Auth => "AuthenticationError",
        ErrorClass::PermissionDenied => "PermissionDeniedError",
        ErrorClass::NotFound => "NotFoundError",
        ErrorClass::Timeout => "Timeout",
        ErrorClass::RateLimit => "RateLimitError",
        ErrorClass::Connection => "APIConnectionError",
        ErrorClass::Cancelled => "APIError",
        ErrorClass::ServerError => match status {
            500 => "InternalServerError",
            502 => "BadGatewayError",
            503 => "ServiceUnavailableError",
            _ => "APIError",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_become_throttling_errors() {
        let e = ProviderError::from_upstream(
            "OpenAI",
            429,
            "Rate limit reached for gpt-4o",
            None,
            None,
            None,
        );
        assert_eq!(e.class, ErrorClass::RateLimit);
        assert_eq!(e.status, 429);
        assert_eq!(e.error_type.as_deref(), Some("throttling_error"));
        assert_eq!(e.message, "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for gpt-4o");
    }

    #[test]
    fn context_window_is_found_in_the_text() {
        let e = ProviderError::from_upstream(
            "OpenAI",
            400,
            "This model's maximum context length is 8192 tokens",
            Some("invalid_request_error".into()),
            Some("messages".into()),
            None,
        );
        assert_eq!(e.class, ErrorClass::ContextWindowExceeded);
        assert_eq!(e.status, 400);
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(e.message.starts_with(
            "litellm.ContextWindowExceededError: ContextWindowExceededError: OpenAIException - "
        ));
    }

    #[test]
    fn context_window_errors_are_400s_whatever_the_upstream_said() {
        let e = ProviderError::from_upstream(
            "Huggingface",
            422,
            "`inputs` tokens + `max_new_tokens` must be <= 4096",
            None,
            None,
            None,
        );
        assert_eq!(
            (e.class, e.status),
            (ErrorClass::ContextWindowExceeded, 400)
        );
    }

    #[test]
    fn bad_requests_omit_the_inner_class_name() {
        let e = ProviderError::from_upstream(
            "OpenAI",
            400,
            "bad temperature",
            Some("invalid_request_error".into()),
            None,
            None,
        );
        assert_eq!(e.class, ErrorClass::BadRequest);
        assert_eq!(
            e.message,
            "litellm.BadRequestError: OpenAIException - bad temperature"
        );
    }

    #[test]
    fn statuses_keep_their_code() {
        for (status, class, name) in [
            (401, ErrorClass::Auth, "AuthenticationError"),
            (403, ErrorClass::PermissionDenied, "PermissionDeniedError"),
            (404, ErrorClass::NotFound, "NotFoundError"),
            (500, ErrorClass::ServerError, "InternalServerError"),
            (502, ErrorClass::ServerError, "BadGatewayError"),
            (503, ErrorClass::ServerError, "ServiceUnavailableError"),
            (529, ErrorClass::ServerError, "APIError"),
            (504, ErrorClass::Timeout, "Timeout"),
        ] {
            let e = ProviderError::from_upstream("OpenAI", status, "boom", None, None, None);
            assert_eq!((e.class, e.status), (class, status), "status {status}");
            assert!(e.message.contains(name), "{}", e.message);
        }
    }

    #[test]
    fn the_openai_error_code_takes_part_in_the_classification() {
        // Worded without the usual phrases; only `code` says what it is.
        let e = ProviderError::from_upstream_coded(
            "OpenAI",
            400,
            "Your input exceeds the context window of this model.",
            Some("invalid_request_error".into()),
            Some("context_length_exceeded"),
            Some("messages".into()),
            None,
        );
        assert_eq!(
            (e.class, e.status),
            (ErrorClass::ContextWindowExceeded, 400)
        );
        assert_eq!(
            e.message,
            "litellm.ContextWindowExceededError: ContextWindowExceededError: OpenAIException - Your input exceeds the context window of this model."
        );
        let e = ProviderError::from_upstream_coded(
            "OpenAI",
            400,
            "Your request was rejected by our safety system.",
            Some("invalid_request_error".into()),
            Some("content_policy_violation"),
            None,
            None,
        );
        assert_eq!((e.class, e.status), (ErrorClass::ContentPolicy, 400));
        assert!(e
            .message
            .ends_with("OpenAIException - Your request was rejected by our safety system."));
        let e = ProviderError::from_upstream_coded(
            "Azure",
            400,
            "Quota reached for this deployment.",
            None,
            Some("rate_limit_exceeded"),
            None,
            None,
        );
        assert_eq!((e.class, e.status), (ErrorClass::RateLimit, 429));
        // A code that says nothing leaves the status to decide.
        let e = ProviderError::from_upstream_coded(
            "OpenAI",
            400,
            "bad temperature",
            Some("invalid_request_error".into()),
            Some("invalid_value"),
            Some("temperature".into()),
            None,
        );
        assert_eq!(
            (e.class, e.message.as_str()),
            (
                ErrorClass::BadRequest,
                "litellm.BadRequestError: OpenAIException - bad temperature"
            )
        );
    }

    #[test]
    fn unsupported_params_name_the_param() {
        let e =
            ProviderError::unsupported_params("anthropic", &["logit_bias".to_string()], "claude-3");
        assert_eq!(e.status, 400);
        assert!(e
            .message
            .contains("anthropic does not support parameters: ['logit_bias'], for model=claude-3"));
    }
}
