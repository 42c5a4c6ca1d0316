//! Whether a failure puts a deployment in cooldown, and for how long: LiteLLM's rules
//! (`cooldown_handlers.py`), as a pure function of the facts the Deployment actor holds.
//!
//! Two rule sets, chosen once per router: **v1** (a failure counter against `allowed_fails`,
//! per-class through `allowed_fails_policy`) when either is configured, else **v2** (429 cools at
//! once in groups of two or more, 401/404 cool even a lone deployment, and a failure rate above
//! 50% over at least 5 requests this minute cools a deployment that has siblings).

use std::time::Duration;

use crate::error::ErrorClass;
use crate::settings::{AllowedFailsPolicy, RouterSettings};

/// LiteLLM's default `allowed_fails`, used by v1 when only a policy is configured.
pub const DEFAULT_ALLOWED_FAILS: u32 = 3;

/// Which decision logic runs.
#[derive(Clone, Debug, PartialEq)]
pub enum CooldownRules {
    /// Cool down after more than `allowed_fails` failures within the minute.
    V1 {
        /// Failures tolerated when the policy does not name the class.
        allowed_fails: u32,
        /// Per-class overrides.
        policy: Option<AllowedFailsPolicy>,
    },
    /// LiteLLM's default rules (see the module doc).
    V2,
}

/// The router-wide part of the decision.
#[derive(Clone, Debug, PartialEq)]
pub struct CooldownConfig {
    /// `disable_cooldowns`.
    pub disabled: bool,
    /// The router's `cooldown_time`.
    pub router_time: Duration,
    /// v1 or v2.
    pub rules: CooldownRules,
}

impl CooldownConfig {
    /// v1 exactly when `allowed_fails` or `allowed_fails_policy` is set.
    pub fn from_settings(settings: &RouterSettings) -> CooldownConfig {
        let rules = if settings.allowed_fails.is_some() || settings.allowed_fails_policy.is_some() {
            CooldownRules::V1 {
                allowed_fails: settings.allowed_fails.unwrap_or(DEFAULT_ALLOWED_FAILS),
                policy: settings.allowed_fails_policy.clone(),
            }
        } else {
            CooldownRules::V2
        };
        CooldownConfig {
            disabled: settings.disable_cooldowns,
            router_time: settings.cooldown_time,
            rules,
        }
    }
}

/// What the deployment knows when a failure is reported.
#[derive(Clone, Copy, Debug)]
pub struct FailureFacts {
    /// The failure's class.
    pub class: ErrorClass,
    /// Its HTTP status.
    pub status: u16,
    /// The upstream's Retry-After.
    pub retry_after: Option<Duration>,
    /// Deployments in the group (a lone deployment is spared most cooldowns).
    pub group_size: usize,
    /// Wildcard deployments never cool down.
    pub wildcard: bool,
    /// The deployment's own `cooldown_time`.
    pub deployment_cooldown: Option<Duration>,
    /// Failures over the last minute, this one included.
    pub failures: f64,
    /// Successes over the last minute.
    pub successes: f64,
}

/// Classes that say nothing about the deployment's health: the request was wrong, the content was
/// refused, or the call never reached it (LiteLLM skips `APIConnectionError` too).
fn class_is_exempt(class: ErrorClass) -> bool {
    matches!(
        class,
        ErrorClass::BadRequest
            | ErrorClass::ContextWindowExceeded
            | ErrorClass::ContentPolicy
            | ErrorClass::PermissionDenied
            | ErrorClass::UnprocessableEntity
            | ErrorClass::Connection
            | ErrorClass::Cancelled
    )
}

/// LiteLLM cools down on 4xx only for 401, 404, 408 and 429.
fn status_is_exempt(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 404 | 408 | 429)
}

/// The cooldown this failure starts, or `None`.
pub fn cooldown_for(config: &CooldownConfig, facts: &FailureFacts) -> Option<Duration> {
    if config.disabled
        || facts.wildcard
        || class_is_exempt(facts.class)
        || status_is_exempt(facts.status)
    {
        return None;
    }
    let duration = facts
        .deployment_cooldown
        .or(facts.retry_after)
        .unwrap_or(config.router_time);
    if duration.is_zero() {
        return None;
    }
    let cool = match &config.rules {
        CooldownRules::V1 {
            allowed_fails,
            policy,
        } => {
            let allowed = policy
                .as_ref()
                .and_then(|policy| policy.for_class(facts.class))
                .unwrap_or(*allowed_fails);
            facts.failures > f64::from(allowed) + 1e-9
        }
        CooldownRules::V2 => {
            let shared = facts.group_size > 1;
            let total = facts.failures + facts.successes;
            match facts.class {
                ErrorClass::RateLimit if shared => true,
                ErrorClass::Auth | ErrorClass::NotFound => true,
                _ if facts.successes == 0.0 && facts.failures >= 1000.0 => true,
                _ => shared && total >= 5.0 && facts.failures / total > 0.5,
            }
        }
    };
    cool.then_some(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    const FIVE: Duration = Duration::from_secs(5);

    fn facts(class: ErrorClass, status: u16, group_size: usize) -> FailureFacts {
        FailureFacts {
            class,
            status,
            retry_after: None,
            group_size,
            wildcard: false,
            deployment_cooldown: None,
            failures: 1.0,
            successes: 0.0,
        }
    }

    fn v2() -> CooldownConfig {
        CooldownConfig::from_settings(&RouterSettings::default())
    }

    #[test]
    fn v2_rules_table() {
        let config = v2();
        assert_eq!(config.rules, CooldownRules::V2);
        // (class, status, group size, failures, successes) -> cooled?
        let table: &[(ErrorClass, u16, usize, f64, f64, bool)] = &[
            (RateLimit, 429, 2, 1.0, 10.0, true),
            (RateLimit, 429, 1, 1.0, 0.0, false),
            (Auth, 401, 1, 1.0, 0.0, true),
            (NotFound, 404, 1, 1.0, 0.0, true),
            (ServerError, 500, 2, 1.0, 0.0, false),
            (ServerError, 500, 2, 3.0, 2.0, true),
            (ServerError, 500, 2, 2.0, 2.0, false),
            (ServerError, 500, 2, 3.0, 1.0, false),
            (ServerError, 500, 1, 5.0, 0.0, false),
            (ServerError, 500, 1, 1000.0, 0.0, true),
            (Timeout, 408, 3, 4.0, 1.0, true),
            (BadRequest, 400, 2, 10.0, 0.0, false),
            (ContextWindowExceeded, 400, 2, 10.0, 0.0, false),
            (ContentPolicy, 400, 2, 10.0, 0.0, false),
            (PermissionDenied, 403, 2, 10.0, 0.0, false),
            (UnprocessableEntity, 422, 2, 10.0, 0.0, false),
            (Connection, 500, 2, 10.0, 0.0, false),
            (Cancelled, 499, 2, 10.0, 0.0, false),
            (ServerError, 409, 2, 10.0, 0.0, false),
        ];
        for &(class, status, size, failures, successes, cooled) in table {
            let facts = FailureFacts {
                failures,
                successes,
                ..facts(class, status, size)
            };
            let expected = cooled.then_some(FIVE);
            assert_eq!(cooldown_for(&config, &facts), expected, "{facts:?}");
        }
    }

    #[test]
    fn duration_precedence_deployment_then_retry_after_then_router() {
        let config = v2();
        let mut f = facts(RateLimit, 429, 2);
        assert_eq!(cooldown_for(&config, &f), Some(FIVE));
        f.retry_after = Some(Duration::from_secs(30));
        assert_eq!(cooldown_for(&config, &f), Some(Duration::from_secs(30)));
        f.deployment_cooldown = Some(Duration::from_secs(2));
        assert_eq!(cooldown_for(&config, &f), Some(Duration::from_secs(2)));
        f.deployment_cooldown = Some(Duration::ZERO);
        assert_eq!(cooldown_for(&config, &f), None, "zero disables");
    }

    #[test]
    fn disabled_and_wildcards_never_cool() {
        let settings = RouterSettings {
            disable_cooldowns: true,
            ..RouterSettings::default()
        };
        let f = facts(Auth, 401, 3);
        assert_eq!(
            cooldown_for(&CooldownConfig::from_settings(&settings), &f),
            None
        );
        let wildcard = FailureFacts {
            wildcard: true,
            ..f
        };
        assert_eq!(cooldown_for(&v2(), &wildcard), None);
    }

    #[test]
    fn v1_counts_against_allowed_fails_and_policy() {
        let settings = RouterSettings {
            allowed_fails: Some(2),
            allowed_fails_policy: Some(AllowedFailsPolicy {
                rate_limit: Some(0),
                ..AllowedFailsPolicy::default()
            }),
            ..RouterSettings::default()
        };
        let config = CooldownConfig::from_settings(&settings);
        let with = |class, status, failures| FailureFacts {
            failures,
            ..facts(class, status, 1)
        };
        // Single-deployment groups do cool down under v1.
        assert_eq!(cooldown_for(&config, &with(ServerError, 500, 2.0)), None);
        assert_eq!(
            cooldown_for(&config, &with(ServerError, 500, 3.0)),
            Some(FIVE)
        );
        assert_eq!(
            cooldown_for(&config, &with(RateLimit, 429, 1.0)),
            Some(FIVE)
        );
        assert_eq!(cooldown_for(&config, &with(BadRequest, 400, 9.0)), None);
    }

    #[test]
    fn a_policy_alone_selects_v1_with_the_default_allowance() {
        let settings = RouterSettings {
            allowed_fails_policy: Some(AllowedFailsPolicy::default()),
            ..RouterSettings::default()
        };
        let config = CooldownConfig::from_settings(&settings);
        assert_eq!(
            config.rules,
            CooldownRules::V1 {
                allowed_fails: DEFAULT_ALLOWED_FAILS,
                policy: Some(AllowedFailsPolicy::default())
            }
        );
    }
}
