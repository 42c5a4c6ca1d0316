//! The three settings blocks: `router_settings`, `litellm_settings`, `general_settings`.
//!
//! Every field is optional: `None` means "not in the config", and the consumer applies LiteLLM's
//! default and precedence (e.g. `router_settings.num_retries` over `litellm_settings.num_retries`).
//! Keys llm-proxy does not know are kept in `extra` and warned about by name.

use super::lenient;
use super::secret::Secret;
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One `fallbacks`-style rule: requests for the model group fail over to these groups, in order.
pub type FallbackList = Vec<(String, Vec<String>)>;

/// `router_settings`: the arguments of LiteLLM's `Router.__init__`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RouterSettings {
    /// `simple-shuffle` (LiteLLM's default), `least-busy`, `usage-based-routing`,
    /// `usage-based-routing-v2`, `latency-based-routing`, `cost-based-routing`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub routing_strategy: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_map")]
    pub routing_strategy_args: Option<Map<String, Value>>,
    /// Aliases in YAML order.
    #[serde(default, deserialize_with = "opt_model_group_alias")]
    pub model_group_alias: Option<Vec<ModelGroupAlias>>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub num_retries: Option<u64>,
    /// Seconds.
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub timeout: Option<f64>,
    /// Seconds.
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub stream_timeout: Option<f64>,
    /// Minimum seconds between retries.
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub retry_after: Option<f64>,
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default)]
    pub model_group_retry_policy: Option<BTreeMap<String, RetryPolicy>>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub allowed_fails: Option<u64>,
    #[serde(default)]
    pub allowed_fails_policy: Option<AllowedFailsPolicy>,
    /// Seconds.
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub cooldown_time: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub disable_cooldowns: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_fallbacks")]
    pub fallbacks: Option<FallbackList>,
    #[serde(default, deserialize_with = "lenient::opt_fallbacks")]
    pub context_window_fallbacks: Option<FallbackList>,
    #[serde(default, deserialize_with = "lenient::opt_fallbacks")]
    pub content_policy_fallbacks: Option<FallbackList>,
    #[serde(default, deserialize_with = "lenient::opt_string_list")]
    pub default_fallbacks: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub max_fallbacks: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub enable_pre_call_checks: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_string_list")]
    pub optional_pre_call_checks: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub redis_host: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub redis_port: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub redis_password: Option<Secret>,
    /// May carry a password.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub redis_url: Option<Secret>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub cache_responses: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_map")]
    pub cache_kwargs: Option<Map<String, Value>>,
    #[serde(default)]
    pub caching_groups: Option<Value>,
    /// Seconds.
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub client_ttl: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub polling_interval: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub default_priority: Option<i64>,
    /// Filled into each call's params where neither the deployment nor the request sets them.
    #[serde(default, deserialize_with = "lenient::opt_map")]
    pub default_litellm_params: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub default_max_parallel_requests: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub set_verbose: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub debug_level: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub enable_tag_filtering: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub tag_filtering_match_any: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_map")]
    pub provider_budget_config: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "lenient::opt_map")]
    pub alerting_config: Option<Map<String, Value>>,
    #[serde(default)]
    pub guardrail_list: Option<Value>,
    /// Keys llm-proxy does not know (LiteLLM drops keys that are not `Router` arguments).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `model_group_alias` entry: `alias: target` or `alias: {model: target, hidden: true}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelGroupAlias {
    /// The name clients may request.
    pub alias: String,
    /// The model group it routes to.
    pub model: String,
    /// Hidden aliases route but are not listed by `/v1/models` and `/model/info`.
    pub hidden: bool,
}

fn opt_model_group_alias<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<ModelGroupAlias>>, D::Error> {
    let Some(map) = lenient::opt_map(d)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(map.len());
    for (alias, target) in map {
        let (model, hidden) = match &target {
            Value::String(model) => (model.clone(), false),
            Value::Object(item) => match item.get("model") {
                Some(Value::String(model)) => (
                    model.clone(),
                    item.get("hidden")
                        .and_then(lenient::value_as_bool)
                        .unwrap_or(false),
                ),
                _ => {
                    return Err(D::Error::custom(format!(
                        "{alias}: expected {{model: <model group>, hidden: <bool>}}"
                    )))
                }
            },
            _ => {
                return Err(D::Error::custom(format!(
                "{alias}: expected a model group name or {{model: <model group>, hidden: <bool>}}"
            )))
            }
        };
        out.push(ModelGroupAlias {
            alias,
            model,
            hidden,
        });
    }
    Ok(Some(out))
}

/// Retries per error class (`retry_policy`, `model_group_retry_policy`). LiteLLM checks them in
/// field order, so `bad_request_error_retries` also covers content-policy and context-window
/// errors.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RetryPolicy {
    #[serde(
        rename = "BadRequestErrorRetries",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub bad_request_error_retries: Option<u64>,
    #[serde(
        rename = "AuthenticationErrorRetries",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub authentication_error_retries: Option<u64>,
    #[serde(
        rename = "TimeoutErrorRetries",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub timeout_error_retries: Option<u64>,
    #[serde(
        rename = "RateLimitErrorRetries",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub rate_limit_error_retries: Option<u64>,
    #[serde(
        rename = "ContentPolicyViolationErrorRetries",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub content_policy_violation_error_retries: Option<u64>,
    #[serde(
        rename = "InternalServerErrorRetries",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub internal_server_error_retries: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Failures tolerated per error class before a cooldown (`allowed_fails_policy`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AllowedFailsPolicy {
    #[serde(
        rename = "BadRequestErrorAllowedFails",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub bad_request_error_allowed_fails: Option<u64>,
    #[serde(
        rename = "AuthenticationErrorAllowedFails",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub authentication_error_allowed_fails: Option<u64>,
    #[serde(
        rename = "TimeoutErrorAllowedFails",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub timeout_error_allowed_fails: Option<u64>,
    #[serde(
        rename = "RateLimitErrorAllowedFails",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub rate_limit_error_allowed_fails: Option<u64>,
    #[serde(
        rename = "ContentPolicyViolationErrorAllowedFails",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub content_policy_violation_error_allowed_fails: Option<u64>,
    #[serde(
        rename = "InternalServerErrorAllowedFails",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub internal_server_error_allowed_fails: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `litellm_settings`: LiteLLM sets each key as a `litellm` module global.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LitellmSettings {
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub drop_params: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub set_verbose: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub json_logs: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub num_retries: Option<u64>,
    /// Seconds.
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub request_timeout: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_fallbacks")]
    pub fallbacks: Option<FallbackList>,
    #[serde(default, deserialize_with = "lenient::opt_fallbacks")]
    pub context_window_fallbacks: Option<FallbackList>,
    #[serde(default, deserialize_with = "lenient::opt_fallbacks")]
    pub content_policy_fallbacks: Option<FallbackList>,
    #[serde(default, deserialize_with = "lenient::opt_string_list")]
    pub default_fallbacks: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub allowed_fails: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_string_list")]
    pub success_callback: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::opt_string_list")]
    pub failure_callback: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::opt_string_list")]
    pub callbacks: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub cache: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_map")]
    pub cache_params: Option<Map<String, Value>>,
    /// Requested name → model group, applied before routing; YAML order.
    #[serde(default, deserialize_with = "lenient::opt_string_pairs")]
    pub model_alias_map: Option<Vec<(String, String)>>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub modify_params: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `general_settings`: the proxy server's own settings.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GeneralSettings {
    /// Read it through [`super::ProxyConfig::master_key`], which also checks `LITELLM_MASTER_KEY`.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub master_key: Option<Secret>,
    /// llm-proxy's own key: start even when the master key is unset or weak.
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub dangerously_permit_weak_or_unset_master_key: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub max_request_size_mb: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub max_response_size_mb: Option<f64>,
    /// When set, this header is the only place the client's key is read from.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub litellm_key_header_name: Option<String>,
    /// Forces every request's `model`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub completion_model: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub forward_client_headers_to_llm_api: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub forward_openai_org_id: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub allow_client_side_credentials: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_string_list")]
    pub alerting: Option<Vec<String>>,
    /// Seconds.
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub alerting_threshold: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_string_list")]
    pub alert_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub database_url: Option<Secret>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub database_connection_pool_limit: Option<u64>,
    /// Seconds. The documented key; LiteLLM itself reads `database_connection_pool_timeout`.
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub database_connection_timeout: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub database_connection_pool_timeout: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub background_health_checks: Option<bool>,
    /// Seconds.
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub health_check_interval: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub health_check_details: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub store_model_in_db: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub disable_spend_logs: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_string_list")]
    pub allowed_ips: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::opt_string_list")]
    pub allowed_routes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::opt_string_list")]
    pub public_routes: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The paths of keys in `extra` maps, at any depth, for "unknown key" warnings.
pub(crate) trait UnknownKeys {
    fn unknown_keys(&self, prefix: &str, out: &mut Vec<String>);
}

fn extra_keys(extra: &Map<String, Value>, prefix: &str, out: &mut Vec<String>) {
    out.extend(extra.keys().map(|k| format!("{prefix}.{k}")));
}

impl UnknownKeys for RouterSettings {
    fn unknown_keys(&self, prefix: &str, out: &mut Vec<String>) {
        if let Some(policy) = &self.retry_policy {
            extra_keys(&policy.extra, &format!("{prefix}.retry_policy"), out);
        }
        for (group, policy) in self.model_group_retry_policy.iter().flatten() {
            extra_keys(
                &policy.extra,
                &format!("{prefix}.model_group_retry_policy.{group}"),
                out,
            );
        }
        if let Some(policy) = &self.allowed_fails_policy {
            extra_keys(
                &policy.extra,
                &format!("{prefix}.allowed_fails_policy"),
                out,
            );
        }
        extra_keys(&self.extra, prefix, out);
    }
}

impl UnknownKeys for LitellmSettings {
    fn unknown_keys(&self, prefix: &str, out: &mut Vec<String>) {
        extra_keys(&self.extra, prefix, out);
    }
}

impl UnknownKeys for GeneralSettings {
    fn unknown_keys(&self, prefix: &str, out: &mut Vec<String>) {
        extra_keys(&self.extra, prefix, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn router_settings_forms() {
        let s: RouterSettings = serde_json::from_value(json!({
            "routing_strategy": "least-busy",
            "model_group_alias": {"gpt-4": "gpt-3.5-turbo", "claude": {"model": "c", "hidden": "True"}},
            "num_retries": "3",
            "timeout": 30,
            "fallbacks": [{"a": ["b", "c"]}, {"d": "e"}],
            "retry_policy": {"TimeoutErrorRetries": 2, "Bogus": 1},
            "redis_password": "pw",
            "something_else": 1,
        }))
        .unwrap();
        assert_eq!(s.routing_strategy.as_deref(), Some("least-busy"));
        assert_eq!(
            s.model_group_alias.unwrap(),
            vec![
                ModelGroupAlias {
                    alias: "gpt-4".into(),
                    model: "gpt-3.5-turbo".into(),
                    hidden: false
                },
                ModelGroupAlias {
                    alias: "claude".into(),
                    model: "c".into(),
                    hidden: true
                },
            ]
        );
        assert_eq!(s.num_retries, Some(3));
        assert_eq!(s.timeout, Some(30.0));
        assert_eq!(
            s.fallbacks.unwrap(),
            vec![
                ("a".to_owned(), vec!["b".to_owned(), "c".to_owned()]),
                ("d".to_owned(), vec!["e".to_owned()])
            ]
        );
        assert_eq!(
            s.retry_policy.as_ref().unwrap().timeout_error_retries,
            Some(2)
        );
        assert_eq!(s.redis_password.unwrap().expose(), "pw");
        let s: RouterSettings = serde_json::from_value(json!({
            "retry_policy": {"Bogus": 1}, "something_else": 1
        }))
        .unwrap();
        let mut unknown = Vec::new();
        s.unknown_keys("router_settings", &mut unknown);
        assert_eq!(
            unknown,
            vec![
                "router_settings.retry_policy.Bogus",
                "router_settings.something_else"
            ]
        );
    }

    #[test]
    fn wrong_types_are_named() {
        let err =
            serde_path_to_error::deserialize::<_, RouterSettings>(json!({"num_retries": "many"}))
                .unwrap_err();
        assert_eq!(err.path().to_string(), "num_retries");
        assert_eq!(
            err.into_inner().to_string(),
            "expected a non-negative integer, found the string \"many\""
        );
    }
}
