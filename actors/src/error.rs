//! How the router sees a failed upstream attempt. Providers classify their errors into an
//! [`ErrorClass`]; the router decides retries, cooldowns and fallbacks from the class alone, never
//! from message text.

use std::time::Duration;

/// Why an upstream attempt failed, as the router sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 400: the request itself is wrong; retrying elsewhere gives the same answer.
    BadRequest,
    /// 400: the prompt does not fit; `context_window_fallbacks` may help.
    ContextWindowExceeded,
    /// 400: the provider refused the content; `content_policy_fallbacks` may help.
    ContentPolicy,
    /// 401.
    Auth,
    /// 403.
    PermissionDenied,
    /// 404: unknown model or route upstream.
    NotFound,
    /// 408/504, or our own deadline.
    Timeout,
    /// 422.
    UnprocessableEntity,
    /// 429.
    RateLimit,
    /// 5xx.
    ServerError,
    /// No HTTP answer at all (connect, TLS, reset).
    Connection,
    /// The client went away before the attempt finished.
    Cancelled,
}

impl ErrorClass {
    /// Whether another attempt (same group, preferably another deployment) may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimit
                | ErrorClass::ServerError
                | ErrorClass::Timeout
                | ErrorClass::Connection
        )
    }
}

/// What any attempt error must tell the router; implemented by the HTTP side's error type.
pub trait AttemptError {
    /// The class that drives retry, cooldown and fallback decisions.
    fn class(&self) -> ErrorClass;
    /// The HTTP status the upstream answered (or the one we will answer with).
    fn status(&self) -> u16;
    /// The upstream's `Retry-After`, if it sent one.
    fn retry_after(&self) -> Option<Duration>;
}

#[cfg(test)]
mod tests {
    use super::ErrorClass::*;

    #[test]
    fn only_transient_classes_are_retryable() {
        for class in [RateLimit, ServerError, Timeout, Connection] {
            assert!(class.is_retryable(), "{class:?}");
        }
        for class in [
            BadRequest,
            ContextWindowExceeded,
            ContentPolicy,
            Auth,
            PermissionDenied,
            NotFound,
            UnprocessableEntity,
            Cancelled,
        ] {
            assert!(!class.is_retryable(), "{class:?}");
        }
    }
}
