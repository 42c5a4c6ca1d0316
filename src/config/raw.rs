//! The first layer: LiteLLM's config.yaml as written. Structure is checked here (with the YAML
//! path of any wrong type); values are resolved and validated in the second layer.

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub model_list: Option<Vec<RawDeployment>>,
    #[serde(default)]
    pub litellm_settings: Option<Map<String, Value>>,
    #[serde(default)]
    pub general_settings: Option<Map<String, Value>>,
    #[serde(default)]
    pub router_settings: Option<Map<String, Value>>,
    #[serde(default)]
    pub environment_variables: Option<Map<String, Value>>,
    #[serde(default)]
    pub credential_list: Option<Vec<RawCredential>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `model_list` entry.
#[derive(Debug, Deserialize)]
pub(crate) struct RawDeployment {
    pub model_name: String,
    /// Any key is allowed; YAML order is kept (it feeds the deployment id).
    pub litellm_params: Map<String, Value>,
    #[serde(default)]
    pub model_info: Option<Map<String, Value>>,
    #[serde(default)]
    pub rpm: Option<Value>,
    #[serde(default)]
    pub tpm: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `credential_list` entry.
#[derive(Debug, Deserialize)]
pub(crate) struct RawCredential {
    pub credential_name: String,
    #[serde(default)]
    pub credential_values: Option<Map<String, Value>>,
    /// Descriptive only (LiteLLM's UI shows it): checked to be a mapping, otherwise unused.
    #[serde(default, rename = "credential_info")]
    pub _credential_info: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
