//! What the config layer hands the router: one [`DeploymentSpec`] per deployment and the resolved
//! [`RouterSettings`]. No YAML here; every default is already applied.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ErrorClass;

/// A deployment's unique id (LiteLLM's `model_info.id`); cheap to clone.
pub type DeploymentId = Arc<str>;

/// What the router knows of one deployment.
#[derive(Clone, Debug)]
pub struct DeploymentSpec {
    /// Unique across the router.
    pub id: DeploymentId,
    /// The group name; may be a wildcard pattern such as `*` or `openai/*`.
    pub model_name: String,
    /// `litellm_params.model`, e.g. `openai/gpt-4o` or `openai/*` (logs and wildcard rewriting).
    pub model: String,
    /// Requests per sliding minute; enforced whatever the strategy (LiteLLM only enforces it
    /// under usage-based-routing-v2).
    pub rpm: Option<u64>,
    /// Tokens per sliding minute (tokens the upstream reported).
    pub tpm: Option<u64>,
    /// simple-shuffle weight.
    pub weight: Option<f64>,
    /// Priority tier: only the lowest order with a healthy deployment is eligible. None sorts last.
    pub order: Option<u32>,
    /// At most this many requests in flight; further picks skip the deployment.
    pub max_parallel_requests: Option<u32>,
    /// Cooldown length for this deployment; wins over the upstream's Retry-After and the router.
    pub cooldown_time: Option<Duration>,
    /// Retry count to use after this deployment fails (LiteLLM's per-deployment `num_retries`).
    pub num_retries: Option<u32>,
    /// cost-based-routing input; 5.0 when unknown, as LiteLLM.
    pub input_cost_per_token: Option<f64>,
    /// cost-based-routing input; 5.0 when unknown, as LiteLLM.
    pub output_cost_per_token: Option<f64>,
}

impl DeploymentSpec {
    /// A spec with only the three names set; everything else unlimited / default.
    pub fn new(id: &str, model_name: &str, model: &str) -> DeploymentSpec {
        DeploymentSpec {
            id: Arc::from(id),
            model_name: model_name.to_owned(),
            model: model.to_owned(),
            rpm: None,
            tpm: None,
            weight: None,
            order: None,
            max_parallel_requests: None,
            cooldown_time: None,
            num_retries: None,
            input_cost_per_token: None,
            output_cost_per_token: None,
        }
    }

    /// Wildcard deployments serve any name their pattern matches and never cool down.
    pub fn is_wildcard(&self) -> bool {
        self.model_name.contains('*')
    }
}

/// LiteLLM's `routing_strategy`.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    /// Weighted random by `weight`, else `rpm`, else `tpm`, else uniform.
    SimpleShuffle,
    /// Fewest requests in flight.
    LeastBusy,
    /// Lowest tokens used this minute (`usage-based-routing` and `-v2` both land here).
    UsageBased,
    /// Lowest recent latency, random among those within the buffer.
    LatencyBased {
        /// Keep deployments within `lowest * (1 + buffer)`; LiteLLM default 0.
        lowest_latency_buffer: f64,
        /// Newest samples kept per deployment; LiteLLM default 10.
        max_latency_list_size: usize,
        /// Samples older than this are ignored; LiteLLM default 1 hour.
        ttl: Duration,
    },
    /// Lowest input + output cost per token.
    CostBased,
}

impl Strategy {
    /// `latency-based-routing` with LiteLLM's default `routing_strategy_args`.
    pub fn latency_based_default() -> Strategy {
        Strategy::LatencyBased {
            lowest_latency_buffer: 0.0,
            max_latency_list_size: 10,
            ttl: Duration::from_secs(3600),
        }
    }
}

const STRATEGY_NAMES: &str = "simple-shuffle, least-busy, usage-based-routing, usage-based-routing-v2, latency-based-routing, cost-based-routing";

impl FromStr for Strategy {
    type Err = String;

    fn from_str(name: &str) -> Result<Strategy, String> {
        match name {
            "simple-shuffle" => Ok(Strategy::SimpleShuffle),
            "least-busy" => Ok(Strategy::LeastBusy),
            "usage-based-routing" | "usage-based-routing-v2" => Ok(Strategy::UsageBased),
            "latency-based-routing" => Ok(Strategy::latency_based_default()),
            "cost-based-routing" => Ok(Strategy::CostBased),
            other => Err(format!(
                "invalid routing_strategy {other:?}; valid values are: {STRATEGY_NAMES}"
            )),
        }
    }
}

/// LiteLLM's `retry_policy` (`*ErrorRetries` keys): retries per error class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `BadRequestErrorRetries`: also covers context-window and content-policy errors unless
    /// their own field is set.
    pub bad_request: Option<u32>,
    /// `AuthenticationErrorRetries`.
    pub auth: Option<u32>,
    /// `TimeoutErrorRetries`.
    pub timeout: Option<u32>,
    /// `RateLimitErrorRetries`.
    pub rate_limit: Option<u32>,
    /// `ContentPolicyViolationErrorRetries`.
    pub content_policy: Option<u32>,
    /// `InternalServerErrorRetries`: 5xx and connection errors (LiteLLM never reads it; we do).
    pub internal_server_error: Option<u32>,
}

/// LiteLLM's `allowed_fails_policy` (`*AllowedFails` keys): failures tolerated per error class
/// before a cooldown, under the v1 rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedFailsPolicy {
    /// `BadRequestErrorAllowedFails`.
    pub bad_request: Option<u32>,
    /// `AuthenticationErrorAllowedFails`.
    pub auth: Option<u32>,
    /// `TimeoutErrorAllowedFails`.
    pub timeout: Option<u32>,
    /// `RateLimitErrorAllowedFails`.
    pub rate_limit: Option<u32>,
    /// `ContentPolicyViolationErrorAllowedFails`.
    pub content_policy: Option<u32>,
    /// `InternalServerErrorAllowedFails`.
    pub internal_server_error: Option<u32>,
}

/// The six per-class fields both policies share, looked up by class: the most specific field
/// first, so a content-policy error reads `content_policy` before `bad_request`.
fn policy_field(
    class: ErrorClass,
    bad_request: Option<u32>,
    auth: Option<u32>,
    timeout: Option<u32>,
    rate_limit: Option<u32>,
    content_policy: Option<u32>,
    internal_server_error: Option<u32>,
) -> Option<u32> {
    match class {
        ErrorClass::BadRequest | ErrorClass::ContextWindowExceeded => bad_request,
        ErrorClass::ContentPolicy => content_policy.or(bad_request),
        ErrorClass::Auth => auth,
        ErrorClass::Timeout => timeout,
        ErrorClass::RateLimit => rate_limit,
        ErrorClass::ServerError | ErrorClass::Connection => internal_server_error,
        ErrorClass::PermissionDenied
        | ErrorClass::NotFound
        | ErrorClass::UnprocessableEntity
        | ErrorClass::Cancelled => None,
    }
}

impl RetryPolicy {
    /// The retry count this policy sets for `class`, if any.
    pub fn for_class(&self, class: ErrorClass) -> Option<u32> {
        policy_field(
            class,
            self.bad_request,
            self.auth,
            self.timeout,
            self.rate_limit,
            self.content_policy,
            self.internal_server_error,
        )
    }
}

impl AllowedFailsPolicy {
    /// The failures this policy tolerates for `class`, if it says.
    pub fn for_class(&self, class: ErrorClass) -> Option<u32> {
        policy_field(
            class,
            self.bad_request,
            self.auth,
            self.timeout,
            self.rate_limit,
            self.content_policy,
            self.internal_server_error,
        )
    }
}

/// One `model_group_alias` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The name clients send.
    pub name: String,
    /// The group it routes to.
    pub target: String,
    /// Hidden aliases route but are not listed in `/v1/models`.
    pub hidden: bool,
}

/// Everything the router needs from `router_settings`/`litellm_settings`, already resolved.
#[derive(Clone, Debug)]
pub struct RouterSettings {
    /// `routing_strategy`.
    pub strategy: Strategy,
    /// Retries within a group after the first attempt; default 2.
    pub num_retries: u32,
    /// Minimum backoff between retries; default 0.
    pub retry_after: Duration,
    /// Per-class retry counts.
    pub retry_policy: Option<RetryPolicy>,
    /// Per-group retry policies; win over `retry_policy`.
    pub model_group_retry_policy: HashMap<String, RetryPolicy>,
    /// Set (or a policy set) switches cooldown decisions to LiteLLM's v1 allowed-fails counter.
    pub allowed_fails: Option<u32>,
    /// Per-class allowed fails (v1).
    pub allowed_fails_policy: Option<AllowedFailsPolicy>,
    /// Cooldown length; default 5 s.
    pub cooldown_time: Duration,
    /// Never cool a deployment down.
    pub disable_cooldowns: bool,
    /// group -> ordered fallback groups; the `"*"` key holds `default_fallbacks`.
    pub fallbacks: Vec<(String, Vec<String>)>,
    /// Fallbacks for context-window errors.
    pub context_window_fallbacks: Vec<(String, Vec<String>)>,
    /// Fallbacks for content-policy errors.
    pub content_policy_fallbacks: Vec<(String, Vec<String>)>,
    /// At most this many fallback groups per request; default 5.
    pub max_fallbacks: u32,
    /// `model_group_alias`.
    pub aliases: Vec<Alias>,
}

impl Default for RouterSettings {
    fn default() -> RouterSettings {
        RouterSettings {
            strategy: Strategy::SimpleShuffle,
            num_retries: 2,
            retry_after: Duration::ZERO,
            retry_policy: None,
            model_group_retry_policy: HashMap::new(),
            allowed_fails: None,
            allowed_fails_policy: None,
            cooldown_time: Duration::from_secs(5),
            disable_cooldowns: false,
            fallbacks: Vec::new(),
            context_window_fallbacks: Vec::new(),
            content_policy_fallbacks: Vec::new(),
            max_fallbacks: 5,
            aliases: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_parse() {
        assert_eq!("simple-shuffle".parse(), Ok(Strategy::SimpleShuffle));
        assert_eq!("least-busy".parse(), Ok(Strategy::LeastBusy));
        assert_eq!("usage-based-routing".parse(), Ok(Strategy::UsageBased));
        assert_eq!("usage-based-routing-v2".parse(), Ok(Strategy::UsageBased));
        assert_eq!("cost-based-routing".parse(), Ok(Strategy::CostBased));
        assert_eq!(
            "latency-based-routing".parse(),
            Ok(Strategy::latency_based_default())
        );
        let err = "round-robin".parse::<Strategy>().unwrap_err();
        assert!(
            err.contains("round-robin") && err.contains("least-busy"),
            "{err}"
        );
    }

    #[test]
    fn policy_lookup_prefers_the_specific_field() {
        let policy = RetryPolicy {
            bad_request: Some(1),
            content_policy: Some(4),
            internal_server_error: Some(3),
            ..RetryPolicy::default()
        };
        assert_eq!(policy.for_class(ErrorClass::ContentPolicy), Some(4));
        assert_eq!(policy.for_class(ErrorClass::ContextWindowExceeded), Some(1));
        assert_eq!(policy.for_class(ErrorClass::ServerError), Some(3));
        assert_eq!(policy.for_class(ErrorClass::Connection), Some(3));
        assert_eq!(policy.for_class(ErrorClass::RateLimit), None);
        let only_bad_request = RetryPolicy {
            bad_request: Some(2),
            ..RetryPolicy::default()
        };
        assert_eq!(
            only_bad_request.for_class(ErrorClass::ContentPolicy),
            Some(2)
        );
    }

    #[test]
    fn defaults_match_litellm() {
        let settings = RouterSettings::default();
        assert_eq!(settings.num_retries, 2);
        assert_eq!(settings.cooldown_time, Duration::from_secs(5));
        assert_eq!(settings.max_fallbacks, 5);
        assert_eq!(settings.strategy, Strategy::SimpleShuffle);
    }
}
