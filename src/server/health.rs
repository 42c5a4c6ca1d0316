//! `GET /health`: LiteLLM's check of the deployments, each called with a tiny real request
//! (`model_info.mode` says which: `chat`, the default, `completion` or `embedding`), outside the
//! router: a check neither counts against a deployment's limits nor cools it down.
//!
//! The calls run at once on the worker's HTTP actor, through the same transport, request
//! building and answer reading as a routed attempt ([`dispatch::prepare_call`]).
//!
//! With `general_settings.background_health_checks`, one worker's HTTP actor checks every
//! deployment at start and then every `health_check_interval` seconds ([`background`]), and
//! `/health` answers from the latest result ([`Background`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::Message;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::dispatch::{self, Dispatch, Overrides, Prepared};
use super::state::Shared;
use super::upstream;
use crate::providers::mock::MockOutcome;
use crate::providers::{Endpoint, ProviderError, RequestBody};

/// LiteLLM's `HEALTH_CHECK_TIMEOUT_SECONDS`, unless `model_info.health_check_timeout` says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// LiteLLM's `health_check_interval` default.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// LiteLLM's `max_tokens` for a chat or completion check, unless
/// `model_info.health_check_max_tokens` says.
const DEFAULT_MAX_TOKENS: u64 = 16;

/// `litellm_params` shown for each checked deployment (LiteLLM's display list): names where the
/// call went, never credentials.
const SHOWN_PARAMS: &[&str] = &[
    "model",
    "custom_llm_provider",
    "base_model",
    "api_base",
    "api_version",
    "aws_region_name",
    "aws_bedrock_runtime_endpoint",
    "region_name",
    "rpm",
    "tpm",
];

/// Check these deployments (ids); answered by the worker's HTTP actor.
pub struct HealthCheck {
    pub deployments: Vec<String>,
}

impl Message for HealthCheck {
    type Result = HealthReport;
}

/// The endpoints as LiteLLM lists them, each with its deployment's id: the shown params and
/// `model_id` of each, and `exception_status` and `error` for a failed one.
#[derive(Debug, Default)]
pub struct HealthReport {
    pub healthy: Vec<(String, Value)>,
    pub unhealthy: Vec<(String, Value)>,
}

impl HealthReport {
    /// The `/health` body.
    pub fn to_json(&self) -> Value {
        let endpoints = |list: &[(String, Value)]| -> Vec<Value> {
            list.iter().map(|(_, shown)| shown.clone()).collect()
        };
        json!({
            "healthy_endpoints": endpoints(&self.healthy),
            "unhealthy_endpoints": endpoints(&self.unhealthy),
            "healthy_count": self.healthy.len(),
            "unhealthy_count": self.unhealthy.len(),
        })
    }

    /// The part of the report about these deployments.
    pub fn only(&self, deployments: &[String]) -> HealthReport {
        let keep = |list: &[(String, Value)]| {
            list.iter()
                .filter(|(id, _)| deployments.contains(id))
                .cloned()
                .collect()
        };
        HealthReport {
            healthy: keep(&self.healthy),
            unhealthy: keep(&self.unhealthy),
        }
    }
}

/// `general_settings.background_health_checks`: who runs the checks, how often, and the latest
/// result.
#[derive(Debug)]
pub struct Background {
    interval: Duration,
    claimed: AtomicBool,
    latest: RwLock<Option<Arc<HealthReport>>>,
}

impl Background {
    /// `None` unless the settings turn background checks on.
    pub fn from_settings(settings: &crate::config::GeneralSettings) -> Option<Background> {
        (settings.background_health_checks == Some(true)).then(|| Background {
            interval: settings
                .health_check_interval
                .filter(|s| *s > 0.0)
                .and_then(crate::config::seconds)
                .unwrap_or(DEFAULT_INTERVAL),
            claimed: AtomicBool::new(false),
            latest: RwLock::new(None),
        })
    }

    /// True for the first worker to ask: that one runs the checks.
    pub fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    /// The latest background result, once the first round has finished.
    pub fn latest(&self) -> Option<Arc<HealthReport>> {
        self.latest.read().ok().and_then(|latest| latest.clone())
    }

    fn store(&self, report: HealthReport) {
        if let Ok(mut latest) = self.latest.write() {
            *latest = Some(Arc::new(report));
        }
    }
}

/// Start the background checks on this worker's HTTP actor (see [`background`]).
pub struct RunInBackground;

impl Message for RunInBackground {
    type Result = ();
}

/// Checks every deployment now and then every interval, keeping the latest result; runs until
/// the worker's HTTP actor stops.
pub async fn background(shared: Arc<Shared>, client: upstream::Transport) {
    let Some(interval) = shared.background_health.as_ref().map(|b| b.interval) else {
        return;
    };
    log::info!(
        "background health checks every {:?} for {} deployments",
        interval,
        shared.config.deployments.len()
    );
    loop {
        let deployments = shared
            .config
            .deployments
            .iter()
            .map(|d| d.id.clone())
            .collect();
        let report = check(shared.clone(), client.clone(), deployments).await;
        let counts = (report.healthy.len(), report.unhealthy.len());
        if let Some(background) = &shared.background_health {
            background.store(report);
        }
        log::info!(
            "background health check: {} healthy, {} unhealthy",
            counts.0,
            counts.1
        );
        tokio::time::sleep(interval).await;
    }
}

/// Calls every deployment at once and sorts them by outcome, in the order given.
pub async fn check(
    shared: Arc<Shared>,
    client: upstream::Transport,
    deployments: Vec<String>,
) -> HealthReport {
    // `general_settings.health_check_details: false` shows the model alone.
    let details = shared.config.general_settings.health_check_details != Some(false);
    let probes = deployments.iter().map(|id| probe(&shared, &client, id));
    let outcomes = futures_util::future::join_all(probes).await;
    let mut report = HealthReport::default();
    for (id, outcome) in deployments.iter().zip(outcomes) {
        let Some(deployment) = shared.deployment(id) else {
            continue;
        };
        let mut shown = if details {
            let mut shown = shown_params(
                &deployment.config.litellm_params,
                &deployment.config.model_info,
            );
            shown.insert("model_id".into(), Value::String(id.clone()));
            shown
        } else {
            let mut shown = Map::new();
            shown.insert("model".into(), Value::String(deployment.model.clone()));
            shown
        };
        match outcome {
            Ok(()) => report.healthy.push((id.clone(), Value::Object(shown))),
            Err(e) => {
                log::warn!(
                    "health check of {} ({}) failed: {}",
                    deployment.config.model_name,
                    id,
                    e.message
                );
                if details {
                    shown.insert("exception_status".into(), Value::from(e.status));
                    shown.insert("error".into(), Value::String(e.message));
                }
                report.unhealthy.push((id.clone(), Value::Object(shown)));
            }
        }
    }
    report
}

/// One deployment's check: a tiny request of its mode, with its defaults, its mock or its
/// upstream, as a routed call would go.
async fn probe(
    shared: &Shared,
    client: &upstream::Transport,
    id: &str,
) -> Result<(), ProviderError> {
    let deployment = shared.deployment_to_call(id)?;
    let info = &deployment.config.model_info;
    let mode = info.get("mode").and_then(Value::as_str).unwrap_or("chat");
    let check_model = info.get("health_check_model").and_then(Value::as_str);
    let max_tokens = info
        .get("health_check_max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    if check_model.is_none() && deployment.config.is_wildcard() {
        return Err(ProviderError::invalid_config(
            "a wildcard deployment is checked with the model in its model_info.health_check_model"
                .to_string(),
        ));
    }
    let group = &deployment.config.model_name;
    let (endpoint, body) = match mode {
        "chat" => (
            Endpoint::ChatCompletions,
            json!({"model": group, "messages": [{"role": "user", "content": "What's 1 + 1?"}], "max_tokens": max_tokens}),
        ),
        "completion" => (
            Endpoint::Completions,
            json!({"model": group, "prompt": "test", "max_tokens": max_tokens}),
        ),
        "embedding" => (
            Endpoint::Embeddings,
            json!({"model": group, "input": ["test"]}),
        ),
        other => {
            return Err(ProviderError::invalid_config(format!(
                "model_info.mode `{other}` is not supported yet by llm-proxy's health check \
                 (chat, completion and embedding are)"
            )))
        }
    };
    let body = RequestBody::parse(Bytes::from(body.to_string()))
        .map_err(|e| ProviderError::invalid_config(format!("health check request: {e}")))?;
    let timeout = info
        .get("health_check_timeout")
        .and_then(Value::as_f64)
        .and_then(crate::config::seconds)
        .unwrap_or(DEFAULT_TIMEOUT);
    let request = Dispatch {
        endpoint,
        model: group.clone(),
        body: Arc::new(body),
        stream: false,
        overrides: Overrides {
            timeout: Some(timeout),
            ..Overrides::default()
        },
        call_id: String::from("health-check"),
        client_headers: Vec::new(),
    };
    match dispatch::prepare_call(shared, &request, id, check_model)? {
        Prepared::Mock(MockOutcome::Error(e)) => Err(e),
        Prepared::Mock(MockOutcome::StreamError { error, .. }) => Err(error),
        Prepared::Mock(_) => Ok(()),
        Prepared::Upstream(call) => {
            let call = *call;
            let label = call.adapter.label();
            let (reply, body) = dispatch::exchange(
                client,
                call.request,
                label,
                false,
                Instant::now(),
                call.timeout,
            )
            .await?;
            let body = body.unwrap_or_default();
            dispatch::read_answer(&*call.adapter, endpoint, &reply, &body, &call.stream_ctx)
                .map(|_| ())
        }
    }
}

/// What `/health` shows of a deployment: the display params it sets (an `api_base` without its
/// query, which may carry a token) and its `model_info.mode`.
fn shown_params(
    litellm_params: &Map<String, Value>,
    model_info: &Map<String, Value>,
) -> Map<String, Value> {
    let mut shown = Map::new();
    for &key in SHOWN_PARAMS {
        let Some(value) = litellm_params.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let value = match (key, value) {
            ("api_base", Value::String(base)) => {
                Value::String(base.split('?').next().unwrap_or_default().to_string())
            }
            _ => value.clone(),
        };
        shown.insert(key.to_string(), value);
    }
    if let Some(mode) = model_info.get("mode").filter(|v| v.is_string()) {
        shown.insert("mode".into(), mode.clone());
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::obj;

    #[test]
    fn only_the_display_params_are_shown_and_the_base_loses_its_query() {
        let params = obj(json!({
            "model": "azure/gpt-4o", "api_key": "sk-secret", "azure_ad_token": "eyJ",
            "api_base": "https://x.openai.azure.com/?sig=secret", "api_version": "2024-10-21",
            "rpm": 6, "aws_secret_access_key": "AKIA", "custom_llm_provider": null
        }));
        let info = obj(json!({"mode": "chat", "id": "abc"}));
        assert_eq!(
            Value::Object(shown_params(&params, &info)),
            json!({"model": "azure/gpt-4o", "api_base": "https://x.openai.azure.com/",
                   "api_version": "2024-10-21", "rpm": 6, "mode": "chat"})
        );
    }
}
