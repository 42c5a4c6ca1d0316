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
mod pyrepr;
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
    // general_settings
    "general_settings.alerting",
    "general_settings.alerting_threshold",
    "general_settings.alert_types",
    "general_settings.database_url",
    "general_settings.database_connection_pool_limit",
    "general_settings.database_connection_timeout",
    "general_settings.database_connection_pool_timeout",
    "general_settings.background_health_checks",
    "general_settings.health_check_interval",
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

    fn not_supported(&mut self, path: &str) {
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
