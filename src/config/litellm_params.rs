//! What a `litellm_params` key is. LiteLLM hands a deployment's `litellm_params` to its
//! `completion()` as keyword arguments: its own settings (routing, auth, pricing, logging, a
//! provider client's options) are taken out by name, the OpenAI params are request defaults, and
//! every other key is a provider-specific param sent in the request body (in `extra_body` for
//! OpenAI-style providers, which the SDK merges into the body). So `top_k: 20` or
//! `chat_template_kwargs: {...}` under a vLLM deployment reach vLLM.

/// LiteLLM's own `litellm_params` keys (its `all_litellm_params`, the named arguments of
/// `completion()` that are not request params, and the settings a provider's handler takes out
/// itself, such as Bedrock's `model_id`), less the families of [`OWNED_PREFIXES`].
const OWNED: &[&str] = &[
    "acompletion",
    "additional_drop_params",
    "adaptive_router_config",
    "adaptive_router_default_model",
    "aembedding",
    "aimg_generation",
    "allm_passthrough_route",
    "allow_client_keepalive_override",
    "allowed_model_region",
    "allowed_openai_params",
    "api_base",
    "api_key",
    "api_version",
    "assistant_continue_message",
    "async_call",
    "atext_completion",
    "attempted_targets",
    "azure",
    "base_model",
    "base_url",
    "bedrock_tags",
    "bos_token",
    "budget_duration",
    "cache",
    "caching",
    "caching_groups",
    "citation_cost_per_token",
    "client",
    "client_id",
    "client_secret",
    "client_side_timeout",
    "complete_response",
    "completion_call_id",
    "complexity_router_config",
    "complexity_router_default_model",
    "configurable_clientside_auth_params",
    "context_window_fallback_dict",
    "cooldown_time",
    "cost_per_query",
    "cost_per_second",
    "custom_llm_provider",
    "custom_prompt_dict",
    "data_residency",
    "default_api_key_rpm_limit",
    "default_api_key_tpm_limit",
    "deployment_id",
    "disable_add_transform_inline_image_block",
    "drop_params",
    "enable_json_schema_validation",
    "enable_prompt_caching",
    "enable_tag_filtering",
    "ensure_alternating_roles",
    "eos_token",
    "extra_body",
    "extra_headers",
    "fallback_depth",
    "fake_stream",
    "fallbacks",
    "fastest_response",
    "final_prompt_value",
    "fireworks_forward_user_id",
    "force_timeout",
    "google_maps_grounding_cost_per_query",
    "guardrails",
    "headers",
    "hf_model_name",
    "humanloop_api_key",
    "id",
    "initial_prompt_value",
    "itpm",
    "keepalive_seconds",
    "log_client_error_tracebacks",
    "logger_fn",
    "max_agentic_loops",
    "max_budget",
    "max_fallbacks",
    "max_file_size_mb",
    "max_parallel_requests",
    "max_retries",
    "merge_reasoning_content_in_choices",
    "messages",
    "metadata",
    "model",
    "model_alias_map",
    "model_config",
    "model_file_id_mapping",
    "model_id",
    "model_info",
    "model_list",
    "no-log",
    "num_retries",
    "order",
    "organization",
    "otpm",
    "output_vector_size",
    "preset_cache_key",
    "prompt_environment",
    "prompt_id",
    "prompt_label",
    "prompt_variables",
    "prompt_version",
    "provider_affinity_header",
    "provider_specific_header",
    "proxy_server_request",
    "quality_router_config",
    "quality_router_default_model",
    "region_name",
    "request_timeout",
    "retry_policy",
    "retry_strategy",
    "roles",
    "routing_strategy",
    "rpm",
    "rust",
    "search_context_cost_per_query",
    "search_tool_name",
    "secret_fields",
    "self",
    "shared_session",
    "silent_model",
    "ssl_verify",
    "stream",
    "stream_chunk_size",
    "stream_options",
    "stream_response",
    "stream_timeout",
    "stream_timeout_by_service_tier",
    "supports_system_message",
    "tag_regex",
    "tags",
    "tenant_id",
    "text_completion",
    "tiered_pricing",
    "timeout",
    "timeout_by_service_tier",
    "tpm",
    "ttl",
    "turn_off_message_logging",
    "use_chat_completions_api",
    "use_client",
    "use_in_pass_through",
    "use_litellm_proxy",
    "use_xai_oauth",
    "user_continue_message",
    "verbose",
    "wandb_api_key",
    "weave_project_id",
    "weight",
];

/// Families of LiteLLM's own keys: pricing, cloud credentials and client settings, logging
/// integrations, internal kwargs.
const OWNED_PREFIXES: &[&str] = &[
    "_",
    "annotation_cost_",
    "anthropic_",
    "arize_",
    "auto_router_",
    "aws_",
    "azure_",
    "cache_creation_input_",
    "cache_read_input_",
    "dd_",
    "gcs_",
    "github_copilot_",
    "input_cost_per_",
    "langfuse_",
    "langsmith_",
    "litellm_",
    "mock_",
    "newrelic_",
    "ocr_cost_",
    "openai_identity_",
    "openai_service_account_",
    "output_cost_per_",
    "posthog_",
    "regional_",
    "s3_",
    "signoz_",
    "token_exchange_",
    "vertex_",
    "watsonx_",
];

/// The owned keys llm-proxy acts on; any other owned key gets a "not supported yet" warning.
const ACTED_ON: &[&str] = &[
    "additional_drop_params",
    "api_base",
    "api_key",
    "api_version",
    "aws_access_key_id",
    "aws_bedrock_runtime_endpoint",
    "aws_region_name",
    "aws_secret_access_key",
    "aws_session_token",
    "azure_ad_token",
    "base_url",
    "bos_token",
    "cooldown_time",
    "custom_llm_provider",
    "drop_params",
    "eos_token",
    "extra_body",
    "extra_headers",
    "final_prompt_value",
    "initial_prompt_value",
    "input_cost_per_token",
    "litellm_credential_name",
    "max_parallel_requests",
    "mock_response",
    "model",
    "num_retries",
    "order",
    "organization",
    "output_cost_per_token",
    "request_timeout",
    "roles",
    "rpm",
    "stream_timeout",
    "timeout",
    "tpm",
    "weight",
];

/// Whether `key` is one of LiteLLM's own settings rather than a param for the provider.
pub fn is_litellm_owned(key: &str) -> bool {
    OWNED.contains(&key) || OWNED_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Whether `key` is LiteLLM's own and llm-proxy does nothing with it yet.
pub fn is_owned_but_not_acted_on(key: &str) -> bool {
    is_litellm_owned(key) && !ACTED_ON.contains(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_owned_and_provider_params_are_not() {
        for owned in [
            "api_key",
            "rpm",
            "aws_region_name",
            "input_cost_per_token_above_128k_tokens",
            "litellm_credential_name",
            "_litellm_internal",
            "mock_response",
            "extra_body",
        ] {
            assert!(is_litellm_owned(owned), "{owned}");
        }
        for param in [
            "top_k",
            "repetition_penalty",
            "chat_template_kwargs",
            "keep_alive",
            "thinking",
        ] {
            assert!(!is_litellm_owned(param), "{param}");
        }
    }

    #[test]
    fn every_key_acted_on_is_owned() {
        for key in ACTED_ON {
            assert!(is_litellm_owned(key), "{key}");
            assert!(!is_owned_but_not_acted_on(key), "{key}");
        }
        assert!(is_owned_but_not_acted_on("ssl_verify"));
        assert!(is_owned_but_not_acted_on("tags"));
        assert!(!is_owned_but_not_acted_on("top_k"));
    }
}
