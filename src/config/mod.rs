//! LiteLLM's `config.yaml`, loaded unchanged into validated, resolved types.
//!
//! Loading happens in two layers. The `raw` module mirrors the YAML and checks its structure, naming the
//! YAML path of any value of the wrong type (`model_list[3].litellm_params`). The second layer
//! resolves `os.environ/NAME` references, merges `credential_list` entries, drops deployments
//! that are not active for `LITELLM_ENVIRONMENT`, expands `organization: [..]`, derives the
//! deployment ids LiteLLM would, and reads the three settings blocks into typed structs.
//!
//! Only a file that cannot be used is an error ([`ConfigError`]). Everything LiteLLM's proxy
//! tolerates is a warning: each is logged with `log::warn!` once and kept in
//! [`ProxyConfig::warnings`]. Unknown keys are named by path, keys whose feature llm-proxy lacks
//! are listed in [`NOT_YET_SUPPORTED`].
//!
//! Where llm-proxy deliberately differs from LiteLLM:
//! - `environment_variables:` is exported before any `os.environ/` reference is resolved, so a
//!   reference can read a variable defined there (LiteLLM resolves first and sees null).
//! - `os.environ/` is resolved in every string at any depth, including plain strings in lists.
//! - Each copy of an `organization: [..]` entry gets its own id, and ids are unique.
//! - Deployment ids are still hashed from the values LiteLLM would have seen, so that they equal
//!   LiteLLM's for the same config and environment.

mod deployment;
mod env;
mod error;
mod lenient;
pub(crate) mod litellm_params;
pub(crate) mod pyrepr;
mod raw;
mod secret;
mod settings;
mod yaml;

pub use deployment::{DeploymentConfig, VALID_LITELLM_ENVIRONMENTS};
pub use error::ConfigError;
pub use secret::{Secret, SECRET_MASK};
pub use settings::{
    AllowedFailsPolicy, FallbackList, GeneralSettings, LitellmSettings, ModelGroupAlias,
    RetryPolicy, RouterSettings,
};

use deployment::Credential;
use env::{EnvResolver, ENV_PREFIX};
use raw::RawConfig;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use settings::UnknownKeys;
use std::collections::HashSet;
use std::path::Path;

/// The longest any timeout, cooldown or retry-after is taken to be: longer is forever for a
/// proxy, while seconds past `Duration`'s range (`1e30`, say) make `from_secs_f64` panic and an
/// `Instant` plus a few hundred billion years overflows.
pub const LONGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Seconds from a config value, a request or an upstream header as a duration: `None` for NaN,
/// infinities and negatives, and anything past [`LONGEST_WAIT`] taken as that.
pub fn seconds(s: f64) -> Option<std::time::Duration> {
    (s.is_finite() && s >= 0.0).then(|| {
        std::time::Duration::try_from_secs_f64(s).map_or(LONGEST_WAIT, |d| d.min(LONGEST_WAIT))
    })
}

/// Config keys that llm-proxy reads but whose feature it does not implement yet. A key listed
/// here that is set (not null, false or empty) gets the warning "`<key>` is not supported yet by
/// llm-proxy; ignored". Remove a key when its feature lands.
pub const NOT_YET_SUPPORTED: &[&str] = &[
    // Top-level sections.
    "callback_settings",
    "guardrails",
    "prompts",
    "assistant_settings",
    "finetune_settings",
    "files_settings",
    "default_vertex_config",
    "search_tools",
    "mcp_servers",
    "mcp_tools",
    "vector_store_registry",
    "vector_stores",
    // litellm_settings
    "litellm_settings.success_callback",
    "litellm_settings.failure_callback",
    "litellm_settings.callbacks",
    "litellm_settings.cache",
    "litellm_settings.cache_params",
    "litellm_settings.json_logs",
    "litellm_settings.modify_params",
    // general_settings
    "general_settings.alerting",
    "general_settings.alerting_threshold",
    "general_settings.alert_types",
    "general_settings.database_url",
    "general_settings.database_connection_pool_limit",
    "general_settings.database_connection_timeout",
    "general_settings.database_connection_pool_timeout",
    "general_settings.allow_client_side_credentials",
    "general_settings.max_response_size_mb",
    "general_settings.store_model_in_db",
    "general_settings.disable_spend_logs",
    "general_settings.allowed_ips",
    "general_settings.allowed_routes",
    "general_settings.public_routes",
    // router_settings
    "router_settings.redis_host",
    "router_settings.redis_port",
    "router_settings.redis_password",
    "router_settings.redis_url",
    "router_settings.cache_responses",
    "router_settings.cache_kwargs",
    "router_settings.caching_groups",
    "router_settings.polling_interval",
    "router_settings.enable_pre_call_checks",
    "router_settings.optional_pre_call_checks",
    "router_settings.default_litellm_params",
    "router_settings.client_ttl",
    "router_settings.default_priority",
    "router_settings.enable_tag_filtering",
    "router_settings.tag_filtering_match_any",
    "router_settings.provider_budget_config",
    "router_settings.alerting_config",
    "router_settings.guardrail_list",
];

/// LiteLLM's routing strategies.
pub const ROUTING_STRATEGIES: [&str; 6] = [
    "simple-shuffle",
    "least-busy",
    "usage-based-routing",
    "usage-based-routing-v2",
    "latency-based-routing",
    "cost-based-routing",
];

/// A loaded config.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// After credential merge, organization expansion and environment filtering, in file order.
    pub deployments: Vec<DeploymentConfig>,
    /// Every `model_list` entry's `model_name` as written, in file order, skipped ones included
    /// (LiteLLM prints these at start-up).
    pub declared_model_names: Vec<String>,
    pub router_settings: RouterSettings,
    pub litellm_settings: LitellmSettings,
    pub general_settings: GeneralSettings,
    /// Every warning the load logged, in order.
    pub warnings: Vec<String>,
    /// `LITELLM_MASTER_KEY` as it was after `environment_variables:` was applied.
    env_master_key: Option<Secret>,
}

impl ProxyConfig {
    /// Loads a config file; `include:` paths are relative to its directory.
    pub fn load_from_path(path: &Path) -> Result<ProxyConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::NotFound {
                    path: path.to_owned(),
                }
            } else {
                ConfigError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        let base_dir = path.parent().unwrap_or_else(|| Path::new(""));
        load(&text, &path.display().to_string(), base_dir)
    }

    /// Loads config text; `origin` names it in errors, and `include:` paths are relative to the
    /// current directory.
    pub fn load_from_str(yaml: &str, origin: &str) -> Result<ProxyConfig, ConfigError> {
        load(yaml, origin, Path::new(""))
    }

    /// No config given: no models, default settings.
    pub fn empty() -> ProxyConfig {
        ProxyConfig {
            deployments: Vec::new(),
            declared_model_names: Vec::new(),
            router_settings: RouterSettings::default(),
            litellm_settings: LitellmSettings::default(),
            general_settings: GeneralSettings::default(),
            warnings: Vec::new(),
            env_master_key: env_master_key(),
        }
    }

    /// The master key: `general_settings.master_key` (`os.environ/` resolved), else the
    /// environment variable `LITELLM_MASTER_KEY`; `None` when unset or empty.
    pub fn master_key(&self) -> Option<&Secret> {
        self.general_settings
            .master_key
            .as_ref()
            .filter(|key| !key.is_empty())
            .or(self.env_master_key.as_ref())
    }
}

fn env_master_key() -> Option<Secret> {
    std::env::var("LITELLM_MASTER_KEY")
        .ok()
        .filter(|key| !key.is_empty())
        .map(Secret::new)
}

/// Warnings collected during a load; each is logged as it is added.
#[derive(Default)]
pub(crate) struct Warnings(Vec<String>);

impl Warnings {
    pub(crate) fn push(&mut self, message: String) {
        log::warn!("{message}");
        self.0.push(message);
    }

    pub(crate) fn unknown_key(&mut self, path: &str) {
        self.push(format!("{path}: unknown key; ignored"));
    }

    pub(crate) fn not_supported(&mut self, path: &str) {
        self.push(format!("{path} is not supported yet by llm-proxy; ignored"));
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// Whether a value asks for something (a key set to null, false or an empty value does not).
fn is_set(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        Value::Bool(true) | Value::Number(_) => true,
    }
}

fn load(text: &str, origin: &str, base_dir: &Path) -> Result<ProxyConfig, ConfigError> {
    let mut warnings = Warnings::default();
    let empty = || ConfigError::Empty {
        origin: origin.to_owned(),
    };
    let mut doc = match yaml::parse(text, origin, &mut warnings)?.ok_or_else(empty)? {
        Value::Object(doc) if doc.is_empty() => return Err(empty()),
        Value::Object(doc) => doc,
        other => {
            return Err(ConfigError::Type {
                origin: origin.to_owned(),
                yaml_path: ".".to_owned(),
                message: format!(
                    "expected a mapping of config sections (model_list, router_settings, ...), found {}",
                    pyrepr::py_string(&other)
                ),
            })
        }
    };
    apply_includes(&mut doc, base_dir, origin, &mut warnings)?;
    let raw: RawConfig = typed(Value::Object(doc), origin, "")?;

    let mut resolver = EnvResolver::default();
    if let Some(variables) = &raw.environment_variables {
        resolver.export(variables, &mut warnings);
    }
    for (key, value) in &raw.extra {
        if !NOT_YET_SUPPORTED.contains(&key.as_str()) {
            warnings.unknown_key(key);
        } else if is_set(value) {
            warnings.not_supported(key);
        }
    }

    let router_settings: RouterSettings = settings_block(
        raw.router_settings,
        "router_settings",
        &resolver,
        &mut warnings,
        origin,
    )?;
    if let Some(strategy) = &router_settings.routing_strategy {
        if !ROUTING_STRATEGIES.contains(&strategy.as_str()) {
            warnings.push(format!(
                "router_settings.routing_strategy: {strategy:?} is not one of {}",
                ROUTING_STRATEGIES.join(", ")
            ));
        }
    }
    let litellm_settings: LitellmSettings = settings_block(
        raw.litellm_settings,
        "litellm_settings",
        &resolver,
        &mut warnings,
        origin,
    )?;
    let general_settings: GeneralSettings = settings_block(
        raw.general_settings,
        "general_settings",
        &resolver,
        &mut warnings,
        origin,
    )?;

    let credentials: Vec<Credential> = raw
        .credential_list
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| Credential::resolve(i, c, &resolver, &mut warnings))
        .collect();

    let mut declared_model_names = Vec::new();
    let mut deployments = Vec::new();
    for (i, entry) in raw.model_list.into_iter().flatten().enumerate() {
        declared_model_names.push(entry.model_name.clone());
        deployments.extend(deployment::build(
            i,
            entry,
            &credentials,
            &resolver,
            &mut warnings,
            origin,
        )?);
    }
    make_ids_unique(&mut deployments, &mut warnings);

    Ok(ProxyConfig {
        deployments,
        declared_model_names,
        router_settings,
        litellm_settings,
        general_settings,
        warnings: warnings.into_vec(),
        env_master_key: env_master_key(),
    })
}

/// Deserializes through `serde_path_to_error`, so a wrong type names its YAML path.
fn typed<T: DeserializeOwned>(value: Value, origin: &str, prefix: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let yaml_path = if prefix.is_empty() {
            path
        } else if path == "." {
            prefix.to_owned()
        } else if path.starts_with('[') {
            format!("{prefix}{path}")
        } else {
            format!("{prefix}.{path}")
        };
        ConfigError::Type {
            origin: origin.to_owned(),
            yaml_path,
            message: err.into_inner().to_string(),
        }
    })
}

/// Resolves `os.environ/` in a settings block, warns about unset variables and unsupported or
/// unknown keys, and reads it into its typed struct.
fn settings_block<T: DeserializeOwned + Default + UnknownKeys>(
    block: Option<Map<String, Value>>,
    name: &str,
    resolver: &EnvResolver,
    warnings: &mut Warnings,
    origin: &str,
) -> Result<T, ConfigError> {
    let Some(block) = block else {
        return Ok(T::default());
    };
    let mut block = Value::Object(block);
    let mut missing = Vec::new();
    resolver.resolve(&mut block, name, &mut missing);
    for m in missing {
        warnings.push(format!(
            "{}: {ENV_PREFIX}{} is not set; the value is null",
            m.path, m.variable
        ));
    }
    if let Value::Object(map) = &block {
        for (key, value) in map {
            let path = format!("{name}.{key}");
            if NOT_YET_SUPPORTED.contains(&path.as_str()) && is_set(value) {
                warnings.not_supported(&path);
            }
        }
    }
    let settings: T = typed(block, origin, name)?;
    let mut unknown = Vec::new();
    settings.unknown_keys(name, &mut unknown);
    for path in unknown {
        warnings.unknown_key(&path);
    }
    Ok(settings)
}

/// Merges the files named by `include:` (relative to `base_dir`) into the document, as LiteLLM
/// does: a list extends the list already there, any other value replaces it.
fn apply_includes(
    doc: &mut Map<String, Value>,
    base_dir: &Path,
    origin: &str,
    warnings: &mut Warnings,
) -> Result<(), ConfigError> {
    let files = match doc.remove("include") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(file)) => vec![file],
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(file) => Ok(file),
                other => Err(ConfigError::Type {
                    origin: origin.to_owned(),
                    yaml_path: format!("include[{i}]"),
                    message: format!("expected a file path, found {}", pyrepr::py_string(&other)),
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ConfigError::Type {
                origin: origin.to_owned(),
                yaml_path: "include".to_owned(),
                message: format!(
                    "expected a list of file paths, found {}",
                    pyrepr::py_string(&other)
                ),
            })
        }
    };
    for file in files {
        let path = base_dir.join(&file);
        let included_origin = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::Invalid {
                    origin: origin.to_owned(),
                    message: format!("Included file not found: {included_origin}"),
                }
            } else {
                ConfigError::Io {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let included = match yaml::parse(&text, &included_origin, warnings)? {
            None => {
                return Err(ConfigError::Empty {
                    origin: included_origin,
                })
            }
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(ConfigError::Type {
                    origin: included_origin,
                    yaml_path: ".".to_owned(),
                    message: format!(
                        "expected a mapping of config sections, found {}",
                        pyrepr::py_string(&other)
                    ),
                })
            }
        };
        for (key, value) in included {
            if key == "include" {
                warnings.push(format!(
                    "{included_origin}: include: inside an included file is not processed; ignored"
                ));
                continue;
            }
            match (doc.get_mut(&key), value) {
                (Some(Value::Array(existing)), Value::Array(items)) => existing.extend(items),
                (_, value) => {
                    doc.insert(key, value);
                }
            }
        }
    }
    Ok(())
}

/// Gives a deployment whose id an earlier one already has the id `<id>-<n>`, with a warning.
fn make_ids_unique(deployments: &mut [DeploymentConfig], warnings: &mut Warnings) {
    let mut seen: HashSet<String> = HashSet::new();
    for deployment in deployments.iter_mut() {
        if seen.insert(deployment.id.clone()) {
            continue;
        }
        let original = deployment.id.clone();
        let mut n = 1;
        let unique = loop {
            let candidate = format!("{original}-{n}");
            if !seen.contains(&candidate) {
                break candidate;
            }
            n += 1;
        };
        warnings.push(format!(
            "deployment {}: id {original} is already used by an earlier deployment; this one gets id {unique}",
            deployment.model_name
        ));
        deployment
            .model_info
            .insert("id".to_owned(), Value::String(unique.clone()));
        deployment.id = unique.clone();
        seen.insert(unique);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(yaml: &str) -> ProxyConfig {
        match ProxyConfig::load_from_str(yaml, "test.yaml") {
            Ok(config) => config,
            Err(err) => panic!("{err}"),
        }
    }

    #[test]
    fn seconds_are_bounded_and_nonsense_is_none() {
        use std::time::Duration;
        for nonsense in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
            assert_eq!(seconds(nonsense), None, "{nonsense}");
        }
        assert_eq!(seconds(0.0), Some(Duration::ZERO));
        assert_eq!(seconds(1.5), Some(Duration::from_millis(1500)));
        // Past Duration's range and past what an Instant can take: a year, not a panic.
        for huge in [1e30, 1e19, 1e12, f64::MAX] {
            assert_eq!(seconds(huge), Some(LONGEST_WAIT), "{huge}");
        }
    }

    fn ids(config: &ProxyConfig) -> Vec<&str> {
        config.deployments.iter().map(|d| d.id.as_str()).collect()
    }

    /// Expected ids computed by LiteLLM 1.81.0 (`Router(model_list=...)` after the proxy's
    /// `os.environ/` pass) for the same text.
    #[test]
    fn ids_match_litellm_for_every_value_type() {
        let config = load(
            r#"
model_list:
  - model_name: types
    litellm_params:
      model: openai/gpt-4o
      rpm: 6
      temperature: 0.2
      input_cost_per_token: 1.0e-05
      output_cost_per_token: 1e-05
      big: 1.0e+16
      hundred: 100.0
      negative: -3
      stream: True
      drop_params: false
      api_base: null
      empty:
      timeout: .inf
      text: "héllo \"quoted\" it's"
      extra_body: {"nested": {"a": 1, "b": [1, 2.5, "x"]}, "flag": true, "none": null, "uni": "héllo", "q": "say \"hi\"\n"}
      tags: ["a", 'it''s', 3, 0.5, false, null, {"k": "v", "n": 1.5}, [1, "two"], "héllo", "tab\there"]
      empty_list: []
      empty_map: {}
  - model_name: with-id
    litellm_params:
      model: openai/gpt-4o
    model_info:
      id: 42
  - model_name: "*"
    litellm_params:
      model: "*"
"#,
        );
        assert_eq!(
            ids(&config),
            [
                "9d876817d0bfc13c8f3dd13a97c3dfec3b8123fb6433abd2c16573272c839470",
                "42",
                "8f057b29630b3d65c426c7aefb1890d319ce88a66af3654e17754b27b6cdc6e1",
            ]
        );
        assert_eq!(config.deployments[1].model_info["id"], json!("42"));
        assert!(config.deployments[2].is_wildcard());
        // The infinite timeout hashes like any value, and is the one param the proxy cannot
        // read; `stream` and `tags` are LiteLLM's own keys the proxy does not act on.
        assert_eq!(
            config.warnings,
            [
                "model_list[0] (types): litellm_params.timeout is inf, not a number; ignored",
                "model_list[0] (types): litellm_params.stream is not supported yet by llm-proxy; ignored",
                "model_list[0] (types): litellm_params.tags is not supported yet by llm-proxy; ignored",
            ]
        );
    }

    #[test]
    fn ids_match_litellm_for_doc_examples() {
        // 02-model-specific-params: a dict value (json.dumps) and floats.
        let config = load(
            r#"
model_list:
  - model_name: gpt-4-team2
    litellm_params:
      model: azure/gpt-4
      api_key: sk-123
      api_base: https://openai-gpt-4-test-v-2.openai.azure.com/
      temperature: 0.2
  - model_name: openai-gpt-3.5
    litellm_params:
      model: openai/gpt-3.5-turbo
      extra_headers: {"AI-Resource Group": "ishaan-resource"}
      api_key: sk-123
      organization: org-ikDc4ex8NB
      temperature: 0.2
"#,
        );
        assert_eq!(
            ids(&config),
            [
                "f06438db498288e7974e9c5238641dedd96cf301c6100c887baf8327fefef4b6",
                "341dc14c0435ef99b607846492ce2d5b3db823e5c4979124dcec3be45441ed3f",
            ]
        );
    }

    #[test]
    fn unset_variables_are_null_warned_and_listed() {
        let config = load(
            "model_list:\n  - model_name: m\n    litellm_params:\n      model: azure/x\n      api_key: os.environ/LLMP_MOD_T1_UNSET\n      extra_headers: {X-Key: os.environ/LLMP_MOD_T1_UNSET_2}\n",
        );
        let d = &config.deployments[0];
        assert_eq!(d.litellm_params["api_key"], Value::Null);
        assert_eq!(d.litellm_params["extra_headers"], json!({"X-Key": null}));
        assert_eq!(d.missing_env, ["LLMP_MOD_T1_UNSET", "LLMP_MOD_T1_UNSET_2"]);
        assert_eq!(
            config.warnings,
            [
                "model_list[0] (m): os.environ/LLMP_MOD_T1_UNSET is not set; litellm_params.api_key is null",
                "model_list[0] (m): os.environ/LLMP_MOD_T1_UNSET_2 is not set; litellm_params.extra_headers.X-Key is null",
            ]
        );
    }

    #[test]
    fn environment_variables_are_visible_to_references_but_not_to_ids() {
        let config = load(
            r#"
environment_variables:
  LLMP_MOD_T2_KEY: key-from-config
  LLMP_MOD_T2_FLAG: "TRUE"
model_list:
  - model_name: m
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/LLMP_MOD_T2_KEY
      stream: os.environ/LLMP_MOD_T2_FLAG
      tags: [os.environ/LLMP_MOD_T2_KEY]
"#,
        );
        let d = &config.deployments[0];
        assert_eq!(d.str_param("api_key"), Some("key-from-config"));
        assert_eq!(d.litellm_params["stream"], json!(true));
        assert_eq!(d.litellm_params["tags"], json!(["key-from-config"]));
        assert!(d.missing_env.is_empty());
        assert_eq!(
            config.warnings,
            [
                "model_list[0] (m): litellm_params.stream is not supported yet by llm-proxy; ignored",
                "model_list[0] (m): litellm_params.tags is not supported yet by llm-proxy; ignored",
            ]
        );
        // LiteLLM resolves before exporting, so it hashes None and the literal list item.
        let mut hashed = Map::new();
        hashed.insert("model".into(), json!("openai/gpt-4o"));
        hashed.insert("api_key".into(), Value::Null);
        hashed.insert("stream".into(), Value::Null);
        hashed.insert("tags".into(), json!(["os.environ/LLMP_MOD_T2_KEY"]));
        assert_eq!(d.id, pyrepr::generate_model_id("m", &hashed));
    }

    #[test]
    fn credentials_fill_only_absent_keys() {
        std::env::set_var("LLMP_MOD_T3_BASE", "https://cred.example.com");
        let config = load(
            r#"
model_list:
  - model_name: a
    litellm_params:
      model: azure/gpt-4o
      api_version: "2024-01-01"
      litellm_credential_name: cred
  - model_name: b
    litellm_params:
      model: azure/gpt-4o
      litellm_credential_name: nope
credential_list:
  - credential_name: cred
    credential_values:
      api_key: os.environ/LLMP_MOD_T3_UNSET
      api_base: os.environ/LLMP_MOD_T3_BASE
      api_version: "2023-05-15"
    credential_info: {}
"#,
        );
        let a = &config.deployments[0];
        assert_eq!(
            Value::Object(a.litellm_params.clone()),
            json!({"model": "azure/gpt-4o", "api_version": "2024-01-01",
                   "litellm_credential_name": "cred", "api_key": null,
                   "api_base": "https://cred.example.com"})
        );
        assert_eq!(a.missing_env, ["LLMP_MOD_T3_UNSET"]);
        // The id is hashed before the merge, as LiteLLM merges per call.
        let mut hashed = Map::new();
        hashed.insert("model".into(), json!("azure/gpt-4o"));
        hashed.insert("api_version".into(), json!("2024-01-01"));
        hashed.insert("litellm_credential_name".into(), json!("cred"));
        assert_eq!(a.id, pyrepr::generate_model_id("a", &hashed));
        assert_eq!(
            config.warnings,
            [
                "model_list[0] (a): os.environ/LLMP_MOD_T3_UNSET (credential cred) is not set; litellm_params.api_key is null",
                "model_list[1] (b): litellm_credential_name \"nope\" is not in credential_list; ignored",
            ]
        );
    }

    #[test]
    fn top_level_rpm_and_tpm_are_copied_when_absent() {
        let config = load(
            "model_list:\n  - model_name: m\n    rpm: 10\n    tpm: 1000\n    litellm_params: {model: x/y, rpm: 5}\n",
        );
        let d = &config.deployments[0];
        assert_eq!((d.rpm(), d.tpm()), (Some(5), Some(1000)));
        // Not part of the id (LiteLLM copies them after hashing).
        let mut hashed = Map::new();
        hashed.insert("model".into(), json!("x/y"));
        hashed.insert("rpm".into(), json!(5));
        assert_eq!(d.id, pyrepr::generate_model_id("m", &hashed));
    }

    #[test]
    fn organization_lists_expand_with_distinct_ids() {
        let config = load(
            "model_list:\n  - model_name: o\n    litellm_params:\n      model: openai/gpt-4o\n      organization: [org-1, org-2]\n  - model_name: p\n    litellm_params:\n      model: openai/gpt-4o\n      organization: [org-1, org-2]\n    model_info: {id: fixed}\n",
        );
        let orgs: Vec<_> = config
            .deployments
            .iter()
            .map(|d| (d.str_param("organization"), d.id.as_str()))
            .collect();
        let single = |org: &str| {
            let mut hashed = Map::new();
            hashed.insert("model".into(), json!("openai/gpt-4o"));
            hashed.insert("organization".into(), json!(org));
            pyrepr::generate_model_id("o", &hashed)
        };
        assert_eq!(
            orgs,
            [
                (Some("org-1"), single("org-1").as_str()),
                (Some("org-2"), single("org-2").as_str()),
                (Some("org-1"), "fixed"),
                (Some("org-2"), "fixed-1"),
            ]
        );
        assert_eq!(config.deployments[3].model_info["id"], json!("fixed-1"));
    }

    #[test]
    fn duplicate_ids_are_made_unique() {
        let config = load(
            "model_list:\n  - model_name: m\n    litellm_params: {model: x/y}\n  - model_name: m\n    litellm_params: {model: x/y}\n",
        );
        let first = config.deployments[0].id.clone();
        assert_eq!(ids(&config), [first.clone(), format!("{first}-1")]);
        assert_eq!(config.warnings.len(), 1);
    }

    #[test]
    fn numeric_params_it_cannot_read_warn_by_name() {
        let config = load(
            r#"
model_list:
  - model_name: m
    litellm_params: {model: x/y, rpm: "abc", tpm: -1, order: 1.5, weight: heavy, timeout: 30, max_parallel_requests: "10", num_retries: null}
"#,
        );
        let label = "model_list[0] (m)";
        assert_eq!(
            config.warnings,
            [
                format!("{label}: litellm_params.rpm is abc, not a whole number of at least 0; ignored"),
                format!("{label}: litellm_params.tpm is -1, not a whole number of at least 0; ignored"),
                format!("{label}: litellm_params.order is 1.5, not a whole number of at least 0; ignored"),
                format!("{label}: litellm_params.weight is heavy, not a number; ignored"),
            ]
        );
        assert_eq!(
            config.deployments[0].u64_param("max_parallel_requests"),
            Some(10)
        );
    }

    #[test]
    fn unknown_and_unsupported_keys_warn_once_each() {
        let config = load(
            r#"
model_list:
  - model_name: m
    litellm_params: {model: x/y, anything_goes: 1}
    bogus: 1
litellm_settings:
  drop_params: "True"
  cache: false
  success_callback: ["langfuse"]
  mystery: 1
router_settings:
  redis_host: localhost
  not_a_router_arg: 2
general_settings:
  master_key: os.environ/LLMP_MOD_T4_UNSET
  alerting: []
guardrails: [{}]
mystery_section: {}
"#,
        );
        assert_eq!(
            config.warnings,
            [
                "guardrails is not supported yet by llm-proxy; ignored",
                "mystery_section: unknown key; ignored",
                "router_settings.redis_host is not supported yet by llm-proxy; ignored",
                "router_settings.not_a_router_arg: unknown key; ignored",
                "litellm_settings.success_callback is not supported yet by llm-proxy; ignored",
                "litellm_settings.mystery: unknown key; ignored",
                "general_settings.master_key: os.environ/LLMP_MOD_T4_UNSET is not set; the value is null",
                "model_list[0].bogus: unknown key; ignored",
            ]
        );
        assert_eq!(config.litellm_settings.drop_params, Some(true));
        assert!(config.general_settings.master_key.is_none());
    }

    #[test]
    fn settings_parsed_but_not_acted_on_are_warned_about_and_acted_on_ones_are_not() {
        let config = load(
            r#"
model_list: []
litellm_settings:
  set_verbose: true
  modify_params: false
router_settings:
  enable_pre_call_checks: true
  client_ttl: 3600
general_settings:
  completion_model: gpt-4o
  health_check_details: false
  forward_openai_org_id: true
  allow_client_side_credentials: true
"#,
        );
        assert_eq!(
            config.warnings,
            [
                "router_settings.enable_pre_call_checks is not supported yet by llm-proxy; ignored",
                "router_settings.client_ttl is not supported yet by llm-proxy; ignored",
                "general_settings.allow_client_side_credentials is not supported yet by llm-proxy; ignored",
            ]
        );
    }

    #[test]
    fn master_key_from_settings_resolved() {
        std::env::set_var("LLMP_MOD_T5_MK", "sk-from-env-var");
        let config =
            load("general_settings:\n  master_key: os.environ/LLMP_MOD_T5_MK\nmodel_list: []\n");
        assert_eq!(
            config.master_key().map(Secret::expose),
            Some("sk-from-env-var")
        );
    }

    #[test]
    fn environment_filtering_is_per_deployment() {
        // LITELLM_ENVIRONMENT is process-wide: only this test sets it, and it reads it once.
        std::env::set_var("LITELLM_ENVIRONMENT", "staging");
        let config = load(
            r#"
model_list:
  - model_name: a
    litellm_params: {model: x/a}
    model_info: {supported_environments: [staging]}
  - model_name: b
    litellm_params: {model: x/b}
    model_info: {supported_environments: [production]}
  - model_name: c
    litellm_params: {model: x/c}
    model_info: {supported_environments: [prod]}
  - model_name: d
    litellm_params: {model: x/d}
    model_info: {supported_environments: null}
"#,
        );
        let names: Vec<_> = config
            .deployments
            .iter()
            .map(|d| d.model_name.as_str())
            .collect();
        assert_eq!(names, ["a", "d"]);
        assert_eq!(config.declared_model_names, ["a", "b", "c", "d"]);
        assert_eq!(
            config.warnings,
            [
                "Ignoring deployment b as it is not active for environment ['production']",
                "model_list[2] (c): supported_environments must be one of ['development', 'staging', 'production']. but set as: prod; deployment skipped",
            ]
        );
    }

    #[test]
    fn errors_name_the_yaml_path() {
        let err = |yaml: &str| match ProxyConfig::load_from_str(yaml, "t.yaml") {
            Err(ConfigError::Type {
                yaml_path, message, ..
            }) => (yaml_path, message),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err("model_list:\n  - model_name: m\n    litellm_params: {api_key: k}\n"),
            (
                "model_list[0].litellm_params".into(),
                "missing field `model`".into()
            )
        );
        assert_eq!(
            err("model_list:\n  - model_name: m\n    litellm_params: {model: 5}\n").0,
            "model_list[0].litellm_params.model"
        );
        assert_eq!(
            err("model_list:\n  - model_name: m\n    litellm_params: {model: x}\n    model_info: [1]\n").0,
            "model_list[0].model_info"
        );
        assert_eq!(
            err("router_settings:\n  num_retries: many\n"),
            (
                "router_settings.num_retries".into(),
                "expected a non-negative integer, found the string \"many\"".into()
            )
        );
        assert_eq!(
            err("router_settings:\n  fallbacks: [gpt-4]\n").0,
            "router_settings.fallbacks"
        );
        assert_eq!(err("- a\n- b\n").0, ".");
        assert!(matches!(
            ProxyConfig::load_from_str("{}", "t.yaml"),
            Err(ConfigError::Empty { .. })
        ));
        let empty = ProxyConfig::load_from_str("\n", "t.yaml").unwrap_err();
        assert_eq!(empty.to_string(), "t.yaml: Config cannot be None or Empty.");
    }

    #[test]
    fn empty_config_has_no_models() {
        let config = ProxyConfig::empty();
        assert!(config.deployments.is_empty());
        assert!(config.warnings.is_empty());
    }
}
