//! OpenAI and the OpenAI-compatible servers LiteLLM reaches through the OpenAI SDK (`openai/`,
//! `custom_openai/`, `text-completion-openai/`, `hosted_vllm/`, `deepseek/`).
//!
//! The upstream speaks the proxy's own wire format, so this adapter translates almost nothing:
//! the client's body goes out with only `model` rewritten, a non-stream answer comes back byte
//! for byte, and stream chunks are forwarded unchanged. What it adds is the URL, auth, error
//! classification and usage accounting. Azure reuses the helpers marked `pub(crate)`.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer as _};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::sse::{SseEvent, SseSplitter};
use super::{
    retry_after, Endpoint, ParsedResponse, PreparedRequest, ProviderAdapter, ProviderError,
    RequestContext, StreamContext, StreamDecoder, StreamEvent, UpstreamRequest, UpstreamResponse,
    Usage,
};

/// A credential. `Debug` prints a mask, so adapters can derive `Debug` and log freely; the value
/// is read only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

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
    api_key: Option<Secret>,
    organization: Option<String>,
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
            .map(Secret);
        let organization = match flavor {
            Flavor::OpenAi => {
                param_str(params, "organization").or_else(|| non_empty(env("OPENAI_ORGANIZATION")))
            }
            Flavor::HostedVllm | Flavor::DeepSeek => None,
        };
        Ok(OpenAiAdapter {
            flavor,
            model: model.to_string(),
            api_base,
            api_key,
            organization,
        })
    }
}

impl ProviderAdapter for OpenAiAdapter {
    fn name(&self) -> &'static str {
        self.flavor.provider()
    }

    fn api_base(&self) -> Option<&str> {
        self.api_base.as_deref()
    }

    fn build_request(
        &self,
        endpoint: Endpoint,
        request: &PreparedRequest,
        _ctx: &RequestContext,
    ) -> Result<UpstreamRequest, ProviderError> {
        let base = self.api_base.as_deref().ok_or_else(|| {
            ProviderError::invalid_config(format!(
                "api_base is required for {} models. Set `api_base` in the deployment's litellm_params or the {} environment variable",
                self.flavor.provider(),
                self.flavor.base_env().join(" / ")
            ))
        })?;
        let key = self.api_key.as_ref().ok_or_else(|| {
            ProviderError::from_upstream(
                self.flavor.label(),
                401,
                &format!(
                    "The api_key client option must be set either by passing api_key to the client or by setting the {} environment variable",
                    self.flavor.key_env()
                ),
                None,
                None,
                None,
            )
        })?;
        let mut headers = vec![(
            "authorization".to_string(),
            format!("Bearer {}", key.expose()),
        )];
        if let Some(org) = &self.organization {
            headers.push(("openai-organization".to_string(), org.clone()));
        }
        headers.push(("content-type".to_string(), "application/json".to_string()));
        merge_headers(&mut headers, &request.extra_headers);
        Ok(UpstreamRequest {
            method: "POST",
            url: format!("{base}{}", endpoint.route()),
            headers,
            body: body_with_model(&request.body, &self.model)?,
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

/// Adds `extra` headers last; each replaces any header of the same name set before it.
pub(crate) fn merge_headers(headers: &mut Vec<(String, String)>, extra: &[(String, String)]) {
    for (name, value) in extra {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        headers.push((name.to_ascii_lowercase(), value.clone()));
    }
}

/// The client's body serialised in its own field order, with `model` replaced (or put first when
/// the body has none). Values are written straight from the parsed body, without a copy of it.
pub(crate) fn body_with_model(
    body: &Map<String, Value>,
    model: &str,
) -> Result<Bytes, ProviderError> {
    let mut out = Vec::with_capacity(512);
    let mut ser = serde_json::Serializer::new(&mut out);
    let written = (|| {
        let has_model = body.contains_key("model");
        let mut map = ser.serialize_map(Some(body.len() + usize::from(!has_model)))?;
        if !has_model {
            map.serialize_entry("model", model)?;
        }
        for (k, v) in body {
            if k == "model" {
                map.serialize_entry(k, model)?;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    })();
    written.map_err(|e| {
        ProviderError::invalid_config(format!("the request body could not be serialised: {e}"))
    })?;
    Ok(Bytes::from(out))
}

/// Token counts as OpenAI reports them; absent or null counts are zero.
#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl WireUsage {
    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.unwrap_or(0),
            completion_tokens: self.completion_tokens.unwrap_or(0),
        }
    }
}

/// The two top-level fields a 2xx body is read for; everything else is skipped unparsed.
#[derive(Deserialize)]
struct BodyProbe {
    usage: Option<WireUsage>,
    error: Option<Value>,
}

/// A 2xx answer passed through untouched, with its `usage` read. A 2xx body that is an OpenAI
/// error object (some compatible servers answer errors with 200) becomes that error.
pub(crate) fn passthrough(
    label: &str,
    upper: Option<&str>,
    response: &UpstreamResponse<'_>,
) -> Result<ParsedResponse, ProviderError> {
    let probe: BodyProbe = serde_json::from_slice(response.body).map_err(|e| {
        ProviderError::malformed_response(
            label,
            &format!("the body is not an OpenAI JSON object: {e}"),
        )
    })?;
    if let Some(error) = probe.error.filter(Value::is_object) {
        let fields = ErrorFields::from_value(&Value::Object(Map::from_iter([(
            "error".to_string(),
            error,
        )])));
        let status = status_from_code(fields.code.as_ref());
        return Err(fields.into_error(label, upper, status, retry_after(response.headers)));
    }
    Ok(ParsedResponse {
        body: Bytes::copy_from_slice(response.body),
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
        match top.get("error") {
            Some(Value::Object(inner)) => return ErrorFields::from_object(inner),
            Some(Value::String(text)) => {
                return ErrorFields {
                    message: text.clone(),
                    ..ErrorFields::default()
                }
            }
            _ => {}
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
        ProviderError::from_upstream(
            label,
            status,
            &message,
            self.error_type,
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
                    let fields = ErrorFields::from_value(&Value::Object(Map::from_iter([(
                        "error".to_string(),
                        error.clone(),
                    )])));
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
