//! `model_list` entries, resolved into deployments.

use super::env::{EnvResolver, Missing, ENV_PREFIX};
use super::error::ConfigError;
use super::lenient::{value_as_bool, value_as_f64, value_as_u64};
use super::pyrepr::{generate_model_id, py_repr, py_string};
use super::raw::{RawCredential, RawDeployment};
use super::Warnings;
use serde_json::{Map, Value};

/// The environments `model_info.supported_environments` and `LITELLM_ENVIRONMENT` may name.
pub const VALID_LITELLM_ENVIRONMENTS: [&str; 3] = ["development", "staging", "production"];

/// `litellm_params` keys that `/model/info` never shows (LiteLLM's list).
const REMOVED_FROM_MODEL_INFO: [&str; 5] = [
    "api_key",
    "client_secret",
    "vertex_credentials",
    "aws_access_key_id",
    "aws_secret_access_key",
];

/// Key segments (split on `_` and `-`) that make a value sensitive in `/model/info`.
const SENSITIVE_KEY_SEGMENTS: [&str; 12] = [
    "password",
    "secret",
    "key",
    "token",
    "auth",
    "authorization",
    "credential",
    "access",
    "private",
    "certificate",
    "fingerprint",
    "tenancy",
];

/// Keys never masked, though they match a sensitive segment.
const NEVER_MASKED: [&str; 1] = ["litellm_credential_name"];

/// One deployment: a `model_list` entry after `os.environ/` resolution, credential merge,
/// environment filtering and `organization` expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentConfig {
    /// `model_info.id` (an integer stringified), else the id LiteLLM hashes for the same entry.
    /// Each copy of an `organization: [..]` entry has its own id; ids are unique in a config.
    pub id: String,
    /// The public name (model group); may contain `*` wildcards.
    pub model_name: String,
    /// Resolved values in YAML order, then credential values the entry lacked, then a top-level
    /// `rpm`/`tpm` the entry lacked. An unset `os.environ/` variable leaves a null.
    pub litellm_params: Map<String, Value>,
    /// The user's fields (resolved) plus `"id"`.
    pub model_info: Map<String, Value>,
    /// `os.environ/` variables that `litellm_params` (directly or through its credential)
    /// referenced and that were unset. Calls to this deployment should fail naming them.
    pub missing_env: Vec<String>,
}

impl DeploymentConfig {
    /// `litellm_params.model`, e.g. `azure/gpt-4o`; empty if it resolved to nothing.
    pub fn model(&self) -> &str {
        self.str_param("model").unwrap_or("")
    }

    /// Whether `model_name` is a pattern (`*`, `openai/*`).
    pub fn is_wildcard(&self) -> bool {
        self.model_name.contains('*')
    }

    pub fn str_param(&self, key: &str) -> Option<&str> {
        self.litellm_params.get(key).and_then(Value::as_str)
    }

    /// A non-negative integer param; `"6"` reads as 6.
    pub fn u64_param(&self, key: &str) -> Option<u64> {
        self.litellm_params.get(key).and_then(value_as_u64)
    }

    /// A number param; `"0.5"` reads as 0.5.
    pub fn f64_param(&self, key: &str) -> Option<f64> {
        self.litellm_params.get(key).and_then(value_as_f64)
    }

    /// A boolean param; `"True"`, `"false"`, `"yes"`, `"off"` read as booleans.
    pub fn bool_param(&self, key: &str) -> Option<bool> {
        self.litellm_params.get(key).and_then(value_as_bool)
    }

    /// Requests per minute: `litellm_params.rpm`, else `model_info.rpm`.
    pub fn rpm(&self) -> Option<u64> {
        self.u64_param("rpm")
            .or_else(|| self.model_info.get("rpm").and_then(value_as_u64))
    }

    /// Tokens per minute: `litellm_params.tpm`, else `model_info.tpm`.
    pub fn tpm(&self) -> Option<u64> {
        self.u64_param("tpm")
            .or_else(|| self.model_info.get("tpm").and_then(value_as_u64))
    }

    /// `litellm_params` as `/model/info` shows them (LiteLLM's rules): `api_key`,
    /// `client_secret`, `vertex_credentials` and the AWS keys removed; the value of any key with a
    /// segment like `key`, `token`, `secret` shown as its first and last 4 characters (values
    /// shorter than 8 characters unchanged); nested mappings and lists treated the same way;
    /// `litellm_credential_name` shown as is.
    pub fn masked_litellm_params(&self) -> Map<String, Value> {
        let mut params = self.litellm_params.clone();
        for key in REMOVED_FROM_MODEL_INFO {
            params.remove(key);
        }
        mask_map(&params)
    }
}

fn is_sensitive_key(key: &str) -> bool {
    if NEVER_MASKED.contains(&key) {
        return false;
    }
    let key = key.to_lowercase().replace('-', "_");
    key.split('_')
        .any(|segment| SENSITIVE_KEY_SEGMENTS.contains(&segment))
}

fn mask_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 8 {
        return text.to_owned();
    }
    let mut out: String = chars[..4].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 8));
    out.extend(&chars[chars.len() - 4..]);
    out
}

fn mask_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .map(|(key, value)| {
            let sensitive = is_sensitive_key(key);
            let masked = match value {
                Value::Object(inner) => Value::Object(mask_map(inner)),
                Value::Array(items) => Value::Array(mask_list(items, sensitive)),
                Value::Null if sensitive => Value::String(String::new()),
                other if sensitive => Value::String(mask_text(&py_string(other))),
                other => other.clone(),
            };
            (key.clone(), masked)
        })
        .collect()
}

fn mask_list(items: &[Value], sensitive: bool) -> Vec<Value> {
    items
        .iter()
        .map(|item| match item {
            Value::Object(inner) => Value::Object(mask_map(inner)),
            Value::Array(inner) => Value::Array(mask_list(inner, sensitive)),
            Value::String(s) if sensitive => Value::String(mask_text(s)),
            other => other.clone(),
        })
        .collect()
}

/// A `credential_list` entry with its values resolved.
pub(crate) struct Credential {
    name: String,
    values: Map<String, Value>,
    /// Unset variables, by credential key.
    missing: Vec<(String, Missing)>,
}

impl Credential {
    pub(crate) fn resolve(
        index: usize,
        raw: RawCredential,
        resolver: &EnvResolver,
        warnings: &mut Warnings,
    ) -> Credential {
        let path = format!("credential_list[{index}]");
        for key in raw.extra.keys() {
            warnings.unknown_key(&format!("{path}.{key}"));
        }
        let mut values = Map::new();
        let mut missing = Vec::new();
        for (key, mut value) in raw.credential_values.unwrap_or_default() {
            let mut found = Vec::new();
            resolver.resolve(&mut value, &format!("credential_values.{key}"), &mut found);
            missing.extend(found.into_iter().map(|m| (key.clone(), m)));
            values.insert(key, value);
        }
        Credential {
            name: raw.credential_name,
            values,
            missing,
        }
    }
}

/// Where a `model_list` entry is: `model_list[3] (gpt-4o)`.
fn label(index: usize, model_name: &str) -> String {
    format!("model_list[{index}] ({model_name})")
}

/// Builds the deployments of `model_list[index]`: none when it is skipped (wrong environment),
/// one per organization for `organization: [..]`, else one.
pub(crate) fn build(
    index: usize,
    raw: RawDeployment,
    credentials: &[Credential],
    resolver: &EnvResolver,
    warnings: &mut Warnings,
    origin: &str,
) -> Result<Vec<DeploymentConfig>, ConfigError> {
    let path = format!("model_list[{index}]");
    let type_error = |yaml_path: String, message: String| ConfigError::Type {
        origin: origin.to_owned(),
        yaml_path,
        message,
    };
    match raw.litellm_params.get("model") {
        Some(Value::String(_)) => {}
        None => {
            return Err(type_error(
                format!("{path}.litellm_params"),
                "missing field `model`".to_owned(),
            ))
        }
        Some(other) => {
            return Err(type_error(
                format!("{path}.litellm_params.model"),
                format!("expected a string, found {}", py_string(other)),
            ))
        }
    }
    for key in raw.extra.keys() {
        warnings.unknown_key(&format!("{path}.{key}"));
    }

    // model_name may itself be a reference.
    let (model_name, hash_name) = resolve_name(&raw.model_name, resolver);
    let label = label(index, &model_name);
    if model_name == raw.model_name && raw.model_name.starts_with(ENV_PREFIX) {
        warnings.push(format!(
            "{label}: {} is not set; the name is used as written",
            raw.model_name
        ));
    }

    // The params LiteLLM hashes: resolved its way, before credentials and top-level rpm/tpm.
    let mut hash_params = Value::Object(raw.litellm_params.clone());
    resolver.resolve_litellm_view(&mut hash_params);
    let hash_params = match hash_params {
        Value::Object(map) => map,
        _ => Map::new(),
    };

    let mut params = Map::new();
    let mut missing: Vec<(String, Missing)> = Vec::new();
    for (key, mut value) in raw.litellm_params {
        let mut found = Vec::new();
        resolver.resolve(&mut value, &format!("litellm_params.{key}"), &mut found);
        missing.extend(found.into_iter().map(|m| (key.clone(), m)));
        params.insert(key, value);
    }
    for (_, m) in &missing {
        warnings.push(format!(
            "{label}: {ENV_PREFIX}{} is not set; {} is null",
            m.variable, m.path
        ));
    }

    let mut model_info = Value::Object(raw.model_info.unwrap_or_default());
    let mut info_missing = Vec::new();
    resolver.resolve(&mut model_info, "model_info", &mut info_missing);
    for m in &info_missing {
        warnings.push(format!(
            "{label}: {ENV_PREFIX}{} is not set; {} is null",
            m.variable, m.path
        ));
    }
    let model_info = match model_info {
        Value::Object(map) => map,
        _ => Map::new(),
    };

    merge_credential(&mut params, &mut missing, credentials, &label, warnings);

    for (key, value) in [("rpm", raw.rpm), ("tpm", raw.tpm)] {
        let Some(mut value) = value else { continue };
        if params.get(key).is_some_and(|v| !v.is_null()) {
            continue;
        }
        let mut found = Vec::new();
        resolver.resolve(&mut value, key, &mut found);
        for m in &found {
            warnings.push(format!(
                "{label}: {ENV_PREFIX}{} is not set; {key} is null",
                m.variable
            ));
        }
        params.insert(key.to_owned(), value);
    }

    warn_unreadable_numbers(&params, &label, warnings);
    for (key, value) in &params {
        if super::litellm_params::is_owned_but_not_acted_on(key) && !value.is_null() {
            warnings.not_supported(&format!("{label}: litellm_params.{key}"));
        }
    }

    if !active_for_environment(&model_info, &model_name, &label, warnings) {
        return Ok(Vec::new());
    }

    let explicit_id = match model_info.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(type_error(
                format!("{path}.model_info.id"),
                format!(
                    "expected a string or an integer, found {}",
                    py_string(other)
                ),
            ))
        }
    };

    let mut missing_env: Vec<String> = Vec::new();
    for (_, m) in missing {
        if !missing_env.contains(&m.variable) {
            missing_env.push(m.variable);
        }
    }

    let make = |id: String, params: Map<String, Value>| {
        let mut model_info = model_info.clone();
        model_info.insert("id".to_owned(), Value::String(id.clone()));
        DeploymentConfig {
            id,
            model_name: model_name.clone(),
            litellm_params: params,
            model_info,
            missing_env: missing_env.clone(),
        }
    };

    let Some(Value::Array(orgs)) = params.get("organization") else {
        let id = explicit_id.unwrap_or_else(|| generate_model_id(&hash_name, &hash_params));
        return Ok(vec![make(id, params)]);
    };
    // One deployment per organization (LiteLLM gives them all one id; each gets its own here).
    if orgs.is_empty() {
        warnings.push(format!(
            "{label}: litellm_params.organization is an empty list; deployment skipped"
        ));
        return Ok(Vec::new());
    }
    let hash_orgs = match hash_params.get("organization") {
        Some(Value::Array(items)) => items.clone(),
        _ => orgs.clone(),
    };
    let mut out = Vec::with_capacity(orgs.len());
    for (j, org) in orgs.iter().enumerate() {
        let mut copy = params.clone();
        copy.insert("organization".to_owned(), org.clone());
        let id = match &explicit_id {
            Some(id) if j == 0 => id.clone(),
            Some(id) => format!("{id}-{j}"),
            None => {
                // The id LiteLLM would give an entry written with this one organization.
                let mut hashed = hash_params.clone();
                let mut org = hash_orgs.get(j).cloned().unwrap_or(Value::Null);
                resolver.resolve_litellm_view(&mut org);
                hashed.insert("organization".to_owned(), org);
                generate_model_id(&hash_name, &hashed)
            }
        };
        out.push(make(id, copy));
    }
    Ok(out)
}

/// The model name for our use and for hashing LiteLLM's id; a reference to an unset variable
/// keeps the text as written.
fn resolve_name(name: &str, resolver: &EnvResolver) -> (String, String) {
    let as_text = |value: Value| match value {
        Value::Null => name.to_owned(),
        other => py_string(&other),
    };
    let mut ours = Value::String(name.to_owned());
    resolver.resolve(&mut ours, "model_name", &mut Vec::new());
    let mut theirs = Value::String(name.to_owned());
    resolver.resolve_litellm_view(&mut theirs);
    (as_text(ours), as_text(theirs))
}

/// Copies the named credential's values into `params` where the key is absent or null.
fn merge_credential(
    params: &mut Map<String, Value>,
    missing: &mut Vec<(String, Missing)>,
    credentials: &[Credential],
    label: &str,
    warnings: &mut Warnings,
) {
    let name = match params.get("litellm_credential_name") {
        None | Some(Value::Null) => return,
        Some(Value::String(name)) => name.clone(),
        Some(other) => {
            warnings.push(format!(
                "{label}: litellm_credential_name must be a string, not {}; ignored",
                py_string(other)
            ));
            return;
        }
    };
    let Some(credential) = credentials.iter().find(|c| c.name == name) else {
        warnings.push(format!(
            "{label}: litellm_credential_name {name:?} is not in credential_list; ignored"
        ));
        return;
    };
    for (key, value) in &credential.values {
        if params.get(key).is_some_and(|v| !v.is_null()) {
            continue;
        }
        missing.retain(|(k, _)| k != key);
        for (_, m) in credential.missing.iter().filter(|(k, _)| k == key) {
            warnings.push(format!(
                "{label}: {ENV_PREFIX}{} (credential {name}) is not set; litellm_params.{key} is null",
                m.variable
            ));
            missing.push((key.clone(), m.clone()));
        }
        params.insert(key.clone(), value.clone());
    }
}

/// The numeric `litellm_params` the proxy reads, and whether each must be a whole number.
const NUMERIC_PARAMS: &[(&str, bool)] = &[
    ("rpm", true),
    ("tpm", true),
    ("max_parallel_requests", true),
    ("order", true),
    ("num_retries", true),
    ("weight", false),
    ("timeout", false),
    ("stream_timeout", false),
    ("cooldown_time", false),
    ("input_cost_per_token", false),
    ("output_cost_per_token", false),
];

/// A numeric param the proxy cannot read (`rpm: "abc"`, `tpm: -1`, `order: 1.5`) would be left
/// out without a word: one warning each, naming it.
fn warn_unreadable_numbers(params: &Map<String, Value>, label: &str, warnings: &mut Warnings) {
    for &(key, whole) in NUMERIC_PARAMS {
        let Some(value) = params.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let (readable, expected) = if whole {
            (
                value_as_u64(value).is_some(),
                "a whole number of at least 0",
            )
        } else {
            (value_as_f64(value).is_some(), "a number")
        };
        if !readable {
            warnings.push(format!(
                "{label}: litellm_params.{key} is {}, not {expected}; ignored",
                py_string(value)
            ));
        }
    }
}

/// LiteLLM's `deployment_is_active_for_environment`, with its errors as warnings: false means
/// skip the deployment.
fn active_for_environment(
    model_info: &Map<String, Value>,
    model_name: &str,
    label: &str,
    warnings: &mut Warnings,
) -> bool {
    let Some(supported) = model_info
        .get("supported_environments")
        .filter(|v| !v.is_null())
    else {
        return true;
    };
    let valid = "['development', 'staging', 'production']";
    let Ok(current) = std::env::var("LITELLM_ENVIRONMENT") else {
        warnings.push(format!(
            "{label}: Set 'supported_environments' for model but not 'LITELLM_ENVIRONMENT' set in .env; deployment skipped"
        ));
        return false;
    };
    if !VALID_LITELLM_ENVIRONMENTS.contains(&current.as_str()) {
        warnings.push(format!(
            "{label}: LITELLM_ENVIRONMENT must be one of {valid}. but set as: {current}; deployment skipped"
        ));
        return false;
    }
    let listed: Vec<&Value> = match supported {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    for env in &listed {
        if !env
            .as_str()
            .is_some_and(|e| VALID_LITELLM_ENVIRONMENTS.contains(&e))
        {
            warnings.push(format!(
                "{label}: supported_environments must be one of {valid}. but set as: {}; deployment skipped",
                py_string(env)
            ));
            return false;
        }
    }
    if listed.iter().any(|e| e.as_str() == Some(current.as_str())) {
        return true;
    }
    let mut shown = String::new();
    py_repr(supported, &mut shown);
    warnings.push(format!(
        "Ignoring deployment {model_name} as it is not active for environment {shown}"
    ));
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(params: Value) -> DeploymentConfig {
        DeploymentConfig {
            id: "x".into(),
            model_name: "m".into(),
            litellm_params: params.as_object().unwrap().clone(),
            model_info: Map::new(),
            missing_env: Vec::new(),
        }
    }

    #[test]
    fn masking_follows_litellm() {
        let d = deployment(json!({
            "model": "azure/x",
            "api_key": "sk-1234567890",
            "api_base": "https://example.com",
            "azure_ad_token": "eyJ0eXAiOiJabcd",
            "max_tokens": 20,
            "aws_session_token": "short",
            "client_secret": "s",
            "litellm_credential_name": "default_azure_credential",
            "extra_headers": {"X-Api-Key": "0123456789", "other": "value-value"},
            "access_token": 1234567890123u64,
            "private_key": null,
            "tags": ["a-long-tag-1"],
            "auth_list": ["0123456789"],
        }));
        assert_eq!(
            Value::Object(d.masked_litellm_params()),
            json!({
                "model": "azure/x",
                "api_base": "https://example.com",
                "azure_ad_token": "eyJ0*******abcd",
                "max_tokens": 20,
                "aws_session_token": "short",
                "litellm_credential_name": "default_azure_credential",
                "extra_headers": {"X-Api-Key": "0123**6789", "other": "value-value"},
                "access_token": "1234*****0123",
                "private_key": "",
                "tags": ["a-long-tag-1"],
                "auth_list": ["0123**6789"],
            })
        );
    }

    #[test]
    fn accessors_accept_strings() {
        let d = deployment(
            json!({"model": "m", "rpm": "6", "tpm": 100, "temperature": "0.5", "stream": "True"}),
        );
        assert_eq!(d.model(), "m");
        assert_eq!(d.rpm(), Some(6));
        assert_eq!(d.tpm(), Some(100));
        assert_eq!(d.f64_param("temperature"), Some(0.5));
        assert_eq!(d.bool_param("stream"), Some(true));
        assert!(!d.is_wildcard());
        let mut d = deployment(json!({"model": "openai/*"}));
        d.model_name = "openai/*".into();
        d.model_info.insert("rpm".into(), json!(10));
        assert!(d.is_wildcard());
        assert_eq!(d.rpm(), Some(10));
    }
}
