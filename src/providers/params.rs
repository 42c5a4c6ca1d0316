//! Building the request an adapter translates: the client's body, the deployment's
//! `litellm_params` defaults under it, and LiteLLM's own control fields taken out.

use serde_json::{Map, Value};

use super::body::IntoBody;
use super::PreparedRequest;

/// OpenAI request parameters a deployment may set in `litellm_params` as defaults. A request
/// value always wins (LiteLLM merges `{**litellm_params, **request}`).
pub const OPENAI_PARAMS: &[&str] = &[
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "response_format",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "logprobs",
    "top_logprobs",
    "functions",
    "function_call",
    "reasoning_effort",
    "modalities",
    "audio",
    "prediction",
    "service_tier",
    "store",
    "web_search_options",
    "dimensions",
    "encoding_format",
    "suffix",
    "echo",
    "best_of",
];

/// Request fields LiteLLM consumes itself; they never reach a provider.
const CONTROL_FIELDS: &[&str] = &[
    "metadata",
    "num_retries",
    "max_retries",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "disable_fallbacks",
    "mock_response",
    "mock_testing_fallbacks",
    "mock_testing_context_fallbacks",
    "mock_testing_content_policy_fallbacks",
    "mock_testing_rate_limit_error",
    "mock_timeout",
    "mock_delay",
    "mock_tool_calls",
    "timeout",
    "request_timeout",
    "stream_timeout",
    "api_key",
    "api_base",
    "base_url",
    "api_version",
    "drop_params",
    "additional_drop_params",
    "allowed_openai_params",
    "caching",
    "cache",
    "tags",
    "guardrails",
    "extra_headers",
    "extra_body",
    "proxy_server_request",
    "specific_deployment",
    "model_info",
    "input_cost_per_token",
    "output_cost_per_token",
    "litellm_credential_name",
];

/// Whether a request field is one of LiteLLM's control fields (or any `litellm_*` field).
pub fn is_control_field(key: &str) -> bool {
    CONTROL_FIELDS.contains(&key) || key.starts_with("litellm_") || key.starts_with("user_api_key")
}

/// What a deployment adds to every request: its OpenAI params, its provider-specific params
/// (every key that is not LiteLLM's own, as `config::litellm_params` tells) and the
/// fields of its `extra_body`, and its `extra_headers`, read out of `litellm_params` once, at
/// start-up, instead of on every call. A request's own value wins over each.
#[derive(Clone, Debug, Default)]
pub struct DeploymentDefaults {
    params: Vec<(String, Value)>,
    extra_headers: Vec<(String, String)>,
    /// `additional_drop_params`: fields never sent to this deployment.
    dropped: Vec<String>,
}

impl DeploymentDefaults {
    pub fn from_params(litellm_params: &Map<String, Value>) -> DeploymentDefaults {
        let openai = OPENAI_PARAMS.iter().filter_map(|key| {
            litellm_params
                .get(*key)
                .map(|v| ((*key).to_string(), v.clone()))
        });
        let provider_specific = litellm_params
            .iter()
            .filter(|(key, _)| {
                !OPENAI_PARAMS.contains(&key.as_str())
                    && !is_control_field(key)
                    && !crate::config::litellm_params::is_litellm_owned(key)
            })
            .map(|(key, v)| (key.clone(), v.clone()));
        let mut params: Vec<(String, Value)> = openai
            .chain(provider_specific)
            .filter(|(_, v)| !v.is_null())
            .collect();
        if let Some(Value::Object(extra)) = litellm_params.get("extra_body") {
            for (key, v) in extra {
                if !v.is_null() && !is_control_field(key) && !params.iter().any(|(k, _)| k == key) {
                    params.push((key.clone(), v.clone()));
                }
            }
        }
        DeploymentDefaults {
            params,
            dropped: litellm_params
                .get("additional_drop_params")
                .map(names)
                .unwrap_or_default(),
            extra_headers: litellm_params
                .get("extra_headers")
                .map(header_pairs)
                .unwrap_or_default(),
        }
    }
}

/// [`prepare_with`] for a deployment's raw `litellm_params`.
pub fn prepare(body: impl IntoBody, deployment: &Map<String, Value>) -> PreparedRequest {
    prepare_with(body, &DeploymentDefaults::from_params(deployment))
}

/// The body an adapter translates: the client's fields in their order, deployment defaults
/// appended for the OpenAI params the client left out, `extra_body` merged in, control fields
/// removed. `extra_headers` come from the request if it has them, else from the deployment.
pub fn prepare_with(body: impl IntoBody, defaults: &DeploymentDefaults) -> PreparedRequest {
    let client = body.into_body();
    let client_extra = match client.value("extra_body") {
        Some(Value::Object(extra)) => extra,
        _ => Map::new(),
    };
    // The request's own list replaces the deployment's, as LiteLLM's kwargs do.
    let dropped = match client.value("additional_drop_params") {
        Some(list) => names(&list),
        None => defaults.dropped.clone(),
    };
    let kept = |key: &str| !dropped.iter().any(|d| d == key);
    let mut appended: Vec<(String, Value)> = defaults
        .params
        .iter()
        .filter(|(key, _)| !client.contains(key) && !client_extra.contains_key(key) && kept(key))
        .map(|(key, v)| (key.clone(), v.clone()))
        .collect();
    let extra_headers = match client.value("extra_headers") {
        Some(v) => header_pairs(&v),
        None => defaults.extra_headers.clone(),
    };
    for (k, v) in client_extra {
        if !client.contains(&k) && !is_control_field(&k) && kept(&k) {
            appended.push((k, v));
        }
    }
    let stream = matches!(client.get::<bool>("stream"), Some(Ok(true)));
    let include_usage = stream
        && client
            .value("stream_options")
            .and_then(|o| o.get("include_usage").and_then(Value::as_bool))
            .unwrap_or(false);
    PreparedRequest::new(
        client,
        appended,
        stream,
        include_usage,
        extra_headers,
        dropped,
    )
}

/// A list of field names (`additional_drop_params`); anything else names none.
fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn header_pairs(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => return None,
                    other => other.to_string(),
                };
                Some((k.to_ascii_lowercase(), value))
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::providers::testing::obj;

    #[test]
    fn deployment_defaults_fill_only_missing_params() {
        let body = obj(json!({"model": "m", "messages": [], "temperature": 0.1}));
        let dep = obj(
            json!({"model": "openai/x", "api_key": "sk-secret", "temperature": 0.9, "max_tokens": 20, "seed": 7, "rpm": 6}),
        );
        let p = prepare(body, &dep);
        assert_eq!(
            Value::Object(p.body().clone()),
            json!({"model": "m", "messages": [], "temperature": 0.1, "max_tokens": 20, "seed": 7})
        );
    }

    #[test]
    fn provider_specific_params_and_extra_body_of_a_deployment_are_defaults_too() {
        let dep = obj(json!({
            "model": "hosted_vllm/m", "api_base": "http://x", "rpm": 5, "ssl_verify": false,
            "input_cost_per_token_above_128k_tokens": 1e-6, "aws_region_name": "eu-west-1",
            "top_k": 20, "repetition_penalty": 1.05, "temperature": 0.3, "unset": null,
            "extra_body": {"chat_template_kwargs": {"enable_thinking": false}, "top_k": 1, "metadata": {}}
        }));
        let p = prepare(obj(json!({"model": "m", "messages": []})), &dep);
        assert_eq!(
            Value::Object(p.body().clone()),
            json!({"model": "m", "messages": [], "temperature": 0.3, "top_k": 20,
                   "repetition_penalty": 1.05, "chat_template_kwargs": {"enable_thinking": false}})
        );
        // The request's own values win, top level or in its extra_body.
        let body =
            obj(json!({"model": "m", "repetition_penalty": 1.0, "extra_body": {"top_k": 2}}));
        let p = prepare(body, &dep);
        assert_eq!(p.body()["repetition_penalty"], json!(1.0));
        assert_eq!(p.body()["top_k"], json!(2));
    }

    #[test]
    fn additional_drop_params_are_never_sent_and_the_requests_list_wins() {
        let dep = obj(json!({"model": "openai/x", "top_k": 5, "seed": 1,
                             "additional_drop_params": ["response_format", "top_k"]}));
        let body = || {
            let sent = bytes::Bytes::from_static(
                br#"{"model":"m","response_format":{"type":"json_object"},"user":"u"}"#,
            );
            std::sync::Arc::new(crate::providers::RequestBody::parse(sent).unwrap())
        };
        let p = prepare(body(), &dep);
        assert_eq!(
            &p.json_with_model("m")[..],
            br#"{"model":"m","user":"u","seed":1}"#
        );
        assert_eq!(
            Value::Object(p.body().clone()),
            json!({"model": "m", "user": "u", "seed": 1})
        );
        let own = obj(json!({"model": "m", "user": "u", "additional_drop_params": ["user"]}));
        let p = prepare(own, &dep);
        assert_eq!(
            Value::Object(p.body().clone()),
            json!({"model": "m", "top_k": 5, "seed": 1})
        );
    }

    #[test]
    fn control_fields_never_go_upstream_and_unknown_ones_do() {
        let body = obj(json!({
            "model": "m", "messages": [], "metadata": {"a": 1}, "num_retries": 3,
            "mock_response": "hi", "litellm_call_id": "x", "my_vendor_flag": true,
            "extra_body": {"top_k": 5}
        }));
        let p = prepare(body, &Map::new());
        assert_eq!(
            Value::Object(p.body().clone()),
            json!({"model": "m", "messages": [], "my_vendor_flag": true, "top_k": 5})
        );
    }

    #[test]
    fn openai_bodies_keep_the_clients_bytes() {
        let client = bytes::Bytes::from_static(
            br#"{"messages": [ {"role":"user", "content":"1e2 \u00e9"} ],"model":"m","n":1e2,"metadata":{"x":1}}"#,
        );
        let body = std::sync::Arc::new(crate::providers::RequestBody::parse(client).unwrap());
        let dep = obj(json!({"temperature": 0.5}));
        let p = prepare(body, &dep);
        assert_eq!(
            &p.json_with_model("up")[..],
            &br#"{"messages":[ {"role":"user", "content":"1e2 \u00e9"} ],"model":"up","n":1e2,"temperature":0.5}"#[..]
        );
        assert_eq!(p.body()["n"], json!(100.0));
        let p = prepare(obj(json!({"input": "x"})), &Map::new());
        assert_eq!(&p.json_with_model("e")[..], br#"{"model":"e","input":"x"}"#);
    }

    #[test]
    fn a_body_with_nothing_to_change_is_forwarded_as_sent() {
        let sent = bytes::Bytes::from_static(br#"{ "model" : "m", "messages": [ ] }"#);
        let body =
            || std::sync::Arc::new(crate::providers::RequestBody::parse(sent.clone()).unwrap());
        let p = prepare(body(), &Map::new());
        let out = p.json_with_model("m");
        assert_eq!(out, sent);
        assert_eq!(out.as_ptr(), sent.as_ptr(), "the same buffer, not a copy");
        // Another upstream model, an appended default or a proxy-only field: rebuilt.
        assert_eq!(
            &p.json_with_model("n")[..],
            br#"{"model":"n","messages":[ ]}"#
        );
        let p = prepare(body(), &obj(json!({"temperature": 0.5})));
        assert_ne!(p.json_with_model("m"), sent);
        let with_control = bytes::Bytes::from_static(br#"{"model":"m","num_retries":2}"#);
        let body = std::sync::Arc::new(crate::providers::RequestBody::parse(with_control).unwrap());
        assert_eq!(
            &prepare(body, &Map::new()).json_with_model("m")[..],
            br#"{"model":"m"}"#
        );
    }

    #[test]
    fn request_extra_headers_replace_the_deployments() {
        let dep = obj(json!({"extra_headers": {"X-A": "1", "X-B": "2"}}));
        let p = prepare(obj(json!({"model": "m"})), &dep);
        assert_eq!(
            p.extra_headers,
            vec![("x-a".into(), "1".into()), ("x-b".into(), "2".into())]
        );
        let p = prepare(
            obj(json!({"model": "m", "extra_headers": {"X-C": "3"}})),
            &dep,
        );
        assert_eq!(p.extra_headers, vec![("x-c".into(), "3".into())]);
    }

    #[test]
    fn include_usage_needs_a_stream() {
        let p = prepare(
            obj(json!({"stream": true, "stream_options": {"include_usage": true}})),
            &Map::new(),
        );
        assert!(p.stream && p.include_usage);
        let p = prepare(
            obj(json!({"stream_options": {"include_usage": true}})),
            &Map::new(),
        );
        assert!(!p.stream && !p.include_usage);
    }
}
