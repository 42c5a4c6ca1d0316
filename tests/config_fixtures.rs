//! LiteLLM's documentation configs (tests/fixtures/litellm-docs) load in llm-proxy with the
//! deployments, ids and warnings LiteLLM users expect. Expected ids were computed with LiteLLM
//! 1.81.0 (`Router(model_list=...)` after the proxy's `os.environ/` pass) in the same environment.
//!
//! The fixtures reference shared variable names (OPENAI_API_KEY, LITELLM_ENVIRONMENT, ...), so
//! every test that loads one sets those variables explicitly while holding `ENV`.
#![allow(clippy::panic, clippy::unwrap_used)]

use llm_proxy::config::{ConfigError, DeploymentConfig, ProxyConfig};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

static ENV: Mutex<()> = Mutex::new(());

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/litellm-docs")
        .join(name)
}

/// Sets (`Some`) or removes (`None`) variables, then loads the fixture; the lock is held until
/// the returned guard drops.
fn load_with_env(
    name: &str,
    vars: &[(&str, Option<&str>)],
) -> (ProxyConfig, MutexGuard<'static, ()>) {
    let guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
    for (var, value) in vars {
        match value {
            Some(value) => std::env::set_var(var, value),
            None => std::env::remove_var(var),
        }
    }
    let config =
        ProxyConfig::load_from_path(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    (config, guard)
}

fn ids(config: &ProxyConfig) -> Vec<&str> {
    config.deployments.iter().map(|d| d.id.as_str()).collect()
}

fn names(config: &ProxyConfig) -> Vec<&str> {
    config
        .deployments
        .iter()
        .map(|d| d.model_name.as_str())
        .collect()
}

fn params(d: &DeploymentConfig) -> Value {
    Value::Object(d.litellm_params.clone())
}

#[test]
fn every_fixture_loads() {
    let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("LITELLM_ENVIRONMENT", "production");
    let mut count = 0;
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let config = ProxyConfig::load_from_path(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!config.deployments.is_empty(), "{}", path.display());
            count += 1;
        }
    }
    assert_eq!(count, 11);
}

#[test]
fn overview_with_unset_keys() {
    let (config, _guard) = load_with_env(
        "01-overview.yaml",
        &[("AZURE_API_KEY_EU", None), ("AZURE_API_KEY_CA", None)],
    );
    assert_eq!(
        names(&config),
        [
            "gpt-3.5-turbo",
            "bedrock-claude-v1",
            "gpt-3.5-turbo",
            "anthropic-claude",
            "vllm-models",
            "*"
        ]
    );
    assert_eq!(config.declared_model_names, names(&config));
    assert_eq!(
        ids(&config),
        [
            "703269e2281511d0eb481b7c238a3129ce382d0655d0829e1efc61057e3ecb4c",
            "1fc37b21308ae569955a774379ef5e52c17f519107c099351f2e65ee16e8bb2e",
            "e947a7a0112fe489f205056e3ddea72af9f23b5228caa04970c501c4fc1e2f75",
            "c5a021e07f85233c66dda4a2d7ff22e769235d6c7cc3ac94f398dc07008d9435",
            "abb8a132807a5ca9471e3efb8644ea5fa34aa8c759ff7b5f24a12d62cfaf466f",
            "8f057b29630b3d65c426c7aefb1890d319ce88a66af3654e17754b27b6cdc6e1",
        ]
    );
    assert_eq!(
        config.warnings,
        [
            "litellm_settings.success_callback is not supported yet by llm-proxy; ignored",
            "general_settings.alerting is not supported yet by llm-proxy; ignored",
            "model_list[0] (gpt-3.5-turbo): os.environ/AZURE_API_KEY_EU is not set; litellm_params.api_key is null",
            "model_list[2] (gpt-3.5-turbo): os.environ/AZURE_API_KEY_CA is not set; litellm_params.api_key is null",
        ]
    );
    let eu = &config.deployments[0];
    assert_eq!(eu.missing_env, ["AZURE_API_KEY_EU"]);
    assert_eq!(eu.litellm_params["api_key"], Value::Null);
    assert_eq!(eu.rpm(), Some(6));
    assert_eq!(config.deployments[2].missing_env, ["AZURE_API_KEY_CA"]);
    assert!(config.deployments[1].missing_env.is_empty());
    let vllm = &config.deployments[4];
    assert_eq!(vllm.model(), "openai/facebook/opt-125m");
    assert_eq!(vllm.str_param("api_key"), Some("none"));
    assert_eq!(vllm.rpm(), Some(1440));
    assert_eq!(
        Value::Object(vllm.model_info.clone()),
        json!({"version": 2, "id": "abb8a132807a5ca9471e3efb8644ea5fa34aa8c759ff7b5f24a12d62cfaf466f"})
    );
    let wildcard = &config.deployments[5];
    assert!(wildcard.is_wildcard());
    assert_eq!(wildcard.model(), "*");
    assert_eq!(config.litellm_settings.drop_params, Some(true));
    assert_eq!(
        config.litellm_settings.success_callback.as_deref(),
        Some(&["langfuse".to_owned()][..])
    );
    assert_eq!(
        config.general_settings.alerting.as_deref(),
        Some(&["slack".to_owned()][..])
    );
    assert_eq!(config.master_key().map(|k| k.expose()), Some("sk-1234"));
    assert_eq!(
        format!("{:?}", config.general_settings.master_key),
        "Some(Secret(*****))"
    );
}

#[test]
fn overview_with_keys_set() {
    let (config, _guard) = load_with_env(
        "01-overview.yaml",
        &[
            ("AZURE_API_KEY_EU", Some("eu-key-123")),
            ("AZURE_API_KEY_CA", Some("ca-key-456")),
        ],
    );
    // The real key is part of the hash, as in LiteLLM.
    assert_eq!(
        config.deployments[0].id,
        "f795348efa261c398ed2a0e9edb4d03dcaf5c1dd05affcdeb11edb56d69ed9d1"
    );
    assert_eq!(
        config.deployments[0].str_param("api_key"),
        Some("eu-key-123")
    );
    assert!(config.deployments.iter().all(|d| d.missing_env.is_empty()));
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
}

#[test]
fn model_specific_params() {
    let (config, _guard) = load_with_env("02-model-specific-params.yaml", &[]);
    assert_eq!(
        ids(&config),
        [
            "bb7dccc5bbeb44f3e9f81fa9341d255a3afb5ad74dacc89a6687afd4cda854fc",
            "f06438db498288e7974e9c5238641dedd96cf301c6100c887baf8327fefef4b6",
            "341dc14c0435ef99b607846492ce2d5b3db823e5c4979124dcec3be45441ed3f",
            "afd729fc17f584c5b41d67f11a34555a491ba3f815b8d4487ca59d253c4e88f6",
        ]
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let team1 = &config.deployments[0];
    assert_eq!(team1.str_param("api_version"), Some("2023-05-15"));
    assert_eq!(team1.u64_param("seed"), Some(12));
    assert_eq!(team1.u64_param("max_tokens"), Some(20));
    assert_eq!(
        Value::Object(team1.masked_litellm_params()),
        json!({
            "model": "azure/chatgpt-v-2",
            "api_base": "https://openai-gpt-4-test-v-1.openai.azure.com/",
            "api_version": "2023-05-15",
            "azure_ad_token": "eyJ0***iOiJ",
            "seed": 12,
            "max_tokens": 20,
        })
    );
    let team2 = &config.deployments[1];
    assert_eq!(team2.f64_param("temperature"), Some(0.2));
    assert!(!team2.masked_litellm_params().contains_key("api_key"));
    let openai = &config.deployments[2];
    assert_eq!(
        openai.litellm_params["extra_headers"],
        json!({"AI-Resource Group": "ishaan-resource"})
    );
    assert_eq!(openai.str_param("organization"), Some("org-ikDc4ex8NB"));
}

#[test]
fn embeddings_bedrock_same_group_distinct_ids() {
    let (config, _guard) = load_with_env("03-embeddings-bedrock.yaml", &[]);
    assert_eq!(names(&config), ["bedrock-cohere"; 3]);
    assert_eq!(
        ids(&config),
        [
            "9e2fcbccc7b68096714831bd73c2d27a43c1151e71da84510011b874fbb75e9e",
            "a22d90ec78d028e9b94bfe827e7632143bac80ba6ef9dccaad8459145f602c50",
            "52d9218f079e5e59d1f8f56516f9a5164bfae5ccead317bd1b76d19190196cf9",
        ]
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn multiple_openai_orgs_get_one_deployment_and_id_each() {
    let (config, _guard) = load_with_env(
        "04-multiple-openai-orgs.yaml",
        &[("OPENAI_API_KEY", Some("sk-test-04"))],
    );
    let orgs: Vec<_> = config
        .deployments
        .iter()
        .map(|d| d.str_param("organization").unwrap())
        .collect();
    assert_eq!(orgs, ["org-1", "org-2", "org-3"]);
    // Each id is the one LiteLLM gives an entry written with that single organization (LiteLLM
    // itself gives all three copies 7f922cdaf062fa414b8415a4a79d9eb614460df6705b7c0f505dccb86a3c210d).
    assert_eq!(
        ids(&config),
        [
            "013e88a68a4bca60a49792365888e357712aa6f917cac2b27e56c881a92f29b8",
            "0418caf73b5deb08e00a5b2767215f46a6378fc25d20d18a0934312eb270e427",
            "52b22e2a54d5972363b6901192b6f99455bd574bd94259e08cb1c39aded26b8c",
        ]
    );
    for d in &config.deployments {
        assert!(d.is_wildcard());
        assert_eq!(d.model(), "openai/*");
        assert_eq!(d.str_param("api_key"), Some("sk-test-04"));
        assert_eq!(d.model_info["id"], json!(d.id));
    }
    assert_eq!(config.declared_model_names, ["*"]);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn unquoted_star_fails_with_line_and_column() {
    let text = std::fs::read_to_string(fixture("04-multiple-openai-orgs.yaml"))
        .unwrap()
        .replace("model_name: \"*\"", "model_name: *");
    match ProxyConfig::load_from_str(&text, "04-unquoted.yaml") {
        Err(err @ ConfigError::Yaml { .. }) => {
            let ConfigError::Yaml {
                ref origin,
                line,
                column,
                ref message,
            } = err
            else {
                unreachable!()
            };
            assert_eq!(origin, "04-unquoted.yaml");
            assert_eq!((line, column), (4, 18));
            assert!(message.contains("alias"), "{message}");
            assert!(message.contains("quote it"), "{message}");
            assert!(
                err.to_string()
                    .starts_with("04-unquoted.yaml: invalid YAML at line 4, column 18: "),
                "{err}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn load_balancing_settings() {
    let (config, _guard) = load_with_env("05-load-balancing.yaml", &[]);
    assert_eq!(
        ids(&config),
        [
            "83076bdddbc418918c1da9ac31a637b9a85e78f04106bce2f1d41cc99bf6e532",
            "19c236ec8189d7d10ce00a70b306357848791d4410766595af71d458cffbfe5c",
            "86ce18afcf9eac0e43204965041da1891ca3054feabd64b9d5f1d64cc3863f8b",
            "9f9430a473de86f6cfe9c8eaedaa46f2f264927bb01ce17c57f018baac50cbb2",
            "ed55f54a78c1ffefa85c4022544258c1f0dc3bfc9cef3eb9ed77967b2e4386b7",
        ]
    );
    let rpms: Vec<_> = config.deployments.iter().map(|d| d.rpm()).collect();
    assert_eq!(
        rpms,
        [Some(60), Some(600), Some(60000), Some(200), Some(100)]
    );
    assert_eq!(config.deployments[0].tpm(), Some(1000));
    let ls = &config.litellm_settings;
    assert_eq!(ls.num_retries, Some(3));
    assert_eq!(ls.request_timeout, Some(10.0));
    assert_eq!(ls.allowed_fails, Some(3));
    assert_eq!(
        ls.fallbacks,
        Some(vec![(
            "zephyr-beta".to_owned(),
            vec!["gpt-3.5-turbo".to_owned()]
        )])
    );
    assert_eq!(
        ls.context_window_fallbacks,
        Some(vec![
            (
                "zephyr-beta".to_owned(),
                vec!["gpt-3.5-turbo-16k".to_owned()]
            ),
            (
                "gpt-3.5-turbo".to_owned(),
                vec!["gpt-3.5-turbo-16k".to_owned()]
            ),
        ])
    );
    let rs = &config.router_settings;
    assert_eq!(rs.routing_strategy.as_deref(), Some("simple-shuffle"));
    let alias = rs.model_group_alias.as_ref().unwrap();
    assert_eq!(alias.len(), 1);
    assert_eq!(
        (
            alias[0].alias.as_str(),
            alias[0].model.as_str(),
            alias[0].hidden
        ),
        ("gpt-4", "gpt-3.5-turbo", false)
    );
    assert_eq!(rs.num_retries, Some(2));
    assert_eq!(rs.timeout, Some(30.0));
    assert_eq!(rs.redis_host.as_deref(), Some("<your redis host>"));
    assert_eq!(rs.redis_port, Some(1992));
    assert_eq!(
        rs.redis_password.as_ref().map(|p| p.expose()),
        Some("<your redis password>")
    );
    assert_eq!(
        config.warnings,
        [
            "router_settings.redis_host is not supported yet by llm-proxy; ignored",
            "router_settings.redis_password is not supported yet by llm-proxy; ignored",
            "router_settings.redis_port is not supported yet by llm-proxy; ignored",
        ]
    );
}

#[test]
fn env_keys() {
    let (config, _guard) =
        load_with_env("06-env-keys.yaml", &[("AZURE_NORTH_AMERICA_API_KEY", None)]);
    assert_eq!(
        ids(&config),
        ["7ffa5fdf52aa452657839860033181c5c13ab49e6b708a1c561008cdeb2a3b7a"]
    );
    assert_eq!(
        config.deployments[0].missing_env,
        ["AZURE_NORTH_AMERICA_API_KEY"]
    );
    assert_eq!(
        config.warnings,
        ["model_list[0] (gpt-4-team1): os.environ/AZURE_NORTH_AMERICA_API_KEY is not set; litellm_params.api_key is null"]
    );
}

#[test]
fn credential_list_with_values_set() {
    let (config, _guard) = load_with_env(
        "07-credential-list.yaml",
        &[
            ("AZURE_API_KEY", Some("azure-key-789")),
            ("AZURE_API_BASE", Some("https://eu.example.azure.com")),
        ],
    );
    // Hashed before credentials are merged, so independent of them (as in LiteLLM).
    assert_eq!(
        ids(&config),
        ["7dc19bec5e509b2706e8b05021d54e1e7299e190c965d1f6d1cd0c5dbfc5aab2"]
    );
    assert_eq!(
        params(&config.deployments[0]),
        json!({
            "model": "azure/gpt-4o",
            "litellm_credential_name": "default_azure_credential",
            "api_key": "azure-key-789",
            "api_base": "https://eu.example.azure.com",
            "api_version": "2023-05-15",
        })
    );
    let masked = config.deployments[0].masked_litellm_params();
    assert_eq!(
        masked["litellm_credential_name"],
        json!("default_azure_credential")
    );
    assert!(!masked.contains_key("api_key"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn credential_list_with_values_unset() {
    let (config, _guard) = load_with_env(
        "07-credential-list.yaml",
        &[("AZURE_API_KEY", None), ("AZURE_API_BASE", None)],
    );
    let d = &config.deployments[0];
    assert_eq!(
        d.id,
        "7dc19bec5e509b2706e8b05021d54e1e7299e190c965d1f6d1cd0c5dbfc5aab2"
    );
    assert_eq!(d.missing_env, ["AZURE_API_KEY", "AZURE_API_BASE"]);
    assert_eq!(d.litellm_params["api_key"], Value::Null);
    assert_eq!(
        config.warnings,
        [
            "model_list[0] (gpt-4o): os.environ/AZURE_API_KEY (credential default_azure_credential) is not set; litellm_params.api_key is null",
            "model_list[0] (gpt-4o): os.environ/AZURE_API_BASE (credential default_azure_credential) is not set; litellm_params.api_base is null",
        ]
    );
}

#[test]
fn supported_environments_staging() {
    let (config, _guard) = load_with_env(
        "08-supported-environments.yaml",
        &[
            ("LITELLM_ENVIRONMENT", Some("staging")),
            ("OPENAI_API_KEY", None),
        ],
    );
    assert_eq!(names(&config), ["gpt-3.5-turbo", "gpt-4"]);
    assert_eq!(
        ids(&config),
        [
            "931efe12c6f4b65d87edb5b52e2f70b1da1e821d28474735d0c3b8fca22100dd",
            "e2d6103c24594269cc7548c38cb4b598f96c8a282754c829e163722aad923a39",
        ]
    );
    assert_eq!(
        config.declared_model_names,
        ["gpt-3.5-turbo", "gpt-4", "gpt-4o"]
    );
    assert_eq!(
        config.warnings,
        [
            "model_list[0] (gpt-3.5-turbo): os.environ/OPENAI_API_KEY is not set; litellm_params.api_key is null",
            "model_list[1] (gpt-4): os.environ/OPENAI_API_KEY is not set; litellm_params.api_key is null",
            "model_list[2] (gpt-4o): os.environ/OPENAI_API_KEY is not set; litellm_params.api_key is null",
            "Ignoring deployment gpt-4o as it is not active for environment ['production']",
        ]
    );
}

#[test]
fn supported_environments_without_litellm_environment() {
    let (config, _guard) = load_with_env(
        "08-supported-environments.yaml",
        &[
            ("LITELLM_ENVIRONMENT", None),
            ("OPENAI_API_KEY", Some("sk-test-08")),
        ],
    );
    assert!(config.deployments.is_empty());
    assert_eq!(config.declared_model_names.len(), 3);
    assert_eq!(config.warnings.len(), 3);
    assert!(config.warnings.iter().all(|w| w.ends_with(
        "Set 'supported_environments' for model but not 'LITELLM_ENVIRONMENT' set in .env; deployment skipped"
    )));
}

#[test]
fn supported_environments_with_invalid_litellm_environment() {
    let (config, _guard) = load_with_env(
        "08-supported-environments.yaml",
        &[
            ("LITELLM_ENVIRONMENT", Some("prod")),
            ("OPENAI_API_KEY", Some("sk-test-08")),
        ],
    );
    assert!(config.deployments.is_empty());
    assert_eq!(
        config.warnings[0],
        "model_list[0] (gpt-3.5-turbo): LITELLM_ENVIRONMENT must be one of ['development', 'staging', 'production']. but set as: prod; deployment skipped"
    );
}

#[test]
fn custom_prompt_template() {
    let (config, _guard) = load_with_env("09-custom-prompt-template.yaml", &[]);
    assert_eq!(
        ids(&config),
        ["083285f7fc734e27944ca42e226141cf4dae5c07d4d2daae6f6dee5a56e83430"]
    );
    let d = &config.deployments[0];
    assert_eq!(d.str_param("initial_prompt_value"), Some("\n"));
    assert_eq!(d.str_param("bos_token"), Some(" "));
    assert_eq!(
        d.litellm_params["roles"]["system"],
        json!({"pre_message": "<|im_start|>system\n", "post_message": "<|im_end|>"})
    );
    assert_eq!(d.u64_param("max_tokens"), Some(4096));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn custom_tokenizer() {
    let (config, _guard) = load_with_env(
        "10-custom-tokenizer.yaml",
        &[("OPENAI_API_KEY", None), ("HUGGINGFACE_API_KEY", None)],
    );
    assert_eq!(
        ids(&config),
        ["76d68e4821b631b39ef4fe16847e50db1fabc895a8af89abf23f3324d14a90f6"]
    );
    let d = &config.deployments[0];
    // Only litellm_params references block calls; the tokenizer token does not.
    assert_eq!(d.missing_env, ["OPENAI_API_KEY"]);
    assert_eq!(
        d.model_info["custom_tokenizer"],
        json!({"identifier": "deepseek-ai/DeepSeek-V3-Base", "revision": "main", "auth_token": null})
    );
    assert_eq!(d.model_info["access_groups"], json!(["restricted-models"]));
    assert_eq!(
        config.warnings,
        [
            "model_list[0] (openai-deepseek): os.environ/OPENAI_API_KEY is not set; litellm_params.api_key is null",
            "model_list[0] (openai-deepseek): os.environ/HUGGINGFACE_API_KEY is not set; model_info.custom_tokenizer.auth_token is null",
        ]
    );
}

#[test]
fn database_settings() {
    let (config, _guard) = load_with_env(
        "11-database-settings.yaml",
        &[("OPENAI_API_KEY", Some("sk-test-11"))],
    );
    assert_eq!(config.deployments.len(), 1);
    let gs = &config.general_settings;
    assert_eq!(gs.database_connection_pool_limit, Some(100));
    assert_eq!(gs.database_connection_timeout, Some(60.0));
    assert_eq!(
        config.warnings,
        [
            "general_settings.database_connection_pool_limit is not supported yet by llm-proxy; ignored",
            "general_settings.database_connection_timeout is not supported yet by llm-proxy; ignored",
        ]
    );
}

#[test]
fn missing_file() {
    let path = fixture("no-such-config.yaml");
    let err = ProxyConfig::load_from_path(&path).unwrap_err();
    assert!(matches!(err, ConfigError::NotFound { .. }));
    assert_eq!(
        err.to_string(),
        format!("Config file not found: {}", path.display())
    );
}

#[test]
fn empty_and_wrong_documents() {
    for text in ["", "   \n# nothing\n", "~", "{}"] {
        let err = ProxyConfig::load_from_str(text, "empty.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "empty.yaml: Config cannot be None or Empty."
        );
    }
    let err = ProxyConfig::load_from_str(
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: x/y\n      rpm: 1\n  - model_name: b\n    litellm_params: [1]\n",
        "wrong.yaml",
    )
    .unwrap_err();
    match err {
        ConfigError::Type { yaml_path, .. } => {
            assert_eq!(yaml_path, "model_list[1].litellm_params")
        }
        other => panic!("{other:?}"),
    }
    let err = ProxyConfig::load_from_str("model_list: [\n", "broken.yaml").unwrap_err();
    assert!(matches!(err, ConfigError::Yaml { line: 2, .. }), "{err:?}");
}

#[test]
fn include_merges_files_relative_to_the_config() {
    let dir = std::env::temp_dir().join(format!("llm-proxy-config-include-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("models.yaml"),
        "model_list:\n  - model_name: included\n    litellm_params: {model: openai/gpt-4o}\nrouter_settings:\n  num_retries: 7\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("config.yaml"),
        "include:\n  - models.yaml\nmodel_list:\n  - model_name: main\n    litellm_params: {model: openai/gpt-4o-mini}\nrouter_settings:\n  num_retries: 1\n",
    )
    .unwrap();
    std::fs::write(dir.join("broken.yaml"), "include: [missing.yaml]\n").unwrap();
    let config = ProxyConfig::load_from_path(&dir.join("config.yaml")).unwrap();
    assert_eq!(names(&config), ["main", "included"]);
    assert_eq!(config.router_settings.num_retries, Some(7));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let err = ProxyConfig::load_from_path(&dir.join("broken.yaml")).unwrap_err();
    assert!(
        err.to_string().contains("Included file not found: ")
            && err.to_string().contains("missing.yaml"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nothing_panics_on_odd_input() {
    let inputs = [
        "model_list: 5",
        "model_list: [5]",
        "model_list: [{model_name: [1], litellm_params: {}}]",
        "model_list:\n  - model_name: x\n    litellm_params: {model: x}\n    model_info: {id: [1]}\n",
        "environment_variables: [1]",
        "environment_variables: {\"\": 1, \"A=B\": 2}",
        "credential_list: {a: 1}",
        "a: &a [*a]",
        "? [complex, key]\n: value\n",
        "!!binary aGVsbG8=",
        "---\na: 1\n---\nb: 2\n",
        "\u{feff}model_list: []",
        "router_settings: {model_group_alias: {a: 5}}",
        "include: 5",
        "include: [/nonexistent/dir/x.yaml]",
        "model_list:\n  - model_name: x\n    litellm_params: {model: x, organization: []}\n",
    ];
    for input in inputs {
        let _ = ProxyConfig::load_from_str(input, "odd.yaml");
    }
}
