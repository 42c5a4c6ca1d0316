//! llm-proxy: LiteLLM's config.yaml in, the OpenAI API out.
pub mod config;
