//! OpenAI and the OpenAI-compatible servers LiteLLM reaches through the OpenAI SDK (`openai/`,
//! `custom_openai/`, `text-completion-openai/`, `hosted_vllm/`, `deepseek/`).
//!
//! The upstream speaks the proxy's own wire format, so this adapter translates almost nothing:
//! the client's body goes out with only `model` rewritten, a non-stream answer comes back byte
//! for byte, and stream chunks are forwarded unchanged. What it adds is the URL, auth, error
//! classification and usage accounting. Azure reuses the helpers marked `pub(crate)`.

use std::fmt;

use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use bytes::Bytes;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::json_scan;
use super::outgoing::{FixedHeaders, UpstreamUrl};
use super::sse::{SseEvent, SseSplitter};
use super::{
    retry_after, Endpoint, ParsedResponse, PreparedRequest, ProviderAdapter, ProviderError,
    RequestContext, StreamContext, StreamDecoder, StreamEvent, UpstreamRequest, UpstreamResponse,
    Usage,
};
/// Re-exported: part of this module's public API (the adapters now keep keys as header values).
pub use crate::config::Secret;

/// Which OpenAI-compatible provider a deployment names; they differ only in defaults and wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    HostedVllm,
    DeepSeek,
}

impl Flavor {
    /// LiteLLM's provider name.
    pub fn provider(self) -> &'static str {
        match self {
            Flavor::OpenAi => "openai",
            Flavor::HostedVllm => "hosted_vllm",
            Flavor::DeepSeek => "deepseek",
        }
    }

    /// The `{label}Exception` prefix LiteLLM puts in error messages: `OpenAI` for OpenAI, and for
    /// the other OpenAI-compatible providers the provider name with its first letter capitalised.
    pub fn label(self) -> &'static str {
        match self {
            Flavor::OpenAi => "OpenAI",
            Flavor::HostedVllm => "Hosted_vllm",
            Flavor::DeepSeek => "Deepseek",
        }
    }

    fn base_env(self) -> &'static [&'static str] {
        match self {
            Flavor::OpenAi => &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
            Flavor::HostedVllm => &["HOSTED_VLLM_API_BASE"],
            Flavor::DeepSeek => &["DEEPSEEK_API_BASE"],
        }
    }

    fn default_base(self) -> Option<&'static str> {
        match self {
            Flavor::OpenAi => Some("https://api.openai.com/v1"),
            Flavor::HostedVllm => None,
            Flavor::DeepSeek => Some("https://api.deepseek.com/beta"),
        }
    }

    fn key_env(self) -> &'static str {
        match self {
            Flavor::OpenAi => "OPENAI_API_KEY",
            Flavor::HostedVllm => "HOSTED_VLLM_API_KEY",
            Flavor::DeepSeek => "DEEPSEEK_API_KEY",
        }
    }

    /// LiteLLM replaces `OPENAI` in an upstream message with the provider's upper-case name.
    fn upper(self) -> Option<&'static str> {
        match self {
            Flavor::OpenAi => None,
            Flavor::HostedVllm => Some("HOSTED_VLLM"),
            Flavor::DeepSeek => Some("DEEPSEEK"),
        }
    }
}

/// One OpenAI-compatible deployment: its upstream model name, base URL and credentials, resolved
/// once from `litellm_params` and the environment.
#[derive(Clone, Debug)]
pub struct OpenAiAdapter {
    flavor: Flavor,
    model: String,
    api_base: Option<String>,
    /// Per endpoint; without a base, the error every request gets.
    urls: Result<EndpointUrls, ProviderError>,
    /// Auth, organization and content type; without a key, the error every request gets.
    headers: Result<FixedHeaders, ProviderError>,
}

/// The upstream URL of each [`Endpoint`], parsed once.
#[derive(Clone, Debug)]
pub(crate) struct EndpointUrls {
    chat_completions: UpstreamUrl,
    completions: UpstreamUrl,
    embeddings: UpstreamUrl,
}

impl EndpointUrls {
    pub(crate) fn new(url: impl Fn(Endpoint) -> String) -> EndpointUrls {
        EndpointUrls {
            chat_completions: UpstreamUrl::new(url(Endpoint::ChatCompletions)),
            completions: UpstreamUrl::new(url(Endpoint::Completions)),
            embeddings: UpstreamUrl::new(url(Endpoint::Embeddings)),
        }
    }

    pub(crate) fn get(&self, endpoint: Endpoint) -> &UpstreamUrl {
        match endpoint {
            Endpoint::ChatCompletions => &self.chat_completions,
            Endpoint::Completions => &self.completions,
            Endpoint::Embeddings => &self.embeddings,
        }
    }
}

impl OpenAiAdapter {
    /// `model` is the upstream model name (the litellm model without its provider prefix).
    /// Credentials missing from `params` are read from the environment now; a missing key is
    /// reported when a request is built, so a config LiteLLM loads also loads here.
    pub fn new(
        flavor: Flavor,
        model: &str,
        params: &Map<String, Value>,
    ) -> Result<OpenAiAdapter, ProviderError> {
        OpenAiAdapter::with_env(flavor, model, params, &|name| std::env::var(name).ok())
    }

    fn with_env(
        flavor: Flavor,
        model: &str,
        params: &Map<String, Value>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OpenAiAdapter, ProviderError> {
        let api_base = param_str(params, "api_base")
            .or_else(|| param_str(params, "base_url"))
            .or_else(|| {
                flavor
                    .base_env()
                    .iter()
                    .find_map(|name| non_empty(env(name)))
            })
            .or_else(|| flavor.default_base().map(str::to_string))
            .map(|base| validate_base(flavor.provider(), base))
            .transpose()?;
        let api_key = param_str(params, "api_key")
            .or_else(|| non_empty(env(flavor.key_env())))
            .or_else(|| (flavor == Flavor::HostedVllm).then(|| "fake-api-key".to_string()))
            .map(Secret::new);
        let organization = match flavor {
            Flavor::OpenAi => {
                param_str(params, "organization").or_else(|| non_empty(env("OPENAI_ORGANIZATION")))
            }
            Flavor::HostedVllm | Flavor::DeepSeek => None,
        };
        let urls = match &api_base {
            Some(base) => Ok(EndpointUrls::new(|e| format!("{base}{}", e.route()))),
            None => Err(ProviderError::invalid_config(format!(
                "api_base is required for {} models. Set `api_base` in the deployment's litellm_params or the {} environment variable",
                flavor.provider(),
                flavor.base_env().join(" / ")
            ))),
        };
        let headers = match api_key {
            Some(key) => {
                let mut headers = FixedHeaders::default()
                    .with_text(AUTHORIZATION, &format!("Bearer {}", key.expose()));
                if let Some(org) = &organization {
                    headers = headers.with_text(HeaderName::from_static("openai-organization"), org);
                }
                Ok(headers.with(CONTENT_TYPE, HeaderValue::from_static("application/json")))
            }
            None => Err(ProviderError::from_upstream(
                flavor.label(),
                401,
                &format!(
                    "The api_key client option must be set either by passing api_key to the client or by setting the {} environment variable",
                    flavor.key_env()
                ),
                None,
                None,
                None,
            )),
        };
        Ok(OpenAiAdapter {
            flavor,
            model: model.to_string(),
            api_base,
            urls,
            headers,
        })
    }
}

impl ProviderAdapter for OpenAiAdapter {
    fn name(&self) -> &'static str {
        self.flavor.provider()
    }

    fn label(&self) -> &'static str {
        self.flavor.label()
    }

    fn api_base(&self) -> Option<&str> {
        self.api_base.as_deref()
    }

    fn sends_organization(&self) -> bool {
        self.flavor == Flavor::OpenAi
    }

    fn build_request(
        &self,
        endpoint: Endpoint,
        request: &PreparedRequest,
        _ctx: &RequestContext,
    ) -> Result<UpstreamRequest, ProviderError> {
        let urls = self.urls.as_ref().map_err(Clone::clone)?;
        let headers = self.headers.as_ref().map_err(Clone::clone)?;
        let label = self.flavor.label();
        let headers = headers.with_extra(label, &request.extra_headers)?;
        Ok(UpstreamRequest {
            method: "POST",
            url: urls.get(endpoint).uri(label)?,
            headers,
            body: request.json_with_model(&self.model),
        })
    }

    fn parse_response(
        &self,
        _endpoint: Endpoint,
        response: &UpstreamResponse<'_>,
        _ctx: &StreamContext,
    ) -> Result<ParsedResponse, ProviderError> {
        passthrough(self.flavor.label(), self.flavor.upper(), response)
    }

    fn parse_error(&self, response: &UpstreamResponse<'_>) -> ProviderError {
        upstream_error(self.flavor.label(), self.flavor.upper(), response)
    }

    fn stream_decoder(&self, _endpoint: Endpoint, _ctx: &StreamContext) -> Box<dyn StreamDecoder> {
        Box::new(OpenAiStream::new(self.flavor.label(), self.flavor.upper()))
    }
}

// === helpers shared with azure.rs ===

/// A non-empty string parameter (numbers are accepted and written out, as YAML may give them).
pub(crate) fn param_str(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// LiteLLM tests credentials for truthiness, so an empty variable counts as unset.
pub(crate) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// Trailing slashes trimmed, so the route can be appended; only http(s) URLs are accepted.
pub(crate) fn validate_base(provider: &str, base: String) -> Result<String, ProviderError> {
    let trimmed = base.trim().trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        Ok(trimmed.to_string())
    } else {
        Err(ProviderError::invalid_config(format!(
            "api_base for {provider} must be an http:// or https:// URL, got {trimmed:?}"
        )))
    }
}

/// Token counts as OpenAI reports them; absent or null counts are zero.
#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl WireUsage {
    /// A `usage` value read with the JSON scanner, its counts parsed by hand: `Some(None)` for
    /// null. `None` leaves it to serde_json: anything but null or an object of plain integer
    /// or null counts, or a count given twice.
    fn scan(raw: &[u8]) -> Option<Option<WireUsage>> {
        if raw == b"null" {
            return Some(None);
        }
        let count = |value: Option<&[u8]>| -> Option<Option<u64>> {
            match value {
                None | Some(b"null") => Some(None),
                Some(digits) if digits.iter().all(u8::is_ascii_digit) => {
                    Some(Some(std::str::from_utf8(digits).ok()?.parse().ok()?))
                }
                Some(_) => None,
            }
        };
        let [prompt, completion] = named_members(raw, [b"prompt_tokens", b"completion_tokens"])?;
        Some(Some(WireUsage {
            prompt_tokens: count(prompt)?,
            completion_tokens: count(completion)?,
        }))
    }

    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.unwrap_or(0),
            completion_tokens: self.completion_tokens.unwrap_or(0),
        }
    }
}

/// The raw values of the named top-level members of a JSON object, read with the JSON scanner.
/// `None` when the scanner does not take the text or a name appears twice (serde_json refuses a
/// repeated field).
fn named_members<'a, const N: usize>(
    raw: &'a [u8],
    names: [&[u8]; N],
) -> Option<[Option<&'a [u8]>; N]> {
    let mut members = Vec::with_capacity(8);
    json_scan::object_members(raw, &mut members)?;
    let mut found = [None; N];
    for member in members {
        let key = &raw[member.key];
        if let Some(slot) = names.iter().position(|name| *name == key) {
            if found[slot].replace(&raw[member.value]).is_some() {
                return None;
            }
        }
    }
    Some(found)
}

/// The two top-level fields a 2xx body is read for; everything else is skipped unparsed.
#[derive(Deserialize)]
struct BodyProbe {
    usage: Option<WireUsage>,
    error: Option<Value>,
}

impl BodyProbe {
    /// The probe from the JSON scanner, with serde_json reading only `usage` and `error`.
    /// `None` leaves the body to serde_json: what the scanner does not take, a repeated field,
    /// or a field serde_json refuses (it then words the error).
    fn scan(body: &[u8]) -> Option<BodyProbe> {
        let [usage, error] = named_members(body, [b"usage", b"error"])?;
        Some(BodyProbe {
            usage: usage.map_or(Some(None), WireUsage::scan)?,
            error: error.map_or(Ok(None), serde_json::from_slice).ok()?,
        })
    }
}

/// A 2xx answer passed through untouched, with its `usage` read. A 2xx body that is an OpenAI
/// error object (some compatible servers answer errors with 200) becomes that error.
pub(crate) fn passthrough(
    label: &str,
    upper: Option<&str>,
    response: &UpstreamResponse<'_>,
) -> Result<ParsedResponse, ProviderError> {
    let probe = BodyProbe::scan(response.body)
        .map_or_else(|| serde_json::from_slice(response.body), Ok)
        .map_err(|e| {
            ProviderError::malformed_response(
                label,
                &format!("the body is not an OpenAI JSON object: {e}"),
            )
        })?;
    if let Some(error) = probe
        .error
        .as_ref()
        .filter(|e| e.is_object() || e.is_string())
    {
        let fields = ErrorFields::from_error(error);
        let status = status_from_code(fields.code.as_ref());
        return Err(fields.into_error(label, upper, status, retry_after(response.headers)));
    }
    Ok(ParsedResponse {
        body: response.body.clone(),
        usage: probe.usage.as_ref().map(WireUsage::usage),
    })
}

/// What an OpenAI-style error body says.
#[derive(Debug, Default)]
struct ErrorFields {
    message: String,
    error_type: Option<String>,
    param: Option<String>,
    code: Option<Value>,
}

impl ErrorFields {
    /// Reads `{"error":{"message","type","param","code"}}`, `{"error":"text"}`, vLLM's flat
    /// `{"object":"error","message",...}` and FastAPI's `{"detail": ...}`.
    fn from_value(body: &Value) -> ErrorFields {
        let Value::Object(top) = body else {
            return ErrorFields {
                message: text_of(body),
                ..ErrorFields::default()
            };
        };
        if let Some(error) = top.get("error").filter(|e| e.is_object() || e.is_string()) {
            return ErrorFields::from_error(error);
        }
        if top.contains_key("message") {
            return ErrorFields::from_object(top);
        }
        if let Some(detail) = top.get("detail") {
            return ErrorFields {
                message: text_of(detail),
                ..ErrorFields::default()
            };
        }
        ErrorFields {
            message: body.to_string(),
            ..ErrorFields::default()
        }
    }

    /// The value of an `error` field: an OpenAI error object, or just its text.
    fn from_error(error: &Value) -> ErrorFields {
        match error {
            Value::Object(obj) => ErrorFields::from_object(obj),
            other => ErrorFields {
                message: text_of(other),
                ..ErrorFields::default()
            },
        }
    }

    fn from_object(obj: &Map<String, Value>) -> ErrorFields {
        let string = |key: &str| match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(text_of(v)),
        };
        ErrorFields {
            message: string("message").unwrap_or_else(|| Value::Object(obj.clone()).to_string()),
            error_type: string("type"),
            param: string("param"),
            code: obj.get("code").filter(|c| !c.is_null()).cloned(),
        }
    }

    fn from_body(status: u16, body: &[u8]) -> ErrorFields {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => ErrorFields::from_value(&value),
            Err(_) => {
                let text = String::from_utf8_lossy(body).trim().to_string();
                ErrorFields {
                    message: if text.is_empty() {
                        format!("Error code: {status}")
                    } else {
                        text
                    },
                    ..ErrorFields::default()
                }
            }
        }
    }

    fn into_error(
        self,
        label: &str,
        upper: Option<&str>,
        status: u16,
        retry_after: Option<std::time::Duration>,
    ) -> ProviderError {
        let message = match upper {
            Some(upper) => self.message.replace("OPENAI", upper),
            None => self.message,
        };
        // A numeric code is the status again (Azure sends "429"); a word is OpenAI's error code.
        let code = match &self.code {
            Some(Value::String(c)) if c.parse::<u16>().is_err() => Some(c.as_str()),
            _ => None,
        };
        ProviderError::from_upstream_coded(
            label,
            status,
            &message,
            self.error_type,
            code,
            self.param,
            retry_after,
        )
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The HTTP status an in-band error stands for: its numeric `code` when that is one, else 500.
fn status_from_code(code: Option<&Value>) -> u16 {
    let numeric = match code {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        _ => None,
    };
    numeric
        .filter(|c| (400..600).contains(c))
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(500)
}

/// A non-2xx answer, classified by its message first and its status second (LiteLLM's order).
pub(crate) fn upstream_error(
    label: &str,
    upper: Option<&str>,
    response: &UpstreamResponse<'_>,
) -> ProviderError {
    ErrorFields::from_body(response.status, response.body).into_error(
        label,
        upper,
        response.status,
        retry_after(response.headers),
    )
}

// === stream decoding ===

/// Counts the characters of a JSON string without keeping it; any other JSON value counts zero.
/// Lets the chunk probe accept whatever shape a compatible server puts in a text field.
struct TextChars(u64);

impl<'de> Deserialize<'de> for TextChars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TextChars, D::Error> {
        struct CharCounter;
        impl<'de> Visitor<'de> for CharCounter {
            type Value = TextChars;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextChars, E> {
                Ok(TextChars(v.chars().count() as u64))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<TextChars, E> {
                Ok(TextChars(0))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<TextChars, E> {
                Ok(TextChars(0))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<TextChars, E> {
                Ok(TextChars(0))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<TextChars, E> {
                Ok(TextChars(0))
            }
            fn visit_unit<E: de::Error>(self) -> Result<TextChars, E> {
                Ok(TextChars(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextChars, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TextChars(0))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextChars, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TextChars(0))
            }
        }
        deserializer.deserialize_any(CharCounter)
    }
}

fn chars(text: &Option<TextChars>) -> u64 {
    text.as_ref().map_or(0, |t| t.0)
}

/// The fields of a chunk the decoder reads: errors, usage, finish reasons and generated text.
#[derive(Deserialize)]
struct ChunkProbe {
    choices: Option<Vec<ChoiceProbe>>,
    usage: Option<WireUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceProbe {
    delta: Option<DeltaProbe>,
    /// Text-completion chunks carry `text` instead of a delta.
    text: Option<TextChars>,
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct DeltaProbe {
    content: Option<TextChars>,
    reasoning_content: Option<TextChars>,
    refusal: Option<TextChars>,
    tool_calls: Option<Vec<ToolCallProbe>>,
}

#[derive(Deserialize)]
struct ToolCallProbe {
    function: Option<FunctionProbe>,
}

#[derive(Deserialize)]
struct FunctionProbe {
    name: Option<TextChars>,
    arguments: Option<TextChars>,
}

impl ChunkProbe {
    fn generated_chars(&self) -> u64 {
        self.choices
            .iter()
            .flatten()
            .map(ChoiceProbe::generated_chars)
            .sum()
    }

    fn finished(&self) -> bool {
        self.choices
            .iter()
            .flatten()
            .any(|c| c.finish_reason.is_some())
    }
}

impl ChoiceProbe {
    fn generated_chars(&self) -> u64 {
        let delta = self.delta.as_ref().map_or(0, |d| {
            let tools: u64 = d
                .tool_calls
                .iter()
                .flatten()
                .filter_map(|t| t.function.as_ref())
                .map(|f| chars(&f.name) + chars(&f.arguments))
                .sum();
            chars(&d.content) + chars(&d.reasoning_content) + chars(&d.refusal) + tools
        });
        delta + chars(&self.text)
    }
}

/// Decodes an OpenAI SSE stream: chunks are forwarded byte for byte, `[DONE]` ends the stream,
/// and an in-band `{"error": ...}` payload (or an `event: error` frame) becomes a classified
/// [`StreamEvent::Error`] instead of being dropped (LiteLLM #40578).
///
/// Usage: a chunk carrying `usage` yields [`StreamEvent::Usage`] after the chunk. When the stream
/// ends without any usage (the client did not ask for `include_usage`, or the server ignores it),
/// the decoder emits one estimated `Usage` before `Done`: completion tokens counted as a quarter of
/// the generated characters (content, reasoning, refusal, tool-call names and arguments), rounded
/// up per chunk so each non-empty chunk counts at least one token, and zero prompt tokens (the
/// decoder never sees the prompt). It only feeds the router's tpm windows; nothing is sent to the
/// client.
///
/// A stream that closes without `[DONE]` still ends cleanly when a `finish_reason` was seen; one
/// that closes before any finish reason is reported as a connection error.
#[derive(Debug)]
pub(crate) struct OpenAiStream {
    label: &'static str,
    upper: Option<&'static str>,
    splitter: SseSplitter,
    frames: Vec<SseEvent>,
    usage_seen: bool,
    estimated_completion_tokens: u64,
    finish_seen: bool,
    ended: bool,
}

impl OpenAiStream {
    pub(crate) fn new(label: &'static str, upper: Option<&'static str>) -> OpenAiStream {
        OpenAiStream {
            label,
            upper,
            splitter: SseSplitter::default(),
            frames: Vec::new(),
            usage_seen: false,
            estimated_completion_tokens: 0,
            finish_seen: false,
            ended: false,
        }
    }

    fn drain_frames(&mut self, out: &mut Vec<StreamEvent>) {
        let mut frames = std::mem::take(&mut self.frames);
        for frame in frames.drain(..) {
            if self.ended {
                break;
            }
            self.frame(frame, out);
        }
        frames.clear();
        self.frames = frames;
    }

    fn frame(&mut self, frame: SseEvent, out: &mut Vec<StreamEvent>) {
        let payload = frame.data.trim();
        if payload.is_empty() {
            return;
        }
        if payload == "[DONE]" {
            self.done(out);
            return;
        }
        if frame.event.as_deref() == Some("error") {
            let fields = match serde_json::from_str::<Value>(payload) {
                Ok(value) => ErrorFields::from_value(&value),
                Err(_) => ErrorFields {
                    message: payload.to_string(),
                    ..ErrorFields::default()
                },
            };
            let status = status_from_code(fields.code.as_ref());
            self.fail(fields.into_error(self.label, self.upper, status, None), out);
            return;
        }
        match serde_json::from_str::<ChunkProbe>(payload) {
            Ok(probe) => {
                if let Some(error) = probe.error.as_ref().filter(|e| !e.is_null()) {
                    let fields = ErrorFields::from_error(error);
                    let status = status_from_code(fields.code.as_ref());
                    self.fail(fields.into_error(self.label, self.upper, status, None), out);
                    return;
                }
                let generated = probe.generated_chars();
                self.estimated_completion_tokens += generated.div_ceil(4);
                self.finish_seen |= probe.finished();
                out.push(StreamEvent::Chunk(Bytes::from(frame.data)));
                if let Some(usage) = &probe.usage {
                    self.usage_seen = true;
                    out.push(StreamEvent::Usage(usage.usage()));
                }
            }
            // Valid JSON in a shape the probe does not know: forward it, count nothing.
            Err(_) if serde_json::from_str::<IgnoredAny>(payload).is_ok() => {
                out.push(StreamEvent::Chunk(Bytes::from(frame.data)));
            }
            Err(e) => {
                let error = ProviderError::malformed_response(
                    self.label,
                    &format!("a stream event is not JSON: {e}"),
                );
                self.fail(error, out);
            }
        }
    }

    fn done(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.usage_seen && self.estimated_completion_tokens > 0 {
            out.push(StreamEvent::Usage(Usage {
                prompt_tokens: 0,
                completion_tokens: self.estimated_completion_tokens,
            }));
        }
        out.push(StreamEvent::Done);
        self.ended = true;
    }

    fn fail(&mut self, error: ProviderError, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::Error(error));
        self.ended = true;
    }
}

impl StreamDecoder for OpenAiStream {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        let fed = self.splitter.feed(bytes, &mut self.frames);
        self.drain_frames(out);
        if fed.is_err() && !self.ended {
            let error = ProviderError::malformed_response(
                self.label,
                "a stream line exceeded the size limit",
            );
            self.fail(error, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        self.splitter.finish(&mut self.frames);
        self.drain_frames(out);
        if self.ended {
            return;
        }
        if self.finish_seen {
            self.done(out);
        } else {
            let error = ProviderError::connection(
                self.label,
                "the stream ended before the model finished its answer",
            );
            self.fail(error, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::http::header::HeaderMap;
    use llm_proxy_actors::ErrorClass;
    use serde_json::json;

    use super::*;
    use crate::providers::params::prepare;
    use crate::providers::testing;

    const CHAT_RESPONSE: &[u8] = include_bytes!("../../tests/fixtures/openai/chat_response.json");
    const COMPLETION_RESPONSE: &[u8] =
        include_bytes!("../../tests/fixtures/openai/completion_response.json");
    const EMBEDDING_RESPONSE: &[u8] =
        include_bytes!("../../tests/fixtures/openai/embedding_response.json");
    const STREAM_USAGE: &[u8] = include_bytes!("../../tests/fixtures/openai/chat_stream_usage.sse");
    const STREAM_NO_USAGE: &[u8] =
        include_bytes!("../../tests/fixtures/openai/chat_stream_no_usage.sse");
    const STREAM_INBAND_ERROR: &[u8] =
        include_bytes!("../../tests/fixtures/openai/chat_stream_inband_error.sse");
    const COMPLETION_STREAM: &[u8] =
        include_bytes!("../../tests/fixtures/openai/completion_stream.sse");

    use crate::providers::testing::{ctx, obj, pairs, request, sent_headers};

    fn adapter(flavor: Flavor, model: &str, params: Value, env: &[(&str, &str)]) -> OpenAiAdapter {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OpenAiAdapter::with_env(flavor, model, &obj(params), &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    fn stream_ctx() -> StreamContext {
        StreamContext {
            id: "chatcmpl-test".into(),
            created: 1,
            model: "gpt-4o".into(),
            include_usage: false,
        }
    }

    fn header<'a>(req: &'a UpstreamRequest, name: &str) -> Option<&'a str> {
        req.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    /// The `data:` payloads of an SSE fixture, as the chunks the decoder must forward.
    fn payloads(sse: &[u8]) -> Vec<Bytes> {
        std::str::from_utf8(sse)
            .unwrap()
            .lines()
            .filter_map(|l| l.trim_end_matches('\r').strip_prefix("data: "))
            .filter(|p| *p != "[DONE]")
            .map(|p| Bytes::from(p.to_string()))
            .collect()
    }

    fn decode(parts: &[&[u8]]) -> Vec<StreamEvent> {
        let mut decoder = OpenAiStream::new("OpenAI", None);
        let mut out = Vec::new();
        for part in parts {
            decoder.feed(part, &mut out);
        }
        decoder.finish(&mut out);
        out
    }

    fn chunks(events: &[StreamEvent]) -> Vec<Bytes> {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Chunk(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn request_body_keeps_the_clients_bytes_with_the_upstream_model() {
        let a = adapter(
            Flavor::OpenAi,
            "facebook/opt-125m",
            json!({"model": "openai/facebook/opt-125m", "api_base": "http://0.0.0.0:4000/v1/", "api_key": "none"}),
            &[],
        );
        let body = r#"{"model":"vllm-models","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"stream":true,"stream_options":{"include_usage":true},"my_flag":{"b":1,"a":[2,"x"]},"user":"u1"}"#;
        let req = a
            .build_request(Endpoint::ChatCompletions, &request(body), &ctx())
            .unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.url.to_string(),
            "http://0.0.0.0:4000/v1/chat/completions"
        );
        assert_eq!(
            pairs(&req.headers),
            vec![
                ("authorization".to_string(), "Bearer none".to_string()),
                ("content-type".to_string(), "application/json".to_string()),
            ]
        );
        assert_eq!(
            std::str::from_utf8(&req.body).unwrap(),
            r#"{"model":"facebook/opt-125m","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"stream":true,"stream_options":{"include_usage":true},"my_flag":{"b":1,"a":[2,"x"]},"user":"u1"}"#
        );
    }

    #[test]
    fn control_fields_and_deployment_defaults_shape_the_body() {
        let a = adapter(Flavor::OpenAi, "gpt-4o", json!({"api_key": "sk-1"}), &[]);
        let body = obj(
            json!({"model": "gpt-4o-group", "messages": [], "metadata": {"tag": 1}, "mock_testing_fallbacks": false}),
        );
        let prepared = prepare(
            body,
            &obj(json!({"model": "openai/gpt-4o", "max_tokens": 20, "rpm": 6})),
        );
        let req = a
            .build_request(Endpoint::ChatCompletions, &prepared, &ctx())
            .unwrap();
        assert_eq!(
            &req.body[..],
            br#"{"model":"gpt-4o","messages":[],"max_tokens":20}"#
        );
        assert_eq!(
            req.url.to_string(),
            "https://api.openai.com/v1/chat/completions"
        );
    }

    #[test]
    fn openai_reads_its_environment_and_sends_the_organization() {
        let env = [
            ("OPENAI_API_KEY", "sk-env"),
            ("OPENAI_BASE_URL", "https://proxy.example/v1"),
            ("OPENAI_API_BASE", "https://ignored.example/v1"),
            ("OPENAI_ORGANIZATION", "org-env"),
        ];
        let a = adapter(Flavor::OpenAi, "gpt-4o", json!({}), &env);
        assert_eq!(a.api_base(), Some("https://proxy.example/v1"));
        let req = a
            .build_request(
                Endpoint::Completions,
                &request(r#"{"model":"x","prompt":"p"}"#),
                &ctx(),
            )
            .unwrap();
        assert_eq!(req.url.to_string(), "https://proxy.example/v1/completions");
        assert_eq!(header(&req, "authorization"), Some("Bearer sk-env"));
        assert_eq!(header(&req, "openai-organization"), Some("org-env"));

        let a = adapter(
            Flavor::OpenAi,
            "text-embedding-3-small",
            json!({"organization": "org-param", "api_key": "sk-p"}),
            &env,
        );
        let req = a
            .build_request(
                Endpoint::Embeddings,
                &request(r#"{"model":"x","input":"p"}"#),
                &ctx(),
            )
            .unwrap();
        assert_eq!(req.url.to_string(), "https://proxy.example/v1/embeddings");
        assert_eq!(header(&req, "authorization"), Some("Bearer sk-p"));
        assert_eq!(header(&req, "openai-organization"), Some("org-param"));
    }

    #[test]
    fn openai_without_a_key_fails_before_calling_upstream() {
        let a = adapter(
            Flavor::OpenAi,
            "gpt-4o",
            json!({"api_key": ""}),
            &[("OPENAI_API_KEY", "")],
        );
        let e = a
            .build_request(
                Endpoint::ChatCompletions,
                &request(r#"{"model":"x"}"#),
                &ctx(),
            )
            .unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::Auth, 401));
        assert_eq!(
            e.message,
            "litellm.AuthenticationError: AuthenticationError: OpenAIException - The api_key client option must be set either by passing api_key to the client or by setting the OPENAI_API_KEY environment variable"
        );
        let d = adapter(Flavor::DeepSeek, "deepseek-chat", json!({}), &[]);
        let e = d
            .build_request(
                Endpoint::ChatCompletions,
                &request(r#"{"model":"x"}"#),
                &ctx(),
            )
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::Auth);
        assert!(
            e.message.contains("DeepseekException") && e.message.contains("DEEPSEEK_API_KEY"),
            "{}",
            e.message
        );
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let a = adapter(
            Flavor::OpenAi,
            "gpt-4o",
            json!({"api_key": "sk-very-secret"}),
            &[],
        );
        let shown = format!("{a:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(shown.contains("*****"), "{shown}");
        let req = a
            .build_request(
                Endpoint::ChatCompletions,
                &request(r#"{"model":"x"}"#),
                &ctx(),
            )
            .unwrap();
        let shown = format!("{req:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
    }

    #[test]
    fn headers_that_cannot_be_sent_fail_the_request_as_the_send_did() {
        let unreachable = |detail: &str| {
            format!(
                "litellm.APIConnectionError: APIConnectionError: OpenAIException - could not reach the upstream: {detail}"
            )
        };
        let a = adapter(Flavor::OpenAi, "gpt-4o", json!({"api_key": "sk"}), &[]);
        for (name, value, detail) in [
            ("x-ok", "a\nb", "failed to parse header value"),
            ("bad name", "v", "invalid HTTP header name"),
        ] {
            let mut req = request(r#"{"model":"x"}"#);
            req.extra_headers = vec![(name.into(), value.into())];
            let e = a
                .build_request(Endpoint::ChatCompletions, &req, &ctx())
                .unwrap_err();
            assert_eq!(e.class, ErrorClass::Connection);
            assert_eq!(e.message, unreachable(detail), "{name:?}: {value:?}");
        }

        // A key that is no header value fails every request that does not bring its own.
        let a = adapter(Flavor::OpenAi, "gpt-4o", json!({"api_key": "sk\n"}), &[]);
        let mut req = request(r#"{"model":"x"}"#);
        let e = a
            .build_request(Endpoint::ChatCompletions, &req, &ctx())
            .unwrap_err();
        assert_eq!(e.message, unreachable("failed to parse header value"));
        req.extra_headers = vec![("authorization".into(), "Bearer own".into())];
        assert_eq!(
            sent_headers(&a, &req),
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("authorization".to_string(), "Bearer own".to_string()),
            ]
        );

        let a = adapter(
            Flavor::OpenAi,
            "gpt-4o",
            json!({"api_key": "sk", "api_base": "http://my host/v1"}),
            &[],
        );
        let e = a
            .build_request(Endpoint::ChatCompletions, &req, &ctx())
            .unwrap_err();
        assert_eq!(e.message, unreachable("invalid uri character"));
    }

    #[test]
    fn hosted_vllm_defaults_its_key_and_needs_a_base() {
        let a = adapter(
            Flavor::HostedVllm,
            "meta-llama/Llama-3-8B",
            json!({}),
            &[("HOSTED_VLLM_API_BASE", "http://vllm:8000/v1")],
        );
        let req = a
            .build_request(
                Endpoint::ChatCompletions,
                &request(r#"{"model":"x"}"#),
                &ctx(),
            )
            .unwrap();
        assert_eq!(req.url.to_string(), "http://vllm:8000/v1/chat/completions");
        assert_eq!(header(&req, "authorization"), Some("Bearer fake-api-key"));
        assert_eq!(&req.body[..], br#"{"model":"meta-llama/Llama-3-8B"}"#);

        let a = adapter(
            Flavor::HostedVllm,
            "m",
            json!({}),
            &[("HOSTED_VLLM_API_KEY", "vk")],
        );
        assert_eq!(a.api_base(), None);
        let e = a
            .build_request(
                Endpoint::ChatCompletions,
                &request(r#"{"model":"x"}"#),
                &ctx(),
            )
            .unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::BadRequest, 400));
        assert!(
            e.message
                .starts_with("litellm.BadRequestError: api_base is required for hosted_vllm"),
            "{}",
            e.message
        );
    }

    #[test]
    fn deepseek_defaults_to_its_beta_base() {
        let a = adapter(
            Flavor::DeepSeek,
            "deepseek-chat",
            json!({}),
            &[("DEEPSEEK_API_KEY", "ds")],
        );
        let req = a
            .build_request(
                Endpoint::ChatCompletions,
                &request(r#"{"model":"x"}"#),
                &ctx(),
            )
            .unwrap();
        assert_eq!(
            req.url.to_string(),
            "https://api.deepseek.com/beta/chat/completions"
        );
        assert_eq!(header(&req, "authorization"), Some("Bearer ds"));
        assert_eq!(a.name(), "deepseek");
    }

    #[test]
    fn extra_headers_come_last_and_replace_same_named_ones() {
        let a = adapter(Flavor::OpenAi, "gpt-4o", json!({"api_key": "sk"}), &[]);
        let mut req = request(r#"{"model":"x"}"#);
        req.extra_headers = vec![
            ("x-trace".into(), "t1".into()),
            ("Authorization".into(), "Bearer other".into()),
        ];
        assert_eq!(
            sent_headers(&a, &req),
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("x-trace".to_string(), "t1".to_string()),
                ("authorization".to_string(), "Bearer other".to_string()),
            ]
        );
    }

    #[test]
    fn a_base_that_is_not_a_url_is_refused() {
        let e = OpenAiAdapter::new(
            Flavor::OpenAi,
            "m",
            &obj(json!({"api_base": "localhost:8000"})),
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("http:// or https://"), "{}", e.message);
    }

    #[test]
    fn responses_pass_through_byte_for_byte_with_their_usage() {
        let a = adapter(Flavor::OpenAi, "gpt-4o", json!({"api_key": "sk"}), &[]);
        for (endpoint, body, usage) in [
            (
                Endpoint::ChatCompletions,
                CHAT_RESPONSE,
                Usage {
                    prompt_tokens: 19,
                    completion_tokens: 10,
                },
            ),
            (
                Endpoint::Completions,
                COMPLETION_RESPONSE,
                Usage {
                    prompt_tokens: 5,
                    completion_tokens: 7,
                },
            ),
            (
                Endpoint::Embeddings,
                EMBEDDING_RESPONSE,
                Usage {
                    prompt_tokens: 5,
                    completion_tokens: 0,
                },
            ),
        ] {
            let body = Bytes::from_static(body);
            let resp = UpstreamResponse {
                status: 200,
                headers: &HeaderMap::new(),
                body: &body,
            };
            let parsed = a.parse_response(endpoint, &resp, &stream_ctx()).unwrap();
            assert_eq!(parsed.body, body);
            // The upstream's buffer itself, not a copy of it.
            assert_eq!(parsed.body.as_ptr(), body.as_ptr());
            assert_eq!(parsed.usage, Some(usage));
        }
    }

    #[test]
    fn the_scanned_probe_reads_what_serde_reads() {
        let read = |probe: &BodyProbe| {
            (
                probe.usage.as_ref().map(WireUsage::usage),
                probe.error.clone(),
            )
        };
        let mut scanned = 0;
        for body in [
            CHAT_RESPONSE,
            EMBEDDING_RESPONSE,
            br#"{"usage":null,"error":null}"#,
            br#"{"id":"x","usage":{"prompt_tokens":3}}"#,
            br#"{"error":"overloaded","usage":{"completion_tokens":null}}"#,
            br#"{"error":{"message":"m","code":429},"choices":[]}"#,
            br#"{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}"#,
            br#"{"usage":"many"}"#,
            br#"{"usage":{"prompt_tokens":1.5}}"#,
            br#"{"usage":{"prompt_tokens":null,"completion_tokens":5,"d":{"n":[1]}}}"#,
            br#"{"usage":{"prompt_tokens":-1}}"#,
            br#"{"usage":{"prompt_tokens":1,"prompt_tokens":2}}"#,
            br#"{"usage":{"completion_tokens":18446744073709551616}}"#,
            br#"{"usage":{"completion_tokens":"7"}}"#,
            br#"{"us\u0061ge":{"prompt_tokens":4}}"#,
            br#"[{"prompt_tokens":1},null]"#,
            b"{}",
            b"{",
        ] {
            let by_serde = serde_json::from_slice::<BodyProbe>(body).ok();
            if let Some(probe) = BodyProbe::scan(body) {
                scanned += 1;
                assert_eq!(
                    Some(read(&probe)),
                    by_serde.as_ref().map(read),
                    "{}",
                    String::from_utf8_lossy(body)
                );
            }
        }
        assert_eq!(scanned, 8, "the plain bodies are read by the scanner");
    }

    #[test]
    fn a_2xx_error_body_or_garbage_is_an_error() {
        let a = adapter(
            Flavor::HostedVllm,
            "m",
            json!({"api_base": "http://h/v1"}),
            &[],
        );
        let body = br#"{"error":{"message":"Rate limit exceeded","type":"rate_limit","code":429}}"#;
        let e = a
            .parse_response(
                Endpoint::ChatCompletions,
                &UpstreamResponse {
                    status: 200,
                    headers: &HeaderMap::new(),
                    body: &Bytes::from_static(body),
                },
                &stream_ctx(),
            )
            .unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::RateLimit, 429));
        assert_eq!(
            e.message,
            "litellm.RateLimitError: RateLimitError: Hosted_vllmException - Rate limit exceeded"
        );

        let body = b"<html>bad gateway</html>";
        let e = a
            .parse_response(
                Endpoint::ChatCompletions,
                &UpstreamResponse {
                    status: 200,
                    headers: &HeaderMap::new(),
                    body: &Bytes::from_static(body),
                },
                &stream_ctx(),
            )
            .unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::ServerError, 500));
        assert!(
            e.message
                .starts_with("litellm.APIError: APIError: Hosted_vllmException - invalid response"),
            "{}",
            e.message
        );
    }

    #[test]
    fn every_error_status_is_classified() {
        let a = adapter(Flavor::OpenAi, "gpt-4o", json!({"api_key": "sk"}), &[]);
        let retry = testing::headers(&[("retry-after", "2")]);
        /// Upstream status and body; class, status, message start, type and param we answer.
        type Row = (
            u16,
            &'static [u8],
            ErrorClass,
            u16,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
        );
        let cases: [Row; 7] = [
            (
                400,
                include_bytes!("../../tests/fixtures/openai/error_400.json"),
                ErrorClass::BadRequest,
                400,
                "litellm.BadRequestError: OpenAIException - Invalid 'temperature': decimal above maximum value.",
                Some("invalid_request_error"),
                Some("temperature"),
            ),
            (
                401,
                include_bytes!("../../tests/fixtures/openai/error_401.json"),
                ErrorClass::Auth,
                401,
                "litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect API key provided",
                Some("invalid_request_error"),
                None,
            ),
            (
                404,
                include_bytes!("../../tests/fixtures/openai/error_404.json"),
                ErrorClass::NotFound,
                404,
                "litellm.NotFoundError: NotFoundError: OpenAIException - The model `gpt-5-turbo` does not exist",
                Some("invalid_request_error"),
                None,
            ),
            (
                429,
                include_bytes!("../../tests/fixtures/openai/error_429.json"),
                ErrorClass::RateLimit,
                429,
                "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for gpt-4o",
                Some("throttling_error"),
                None,
            ),
            (
                500,
                include_bytes!("../../tests/fixtures/openai/error_500.json"),
                ErrorClass::ServerError,
                500,
                "litellm.InternalServerError: InternalServerError: OpenAIException - The server had an error",
                Some("server_error"),
                None,
            ),
            (
                503,
                include_bytes!("../../tests/fixtures/openai/error_503.txt"),
                ErrorClass::ServerError,
                503,
                "litellm.ServiceUnavailableError: ServiceUnavailableError: OpenAIException - upstream connect error or disconnect/reset before headers",
                None,
                None,
            ),
            (
                400,
                include_bytes!("../../tests/fixtures/openai/error_context_window.json"),
                ErrorClass::ContextWindowExceeded,
                400,
                "litellm.ContextWindowExceededError: ContextWindowExceededError: OpenAIException - This model's maximum context length is 8192 tokens.",
                Some("invalid_request_error"),
                Some("messages"),
            ),
        ];
        for (status, body, class, out_status, prefix, error_type, param) in cases {
            let e = a.parse_error(&UpstreamResponse {
                status,
                headers: &retry,
                body: &Bytes::from_static(body),
            });
            assert_eq!(
                (e.class, e.status),
                (class, out_status),
                "{status}: {}",
                e.message
            );
            assert!(e.message.starts_with(prefix), "{status}: {}", e.message);
            assert_eq!(e.error_type.as_deref(), error_type, "{status}");
            assert_eq!(e.param.as_deref(), param, "{status}");
            assert_eq!(e.retry_after, Some(Duration::from_secs(2)), "{status}");
        }
    }

    #[test]
    fn vllm_flat_errors_and_odd_bodies_are_read() {
        let a = adapter(
            Flavor::HostedVllm,
            "m",
            json!({"api_base": "http://h/v1"}),
            &[],
        );
        let body = include_bytes!("../../tests/fixtures/openai/error_vllm_400.json");
        let e = a.parse_error(&UpstreamResponse {
            status: 400,
            headers: &HeaderMap::new(),
            body: &Bytes::from_static(body),
        });
        assert_eq!(e.class, ErrorClass::ContextWindowExceeded);
        assert!(e.message.starts_with("litellm.ContextWindowExceededError: ContextWindowExceededError: Hosted_vllmException - This model's maximum context length is 2048"), "{}", e.message);
        assert_eq!(e.error_type.as_deref(), Some("BadRequestError"));

        let e = a.parse_error(&UpstreamResponse {
            status: 404,
            headers: &HeaderMap::new(),
            body: &Bytes::from_static(br#"{"detail":"Not Found"}"#),
        });
        assert_eq!(
            e.message,
            "litellm.NotFoundError: NotFoundError: Hosted_vllmException - Not Found"
        );
        let e = a.parse_error(&UpstreamResponse {
            status: 422,
            headers: &HeaderMap::new(),
            body: &Bytes::from_static(br#"{"error":"bad input"}"#),
        });
        assert_eq!((e.class, e.status), (ErrorClass::BadRequest, 422));
        assert_eq!(
            e.message,
            "litellm.BadRequestError: Hosted_vllmException - bad input"
        );
        let e = a.parse_error(&UpstreamResponse {
            status: 502,
            headers: &HeaderMap::new(),
            body: &Bytes::from_static(b""),
        });
        assert_eq!(
            e.message,
            "litellm.BadGatewayError: BadGatewayError: Hosted_vllmException - Error code: 502"
        );
        let e = a.parse_error(&UpstreamResponse {
            status: 400,
            headers: &HeaderMap::new(),
            body: &Bytes::from_static(br#"{"error":{"message":"set OPENAI_API_KEY"}}"#),
        });
        assert_eq!(
            e.message,
            "litellm.BadRequestError: Hosted_vllmException - set HOSTED_VLLM_API_KEY"
        );
    }

    #[test]
    fn a_stream_with_usage_forwards_every_chunk_then_its_usage() {
        let events = decode(&[STREAM_USAGE]);
        let expected = payloads(STREAM_USAGE);
        assert_eq!(expected.len(), 5);
        let mut want: Vec<StreamEvent> = expected.into_iter().map(StreamEvent::Chunk).collect();
        want.push(StreamEvent::Usage(Usage {
            prompt_tokens: 19,
            completion_tokens: 10,
        }));
        want.push(StreamEvent::Done);
        assert_eq!(events, want);
    }

    #[test]
    fn a_stream_without_usage_gets_an_estimate_before_done() {
        let events = decode(&[STREAM_NO_USAGE]);
        assert_eq!(chunks(&events), payloads(STREAM_NO_USAGE));
        // 31 content chars -> 8, tool name + arguments (11 + 16) -> 7, "!" -> 1; empty deltas -> 0.
        assert_eq!(
            &events[events.len() - 2..],
            &[
                StreamEvent::Usage(Usage {
                    prompt_tokens: 0,
                    completion_tokens: 16
                }),
                StreamEvent::Done
            ]
        );
        let events = decode(&[COMPLETION_STREAM]);
        assert_eq!(chunks(&events), payloads(COMPLETION_STREAM));
        assert_eq!(
            &events[events.len() - 2..],
            &[
                StreamEvent::Usage(Usage {
                    prompt_tokens: 0,
                    completion_tokens: 5
                }),
                StreamEvent::Done
            ]
        );
    }

    #[test]
    fn splitting_a_stream_anywhere_gives_the_same_events() {
        for fixture in [
            STREAM_USAGE,
            STREAM_NO_USAGE,
            STREAM_INBAND_ERROR,
            COMPLETION_STREAM,
        ] {
            let whole = decode(&[fixture]);
            for cut in 0..=fixture.len() {
                assert_eq!(
                    decode(&[&fixture[..cut], &fixture[cut..]]),
                    whole,
                    "cut at {cut}"
                );
            }
            let bytes: Vec<&[u8]> = fixture.chunks(1).collect();
            assert_eq!(decode(&bytes), whole);
        }
    }

    #[test]
    fn an_in_band_error_is_surfaced_and_ends_the_stream() {
        let events = decode(&[STREAM_INBAND_ERROR]);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            events[0],
            StreamEvent::Chunk(payloads(STREAM_INBAND_ERROR)[0].clone())
        );
        let StreamEvent::Error(e) = &events[1] else {
            unreachable!("{events:?}")
        };
        assert_eq!((e.class, e.status), (ErrorClass::ServerError, 500));
        assert_eq!(
            e.message,
            "litellm.InternalServerError: InternalServerError: OpenAIException - The server had an error while processing your request. Sorry about that!"
        );
        assert_eq!(e.error_type.as_deref(), Some("server_error"));
    }

    #[test]
    fn an_error_event_with_a_numeric_code_keeps_its_status() {
        let events =
            decode(&[b"event: error\ndata: {\"message\":\"Too many requests\",\"code\":429}\n\n"]);
        let [StreamEvent::Error(e)] = &events[..] else {
            unreachable!("{events:?}")
        };
        assert_eq!((e.class, e.status), (ErrorClass::RateLimit, 429));
        let events = decode(&[
            b"data: {\"error\":{\"message\":\"prompt is too long\",\"code\":\"400\"}}\n\n",
        ]);
        let [StreamEvent::Error(e)] = &events[..] else {
            unreachable!("{events:?}")
        };
        assert_eq!(
            (e.class, e.status),
            (ErrorClass::ContextWindowExceeded, 400)
        );
    }

    #[test]
    fn how_a_stream_ends_decides_success() {
        let chunk = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n";
        let finish =
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}";
        // No [DONE], but the model finished (and the last frame lacks its blank line).
        let events = decode(&[chunk, finish]);
        assert_eq!(events.len(), 4, "{events:?}");
        assert_eq!(
            events[2],
            StreamEvent::Usage(Usage {
                prompt_tokens: 0,
                completion_tokens: 1
            })
        );
        assert_eq!(events[3], StreamEvent::Done);
        // Cut off before any finish reason.
        let events = decode(&[chunk]);
        let [StreamEvent::Chunk(_), StreamEvent::Error(e)] = &events[..] else {
            unreachable!("{events:?}")
        };
        assert_eq!(e.class, ErrorClass::Connection);
        // Garbage in a data line.
        let events = decode(&[b"data: {not json\n\n", chunk]);
        let [StreamEvent::Error(e)] = &events[..] else {
            unreachable!("{events:?}")
        };
        assert_eq!(e.class, ErrorClass::ServerError);
        // Valid JSON in an unexpected shape is forwarded as is.
        let events = decode(&[b"data: {\"choices\":\"odd\"}\n\ndata: [DONE]\n\n"]);
        assert_eq!(
            events,
            vec![
                StreamEvent::Chunk(Bytes::from_static(b"{\"choices\":\"odd\"}")),
                StreamEvent::Done
            ]
        );
    }

    #[test]
    fn nothing_is_decoded_after_the_end() {
        let mut decoder = OpenAiStream::new("OpenAI", None);
        let mut out = Vec::new();
        decoder.feed(b"data: [DONE]\n\ndata: {\"choices\":[]}\n\n", &mut out);
        decoder.feed(b"data: {\"choices\":[]}\n\n", &mut out);
        decoder.finish(&mut out);
        assert_eq!(out, vec![StreamEvent::Done]);
    }

    #[test]
    fn adapter_for_routes_openai_compatible_prefixes_here() {
        let params = obj(json!({"api_base": "http://h:8000/v1", "api_key": "k"}));
        for (model, name) in [
            ("openai/facebook/opt-125m", "openai"),
            ("hosted_vllm/facebook/opt-125m", "hosted_vllm"),
            ("deepseek/deepseek-chat", "deepseek"),
            ("gpt-4o", "openai"),
        ] {
            let a = crate::providers::adapter_for(model, &params).unwrap();
            assert_eq!(a.name(), name);
            let req = a
                .build_request(
                    Endpoint::ChatCompletions,
                    &request(r#"{"model":"group"}"#),
                    &ctx(),
                )
                .unwrap();
            let sent: Value = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(
                sent["model"],
                json!(model.split_once('/').map_or(model, |(_, rest)| rest))
            );
        }
    }
}
