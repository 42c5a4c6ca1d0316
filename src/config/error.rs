//! Why a config could not be loaded. Everything else is a warning.

use std::path::PathBuf;

/// A config that cannot be used at all. Problems LiteLLM's proxy tolerates (unknown keys, unset
/// `os.environ/` variables, deployments for another environment) are warnings instead
/// ([`super::ProxyConfig::warnings`]).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file does not exist (LiteLLM's wording).
    #[error("Config file not found: {}", path.display())]
    NotFound { path: PathBuf },
    /// The config file exists but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid YAML.
    #[error("{origin}: invalid YAML at line {line}, column {column}: {message}")]
    Yaml {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A value has the wrong type; `yaml_path` names it, e.g. `model_list[3].litellm_params.rpm`.
    #[error("{origin}: {yaml_path}: {message}")]
    Type {
        origin: String,
        yaml_path: String,
        message: String,
    },
    /// The config is well-formed YAML but cannot be used (e.g. a missing `include` file).
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    /// The document is empty (LiteLLM's wording).
    #[error("{origin}: Config cannot be None or Empty.")]
    Empty { origin: String },
}
