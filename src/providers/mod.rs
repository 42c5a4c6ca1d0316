//! Provider adapters: pure translation between the OpenAI shapes the proxy speaks and each
//! provider's own wire format. Nothing in here opens a socket; `server::upstream` is the shared
//! transport that sends an [`UpstreamRequest`] and feeds the answer back to the adapter.
//!
//! An adapter is built once per deployment at start-up (or per wildcard model on first use) from
//! the deployment's `litellm_params`, and is shared by every worker.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use actix_web::http::header::{AsHeaderName, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::http::Uri;
use bytes::Bytes;
use llm_proxy_actors::ErrorClass;
use serde_json::{Map, Value};

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod body;
pub mod error;
pub mod huggingface;
mod json_scan;
pub mod mock;
pub mod ollama;
pub mod openai;
mod outgoing;
pub mod params;
pub mod prompt_template;
pub mod sse;
#[cfg(test)]
pub(crate) mod testing;

pub use body::RequestBody;
pub use error::ProviderError;

/// The OpenAI endpoint a client called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// The OpenAI path suffix, as LiteLLM names the route in its errors.
    pub fn route(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }
}

/// A client request after the proxy's own work: deployment defaults merged in (request values
/// win), LiteLLM-internal fields removed. The body still holds `model` as the client sent it; the
/// adapter rewrites or removes it as its wire format needs.
///
/// The client's fields stay the bytes the client sent until an adapter asks for [`body`]
/// (translating adapters do, once); OpenAI-shaped upstreams get [`json_with_model`], which copies
/// those bytes field by field and parses none of them.
///
/// [`body`]: PreparedRequest::body
/// [`json_with_model`]: PreparedRequest::json_with_model
#[derive(Clone, Debug)]
pub struct PreparedRequest {
    client: Arc<RequestBody>,
    /// Sent after the client's fields: deployment defaults for the OpenAI params the client left
    /// out, then `extra_body` keys nothing else set.
    appended: Vec<(String, Value)>,
    tree: OnceLock<Map<String, Value>>,
    pub stream: bool,
    /// `stream_options.include_usage` was set by the client.
    pub include_usage: bool,
    /// Extra upstream headers: the deployment's `extra_headers`, replaced by the request's.
    pub extra_headers: Vec<(String, String)>,
    /// `additional_drop_params`: top-level fields never sent (usually none).
    dropped: Vec<String>,
}

impl PreparedRequest {
    pub(crate) fn new(
        client: Arc<RequestBody>,
        appended: Vec<(String, Value)>,
        stream: bool,
        include_usage: bool,
        extra_headers: Vec<(String, String)>,
        dropped: Vec<String>,
    ) -> PreparedRequest {
        PreparedRequest {
            client,
            appended,
            tree: OnceLock::new(),
            stream,
            include_usage,
            extra_headers,
            dropped,
        }
    }

    /// The body as a JSON object, parsed on first use.
    pub fn body(&self) -> &Map<String, Value> {
        self.tree.get_or_init(|| {
            let mut map = Map::new();
            for (key, raw) in self.forwarded() {
                if let Ok(v) = serde_json::from_str(raw) {
                    map.insert(key.to_string(), v);
                }
            }
            for (key, v) in &self.appended {
                map.insert(key.clone(), v.clone());
            }
            map
        })
    }

    /// The body as JSON with `model` set to `model` (first when the client sent none): the
    /// client's own bytes for every other field it sent, then the appended ones.
    pub fn json_with_model(&self, model: &str) -> Bytes {
        if let Some(bytes) = self.unchanged_with_model(model) {
            return bytes.clone();
        }
        let mut out = Vec::with_capacity(self.client.byte_len() + 64);
        out.push(b'{');
        let mut first = true;
        let mut put_key = |out: &mut Vec<u8>, key: &str| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            write_json(out, key);
            out.push(b':');
        };
        if !self.client.contains("model") {
            put_key(&mut out, "model");
            write_json(&mut out, model);
        }
        for (key, raw) in self.forwarded() {
            put_key(&mut out, key);
            if key == "model" {
                write_json(&mut out, model);
            } else {
                out.extend_from_slice(raw.as_bytes());
            }
        }
        for (key, v) in &self.appended {
            put_key(&mut out, key);
            write_json(&mut out, v);
        }
        out.push(b'}');
        Bytes::from(out)
    }

    /// The client's own bytes, when `json_with_model` would say the same thing: nothing appended,
    /// no proxy-only field to drop, no key sent twice, and `model` already the client's (the
    /// usual OpenAI-compatible call through a deployment of the same model name).
    fn unchanged_with_model(&self, model: &str) -> Option<&Bytes> {
        if !self.appended.is_empty()
            || !self.dropped.is_empty()
            || self.client.keys().any(params::is_control_field)
        {
            return None;
        }
        let sent = self.client.raw("model")?;
        let same = sent.len() == model.len() + 2
            && sent.starts_with('"')
            && sent.ends_with('"')
            && &sent[1..sent.len() - 1] == model;
        if same {
            self.client.verbatim()
        } else {
            None
        }
    }

    /// The client's fields that go upstream, as raw JSON.
    fn forwarded(&self) -> impl Iterator<Item = (&str, &str)> {
        self.client.fields().filter(|(key, _)| {
            !params::is_control_field(key) && !self.dropped.iter().any(|d| d == key)
        })
    }
}

/// Serialise into a buffer; a `Vec` sink cannot fail for these types.
fn write_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    let _ = serde_json::to_writer(out, value);
}

/// Per-call facts an adapter may need that are not part of the request.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext {
    /// Wall-clock time, for request signing (SigV4).
    pub now: SystemTime,
    /// `drop_params` in force for this call: drop OpenAI params the provider does not support
    /// instead of answering 400.
    pub drop_params: bool,
}

/// One HTTP request to send upstream, in the types awc sends (nothing is parsed on the way).
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamRequest {
    pub method: &'static str,
    /// Parsed once per deployment; cloning it per request bumps reference counts.
    pub url: Uri,
    /// Inserted in order, a later header replacing an earlier one of the same name. Credential
    /// values are marked sensitive, so `Debug` does not print them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// An upstream's answer as the transport received it (the whole body, for non-stream calls and
/// for error responses). Borrowed from the transport's own header map and body buffer, so reading
/// an answer copies neither.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamResponse<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    /// `Bytes`, so an adapter that forwards the body unchanged can share it instead of copying.
    pub body: &'a Bytes,
}

impl UpstreamResponse<'_> {
    /// A header's value, if it is visible ASCII. A `&str` name is parsed (and, unless it is a
    /// standard header, allocated) on each call; a `HeaderName` is not.
    pub fn header(&self, name: impl AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Tokens the upstream reported (or that the adapter could count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A successful non-stream answer, already in the OpenAI shape.
#[derive(Clone, Debug)]
pub struct ParsedResponse {
    /// The OpenAI JSON body for the client. OpenAI-compatible upstreams pass their bytes through.
    pub body: Bytes,
    pub usage: Option<Usage>,
}

/// Facts a stream decoder needs to build OpenAI chunks.
#[derive(Clone, Debug)]
pub struct StreamContext {
    /// `chatcmpl-…` id shared by every chunk this proxy builds.
    pub id: String,
    /// Unix seconds, shared by every chunk.
    pub created: u64,
    /// The model name to report in chunks when the provider does not send one.
    pub model: String,
    pub include_usage: bool,
}

/// What a stream decoder produces from upstream bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// One OpenAI `chat.completion.chunk` (or completion chunk) JSON, without the `data: ` framing.
    Chunk(Bytes),
    /// Usage learnt from the stream, for rate-limit accounting (not sent to the client by itself).
    Usage(Usage),
    /// The upstream failed mid-stream (an in-band error event or a malformed frame).
    Error(ProviderError),
    /// The upstream said it is finished.
    Done,
}

/// Turns an upstream byte stream into OpenAI chunks, one network read at a time.
pub trait StreamDecoder {
    /// Feed bytes as they arrive (frames may be split anywhere); push zero or more events.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>);
    /// The upstream closed the connection; flush what is left.
    fn finish(&mut self, out: &mut Vec<StreamEvent>);
}

/// One provider's translation, built once per deployment and shared across workers.
pub trait ProviderAdapter: Send + Sync + std::fmt::Debug {
    /// LiteLLM's provider name (`openai`, `azure`, `anthropic`, ...).
    fn name(&self) -> &'static str;
    /// How LiteLLM names the provider in error messages (`OpenAIException`, `OllamaException`):
    /// the adapter's own errors and the transport's (connection, timeout) use the same word.
    fn label(&self) -> &'static str;
    /// The base URL to report in `x-litellm-model-api-base` (no secrets, no query string).
    fn api_base(&self) -> Option<&str>;
    /// Whether the provider takes an `OpenAI-Organization` header (a client's is forwarded to
    /// it under `general_settings.forward_openai_org_id`).
    fn sends_organization(&self) -> bool {
        false
    }
    fn build_request(
        &self,
        endpoint: Endpoint,
        request: &PreparedRequest,
        ctx: &RequestContext,
    ) -> Result<UpstreamRequest, ProviderError>;
    /// A 2xx non-stream answer into the OpenAI shape.
    fn parse_response(
        &self,
        endpoint: Endpoint,
        response: &UpstreamResponse<'_>,
        ctx: &StreamContext,
    ) -> Result<ParsedResponse, ProviderError>;
    /// A non-2xx answer into a classified error.
    fn parse_error(&self, response: &UpstreamResponse<'_>) -> ProviderError;
    fn stream_decoder(&self, endpoint: Endpoint, ctx: &StreamContext) -> Box<dyn StreamDecoder>;
}

/// Build the adapter for a litellm `model` string (`openai/gpt-4o`, `azure/dep`, `gpt-4o`, ...)
/// and the deployment's resolved `litellm_params`.
pub fn adapter_for(
    model: &str,
    params: &Map<String, Value>,
) -> Result<Arc<dyn ProviderAdapter>, ProviderError> {
    let (provider, rest) = provider_of(model, params);
    match provider {
        Some("openai") | Some("custom_openai") | Some("text-completion-openai") => Ok(Arc::new(
            openai::OpenAiAdapter::new(openai::Flavor::OpenAi, rest, params)?,
        )),
        Some("hosted_vllm") => Ok(Arc::new(openai::OpenAiAdapter::new(
            openai::Flavor::HostedVllm,
            rest,
            params,
        )?)),
        Some("deepseek") => Ok(Arc::new(openai::OpenAiAdapter::new(
            openai::Flavor::DeepSeek,
            rest,
            params,
        )?)),
        Some("azure") => Ok(Arc::new(azure::AzureAdapter::new(rest, params)?)),
        Some("bedrock") => Ok(Arc::new(bedrock::BedrockAdapter::new(rest, params)?)),
        Some("anthropic") => Ok(Arc::new(anthropic::AnthropicAdapter::new(rest, params)?)),
        Some("ollama") => Ok(Arc::new(ollama::OllamaAdapter::new(
            ollama::OllamaRoute::Generate,
            rest,
            params,
        )?)),
        Some("ollama_chat") => Ok(Arc::new(ollama::OllamaAdapter::new(
            ollama::OllamaRoute::Chat,
            rest,
            params,
        )?)),
        Some("huggingface") => Ok(Arc::new(huggingface::HuggingFaceAdapter::new(
            rest, params,
        )?)),
        Some(other) => Err(ProviderError::unsupported_provider(other, model)),
        None => match infer_provider(rest) {
            Some("openai") => Ok(Arc::new(openai::OpenAiAdapter::new(
                openai::Flavor::OpenAi,
                rest,
                params,
            )?)),
            Some("anthropic") => Ok(Arc::new(anthropic::AnthropicAdapter::new(rest, params)?)),
            _ => Err(ProviderError::provider_not_provided(model)),
        },
    }
}

/// Providers LiteLLM recognises by prefix that this proxy knows about. A prefix not in this list
/// is part of the model name (`openai/facebook/opt-125m` keeps `facebook/opt-125m`).
const KNOWN_PREFIXES: &[&str] = &[
    "openai",
    "custom_openai",
    "text-completion-openai",
    "hosted_vllm",
    "deepseek",
    "azure",
    "azure_ai",
    "anthropic",
    "bedrock",
    "ollama",
    "ollama_chat",
    "huggingface",
    "vertex_ai",
    "gemini",
    "groq",
    "mistral",
    "cohere",
    "together_ai",
    "openrouter",
    "perplexity",
    "fireworks_ai",
    "xai",
    "sagemaker",
    "replicate",
    "databricks",
    "watsonx",
    "cloudflare",
    "voyage",
    "jina_ai",
    "nvidia_nim",
    "cerebras",
    "sambanova",
    "ai21",
    "nlp_cloud",
    "aleph_alpha",
    "petals",
    "palm",
    "vllm",
    "lm_studio",
    "llamafile",
    "github",
    "friendliai",
];

/// The provider and the model name it is given, as LiteLLM reads them: `custom_llm_provider` in
/// `litellm_params` names the provider (a `<provider>/` prefix on the model is then dropped,
/// any other is part of the name); without it, a known prefix does ([`split_provider`]).
pub fn provider_of<'a>(
    model: &'a str,
    params: &'a Map<String, Value>,
) -> (Option<&'a str>, &'a str) {
    match params.get("custom_llm_provider").and_then(Value::as_str) {
        Some(provider) if !provider.is_empty() => (
            Some(provider),
            model
                .strip_prefix(provider)
                .and_then(|rest| rest.strip_prefix('/'))
                .unwrap_or(model),
        ),
        _ => split_provider(model),
    }
}

/// Split `provider/rest` when the prefix is a provider LiteLLM knows.
pub fn split_provider(model: &str) -> (Option<&str>, &str) {
    match model.split_once('/') {
        Some((prefix, rest)) if KNOWN_PREFIXES.contains(&prefix) => (Some(prefix), rest),
        _ => (None, model),
    }
}

/// LiteLLM infers the provider of a bare model name from its model lists; we recognise the
/// families users write bare.
pub fn infer_provider(model: &str) -> Option<&'static str> {
    let openai_families = [
        "gpt-",
        "o1",
        "o3",
        "o4",
        "chatgpt-",
        "text-embedding-",
        "davinci",
        "babbage",
        "ft:gpt",
        "text-davinci",
        "omni-moderation",
        "text-moderation",
        "dall-e",
        "whisper",
        "tts-",
    ];
    if openai_families.iter().any(|p| model.starts_with(p)) {
        return Some("openai");
    }
    if model.starts_with("claude") {
        return Some("anthropic");
    }
    None
}

/// The classification and retry facts every provider error carries, shared with the router.
pub fn class_for_status(status: u16) -> ErrorClass {
    match status {
        400 => ErrorClass::BadRequest,
        401 => ErrorClass::Auth,
        403 => ErrorClass::PermissionDenied,
        404 => ErrorClass::NotFound,
        408 | 504 => ErrorClass::Timeout,
        413 => ErrorClass::BadRequest,
        422 => ErrorClass::BadRequest,
        429 => ErrorClass::RateLimit,
        s if s >= 500 => ErrorClass::ServerError,
        _ => ErrorClass::BadRequest,
    }
}

/// `Retry-After` (seconds or an HTTP date we do not parse) or `retry-after-ms`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let ms = get(HeaderName::from_static("retry-after-ms")).and_then(|v| v.parse::<f64>().ok());
    if let Some(after) = ms.and_then(|ms| crate::config::seconds(ms / 1000.0)) {
        return Some(after);
    }
    get(RETRY_AFTER)
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(crate::config::seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_unknown_prefixes_in_the_model_name() {
        assert_eq!(
            split_provider("openai/facebook/opt-125m"),
            (Some("openai"), "facebook/opt-125m")
        );
        assert_eq!(
            split_provider("facebook/opt-125m"),
            (None, "facebook/opt-125m")
        );
        assert_eq!(split_provider("gpt-4o"), (None, "gpt-4o"));
    }

    #[test]
    fn custom_llm_provider_names_the_provider() {
        let params = |provider: &str| match serde_json::json!({"custom_llm_provider": provider}) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let azure = params("azure");
        assert_eq!(provider_of("gpt-4o", &azure), (Some("azure"), "gpt-4o"));
        assert_eq!(
            provider_of("azure/gpt-4o", &azure),
            (Some("azure"), "gpt-4o")
        );
        let openai = params("openai");
        assert_eq!(
            provider_of("facebook/opt-125m", &openai),
            (Some("openai"), "facebook/opt-125m")
        );
        assert_eq!(provider_of("openaix", &openai), (Some("openai"), "openaix"));
        assert_eq!(
            provider_of("anthropic/claude-3", &params("")),
            (Some("anthropic"), "claude-3")
        );
    }

    #[test]
    fn transport_errors_name_the_provider_as_its_adapter_does() {
        let params = |base: &str| match serde_json::json!({"api_base": base, "api_key": "k"}) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (model, label) in [
            ("openai/m", "OpenAI"),
            ("hosted_vllm/m", "Hosted_vllm"),
            ("deepseek/m", "Deepseek"),
            ("azure/dep", "Azure"),
            ("anthropic/claude-3", "Anthropic"),
            ("ollama/m", "Ollama"),
            ("ollama_chat/m", "Ollama"),
            ("huggingface/org/m", "Huggingface"),
            ("bedrock/anthropic.claude-3", "Bedrock"),
        ] {
            let adapter = adapter_for(model, &params("http://127.0.0.1:1")).unwrap();
            assert_eq!(adapter.label(), label, "{model}");
        }
    }

    #[test]
    fn bare_names_are_inferred() {
        assert_eq!(infer_provider("gpt-3.5-turbo"), Some("openai"));
        assert_eq!(infer_provider("claude-3-haiku-20240307"), Some("anthropic"));
        assert_eq!(infer_provider("my-model"), None);
    }

    #[test]
    fn statuses_map_to_router_classes() {
        assert_eq!(class_for_status(429), ErrorClass::RateLimit);
        assert_eq!(class_for_status(503), ErrorClass::ServerError);
        assert_eq!(class_for_status(504), ErrorClass::Timeout);
        assert_eq!(class_for_status(422), ErrorClass::BadRequest);
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let h = testing::headers(&[("Retry-After", "7")]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let h = testing::headers(&[("retry-after-ms", "1500")]);
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let h = testing::headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&h), None);
    }
}
