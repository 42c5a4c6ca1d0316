//! Retry decisions within a group, as pure functions: how many retries an error earns and how
//! long to wait before the next one.

use std::time::Duration;

use crate::error::ErrorClass;
use crate::settings::RetryPolicy;

/// Longest computed backoff (LiteLLM's `MAX_RETRY_DELAY`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// An upstream Retry-After is honoured only within this range (LiteLLM's rule).
const HONOURED_RETRY_AFTER: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(60);
/// Jitter adds up to this fraction of the computed backoff.
const JITTER_FRACTION: f64 = 0.1;

/// Where retry counts come from, most specific first.
#[derive(Clone, Copy, Debug, Default)]
pub struct RetrySources<'a> {
    /// The request's `num_retries`.
    pub request: Option<u32>,
    /// `model_group_retry_policy` for this group.
    pub group_policy: Option<&'a RetryPolicy>,
    /// `retry_policy`.
    pub policy: Option<&'a RetryPolicy>,
    /// The failed deployment's own `num_retries`.
    pub deployment: Option<u32>,
    /// The router's `num_retries`.
    pub router: u32,
}

/// Retries allowed within the group after an error of `class`: request > group policy > router
/// policy > deployment > router.
pub fn retry_budget(class: ErrorClass, sources: &RetrySources<'_>) -> u32 {
    sources
        .request
        .or_else(|| sources.group_policy.and_then(|p| p.for_class(class)))
        .or_else(|| sources.policy.and_then(|p| p.for_class(class)))
        .or(sources.deployment)
        .unwrap_or(sources.router)
}

/// Whether to retry after `retries_done` retries: only transient classes, within the budget.
/// Context-window and content-policy errors go to their fallbacks instead, 4xx never repeat.
pub fn should_retry(class: ErrorClass, retries_done: u32, budget: u32) -> bool {
    class.is_retryable() && retries_done < budget
}

/// Wait before retry number `retries_done` (0-based). None when another deployment can take the
/// retry; otherwise the upstream's Retry-After when it is 1..=60 s, else `0.5 s * 2^n` capped at
/// 8 s and at least `minimum`, plus up to 10% jitter (`jitter` in `[0, 1)`).
pub fn backoff(
    retries_done: u32,
    upstream_retry_after: Option<Duration>,
    minimum: Duration,
    other_available: bool,
    jitter: f64,
) -> Duration {
    if other_available {
        return Duration::ZERO;
    }
    if let Some(wait) = upstream_retry_after.filter(|w| HONOURED_RETRY_AFTER.contains(w)) {
        return wait;
    }
    let exponential = 0.5 * 2f64.powi(i32::try_from(retries_done).unwrap_or(i32::MAX).min(16));
    let base = Duration::from_secs_f64(exponential)
        .min(MAX_BACKOFF)
        .max(minimum);
    base + base.mul_f64(JITTER_FRACTION * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    #[test]
    fn budget_precedence() {
        let group = RetryPolicy {
            rate_limit: Some(7),
            ..RetryPolicy::default()
        };
        let global = RetryPolicy {
            rate_limit: Some(5),
            timeout: Some(4),
            ..RetryPolicy::default()
        };
        let all = RetrySources {
            request: Some(1),
            group_policy: Some(&group),
            policy: Some(&global),
            deployment: Some(3),
            router: 2,
        };
        assert_eq!(retry_budget(RateLimit, &all), 1);
        let no_request = RetrySources {
            request: None,
            ..all
        };
        assert_eq!(retry_budget(RateLimit, &no_request), 7);
        assert_eq!(retry_budget(Timeout, &no_request), 4);
        assert_eq!(retry_budget(ServerError, &no_request), 3);
        let router_only = RetrySources {
            deployment: None,
            ..no_request
        };
        assert_eq!(retry_budget(ServerError, &router_only), 2);
    }

    #[test]
    fn retry_decisions_table() {
        // (class, retries done, budget) -> retry?
        let table = [
            (RateLimit, 0, 2, true),
            (RateLimit, 2, 2, false),
            (ServerError, 1, 2, true),
            (Timeout, 0, 1, true),
            (Connection, 0, 1, true),
            (ServerError, 0, 0, false),
            (BadRequest, 0, 5, false),
            (Auth, 0, 5, false),
            (PermissionDenied, 0, 5, false),
            (NotFound, 0, 5, false),
            (UnprocessableEntity, 0, 5, false),
            (ContextWindowExceeded, 0, 5, false),
            (ContentPolicy, 0, 5, false),
            (Cancelled, 0, 5, false),
        ];
        for (class, done, budget, expected) in table {
            assert_eq!(
                should_retry(class, done, budget),
                expected,
                "{class:?} {done}/{budget}"
            );
        }
    }

    #[test]
    fn backoff_rules() {
        let secs = Duration::from_secs_f64;
        assert_eq!(
            backoff(3, Some(secs(30.0)), Duration::ZERO, true, 0.0),
            Duration::ZERO
        );
        assert_eq!(
            backoff(0, Some(secs(30.0)), Duration::ZERO, false, 0.9),
            secs(30.0)
        );
        assert_eq!(backoff(0, None, Duration::ZERO, false, 0.0), secs(0.5));
        assert_eq!(backoff(2, None, Duration::ZERO, false, 0.0), secs(2.0));
        assert_eq!(backoff(9, None, Duration::ZERO, false, 0.0), secs(8.0));
        // Retry-After outside 1..=60 s falls back to the exponential rule.
        assert_eq!(
            backoff(1, Some(secs(120.0)), Duration::ZERO, false, 0.0),
            secs(1.0)
        );
        assert_eq!(
            backoff(1, Some(secs(0.2)), Duration::ZERO, false, 0.0),
            secs(1.0)
        );
        // The router's retry_after is the floor, even above the cap.
        assert_eq!(backoff(0, None, secs(3.0), false, 0.0), secs(3.0));
        assert_eq!(backoff(0, None, secs(10.0), false, 0.0), secs(10.0));
        // Jitter stays within 10%.
        let jittered = backoff(1, None, Duration::ZERO, false, 0.99);
        assert!(jittered > secs(1.0) && jittered < secs(1.1), "{jittered:?}");
    }
}
