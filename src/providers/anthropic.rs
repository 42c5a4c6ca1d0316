//! Anthropic's Messages API (`POST /v1/messages`) behind the OpenAI chat shape.
//!
//! Request side: system messages are lifted into the top-level `system` list, every message's
//! content goes out as content blocks, consecutive same-role turns are merged, tool calls and
//! tool results become `tool_use` / `tool_result` blocks, and `max_tokens` is always set. The
//! body borrows from the prepared request: only tool-call arguments (a JSON string that has to
//! be parsed) and a few scalars are owned.
//!
//! `response_format: {type: "json_schema"}` is mapped the way LiteLLM maps it: a tool named
//! `json_tool_call` whose input schema is the requested schema, forced through `tool_choice`
//! when the client sent no tools of its own (and thinking is off). A `json_tool_call` tool use in
//! the answer (whole or streamed) comes back as the message `content`, not as a tool call. The
//! decoder recognises it by name, so a client tool literally called `json_tool_call` is treated
//! the same way, as in LiteLLM. `json_object` and `text` formats carry no schema and are ignored.
//!
//! Anthropic has no embeddings and this adapter does not serve `/completions`: both are refused
//! with a 400 before any upstream call.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use bytes::Bytes;
use llm_proxy_actors::ErrorClass;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::outgoing::{FixedHeaders, UpstreamUrl};
use super::sse::{SseEvent, SseSplitter};
use super::{
    retry_after, Endpoint, ParsedResponse, PreparedRequest, ProviderAdapter, ProviderError,
    RequestContext, StreamContext, StreamDecoder, StreamEvent, UpstreamRequest, UpstreamResponse,
    Usage,
};

const PROVIDER: &str = "anthropic";
/// The provider name as LiteLLM capitalises it in error messages (`AnthropicException - …`).
const LABEL: &str = "Anthropic";
const DEFAULT_API_BASE: &str = "https://api.anthropic.com";
const API_VERSION: &str = "2023-06-01";
/// LiteLLM's fallback when a model's max output tokens are unknown.
const DEFAULT_MAX_TOKENS: u64 = 4096;
/// LiteLLM's name for the tool that carries a `response_format` answer.
const JSON_TOOL_NAME: &str = "json_tool_call";
const JSON_TOOL_DESCRIPTION: &str =
    "Give your final answer by calling this tool, with the answer as its input.";

/// Max output tokens of known Claude models (LiteLLM's cost map), used as `max_tokens` when the
/// client sets none. First matching prefix wins, so more specific names come first; an unknown
/// model gets [`DEFAULT_MAX_TOKENS`]. A lower value than the model's real limit is always valid.
const MAX_OUTPUT_TOKENS: &[(&str, u64)] = &[
    ("claude-opus-4-7", 128_000),
    ("claude-opus-4-6", 128_000),
    ("claude-sonnet-4-6", 128_000),
    ("claude-opus-4-5", 64_000),
    ("claude-sonnet-4-5", 64_000),
    ("claude-haiku-4-5", 64_000),
    ("claude-opus-4-1", 32_000),
    ("claude-opus-4", 32_000),
    ("claude-4-opus", 32_000),
    ("claude-sonnet-4", 64_000),
    ("claude-4-sonnet", 64_000),
    ("claude-3-7-sonnet", 64_000),
    ("claude-3-5-sonnet", 8_192),
    ("claude-3-5-haiku", 8_192),
    ("claude-3-opus", 4_096),
    ("claude-3-haiku", 4_096),
];

/// OpenAI parameters the Messages API has no equivalent for: dropped under `drop_params`,
/// refused otherwise.
const UNSUPPORTED_PARAMS: &[&str] = &[
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "functions",
    "function_call",
    "reasoning_effort",
    "modalities",
    "audio",
    "prediction",
    "service_tier",
    "store",
    "web_search_options",
    "dimensions",
    "encoding_format",
    "suffix",
    "echo",
    "best_of",
];

/// Request fields this adapter translates itself; everything else the client sent that is not in
/// [`UNSUPPORTED_PARAMS`] is passed through untouched (`top_k`, `thinking`, ...).
const TRANSLATED: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "user",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
];

// === impl AnthropicAdapter ===

/// One Anthropic deployment: its model id, endpoint and key.
#[derive(Debug)]
pub struct AnthropicAdapter {
    model: String,
    api_base: String,
    url: UpstreamUrl,
    has_key: bool,
    /// The key (when configured), the API version and the content type.
    headers: FixedHeaders,
    default_max_tokens: u64,
}

impl AnthropicAdapter {
    /// `model` is the Anthropic model id (the part after `anthropic/`). `api_base` and `api_key`
    /// come from `params`, else from `ANTHROPIC_API_BASE` / `ANTHROPIC_API_KEY`. A missing key
    /// is not an error here: requests fail with an authentication error until it is set (or a
    /// request brings its own `x-api-key` in `extra_headers`).
    pub fn new(model: &str, params: &Map<String, Value>) -> Result<Self, ProviderError> {
        Self::with_env(model, params, |name| std::env::var(name).ok())
    }

    fn with_env(
        model: &str,
        params: &Map<String, Value>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ProviderError> {
        if model.is_empty() {
            return Err(ProviderError::invalid_config(
                "anthropic/ needs a model name after the prefix, e.g. anthropic/claude-3-5-sonnet-20241022",
            ));
        }
        let setting = |key: &str, var: &str| -> Result<Option<String>, ProviderError> {
            match params.get(key) {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
                None | Some(Value::Null) | Some(Value::String(_)) => Ok(env(var)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| v.trim().to_string())),
                Some(_) => Err(ProviderError::invalid_config(format!(
                    "{key} for model={model} must be a string"
                ))),
            }
        };
        let api_base = setting("api_base", "ANTHROPIC_API_BASE")?
            .unwrap_or_else(|| DEFAULT_API_BASE.to_string())
            .trim_end_matches('/')
            .to_string();
        let api_key = setting("api_key", "ANTHROPIC_API_KEY")?;
        let mut headers = FixedHeaders::default();
        if let Some(key) = &api_key {
            headers = headers.with_text(HeaderName::from_static("x-api-key"), key);
        }
        Ok(AnthropicAdapter {
            url: UpstreamUrl::new(messages_url(&api_base)),
            api_base,
            has_key: api_key.is_some(),
            headers: headers
                .with(
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static(API_VERSION),
                )
                .with(CONTENT_TYPE, HeaderValue::from_static("application/json")),
            default_max_tokens: default_max_tokens(model),
            model: model.to_string(),
        })
    }

    fn unsupported_endpoint(&self, endpoint: Endpoint) -> ProviderError {
        let what = match endpoint {
            Endpoint::Embeddings => "Anthropic has no embeddings API",
            Endpoint::Completions | Endpoint::ChatCompletions => {
                "llm-proxy serves Anthropic models on /chat/completions only"
            }
        };
        ProviderError::new(
            ErrorClass::BadRequest,
            400,
            format!(
                "litellm.BadRequestError: {what}; model={} cannot serve {}",
                self.model,
                endpoint.route()
            ),
        )
    }
}

/// `{base}/v1/messages`, without doubling a `/v1` (or the whole path) the base already has.
fn messages_url(base: &str) -> String {
    if base.ends_with("/v1/messages") {
        base.to_string()
    } else if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

fn default_max_tokens(model: &str) -> u64 {
    MAX_OUTPUT_TOKENS
        .iter()
        .find(|(prefix, _)| model.starts_with(prefix))
        .map_or(DEFAULT_MAX_TOKENS, |(_, n)| *n)
}

impl ProviderAdapter for AnthropicAdapter {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn label(&self) -> &'static str {
        LABEL
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.api_base)
    }

    fn build_request(
        &self,
        endpoint: Endpoint,
        request: &PreparedRequest,
        ctx: &RequestContext,
    ) -> Result<UpstreamRequest, ProviderError> {
        if endpoint != Endpoint::ChatCompletions {
            return Err(self.unsupported_endpoint(endpoint));
        }
        let brings_key = request
            .extra_headers
            .iter()
            .any(|(k, _)| k == "x-api-key" || k == "authorization");
        if !self.has_key && !brings_key {
            return Err(ProviderError::missing_env("ANTHROPIC_API_KEY", &self.model));
        }
        let body = translate_request(
            &self.model,
            self.default_max_tokens,
            request,
            ctx.drop_params,
        )?;
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| bad_request(format!("cannot encode the request: {e}")))?;
        Ok(UpstreamRequest {
            method: "POST",
            // Headers before the URL: awc reported a bad header over a bad URL.
            headers: self.headers.with_extra(LABEL, &request.extra_headers)?,
            url: self.url.uri(LABEL)?,
            body: Bytes::from(bytes),
        })
    }

    fn parse_response(
        &self,
        endpoint: Endpoint,
        response: &UpstreamResponse<'_>,
        ctx: &StreamContext,
    ) -> Result<ParsedResponse, ProviderError> {
        if endpoint != Endpoint::ChatCompletions {
            return Err(self.unsupported_endpoint(endpoint));
        }
        let message: Value = serde_json::from_slice(response.body)
            .map_err(|e| ProviderError::malformed_response(LABEL, &e.to_string()))?;
        if message.get("type").and_then(Value::as_str) == Some("error") {
            return Err(in_band_error(&message));
        }
        translate_response(&message, ctx)
    }

    fn parse_error(&self, response: &UpstreamResponse<'_>) -> ProviderError {
        let (kind, message) = match serde_json::from_slice::<Value>(response.body) {
            Ok(body) => error_fields(&body),
            Err(_) => (None, None),
        };
        let message = message.unwrap_or_else(|| {
            let text = String::from_utf8_lossy(response.body).trim().to_string();
            if text.is_empty() {
                format!("upstream answered {} with an empty body", response.status)
            } else {
                text
            }
        });
        ProviderError::from_upstream(
            LABEL,
            response.status,
            &message,
            kind,
            None,
            retry_after(response.headers),
        )
    }

    /// Every endpoint gets the chat decoder: `build_request` refuses the others, so no other
    /// stream can start.
    fn stream_decoder(&self, _endpoint: Endpoint, ctx: &StreamContext) -> Box<dyn StreamDecoder> {
        Box::new(AnthropicStream::new(ctx))
    }
}

fn bad_request(detail: impl fmt::Display) -> ProviderError {
    ProviderError::new(
        ErrorClass::BadRequest,
        400,
        format!("litellm.BadRequestError: {LABEL}Exception - {detail}"),
    )
}

// === request wire types ===

#[derive(Serialize)]
struct MessagesBody<'a> {
    model: &'a str,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<TextBlock<'a>>,
    max_tokens: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice<'a>>,
    #[serde(flatten)]
    passthrough: Passthrough<'a>,
}

impl MessagesBody<'_> {
    /// Whether the translation already wrote `key` (a passed-through field must not repeat it).
    fn writes(&self, key: &str) -> bool {
        match key {
            "system" => !self.system.is_empty(),
            "stop_sequences" => self.stop_sequences.is_some(),
            "metadata" => self.metadata.is_some(),
            _ => false,
        }
    }
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Block<'a> {
    Text(TextBlock<'a>),
    Image(ImageBlock<'a>),
    ToolUse(ToolUseBlock<'a>),
    ToolResult(ToolResultBlock<'a>),
    /// A block the client already wrote in Anthropic's shape (`document`, `thinking`, ...).
    Raw(&'a Value),
}

#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<&'a Value>,
}

impl<'a> TextBlock<'a> {
    fn new(text: &'a str, cache_control: Option<&'a Value>) -> Self {
        TextBlock {
            kind: "text",
            text,
            cache_control,
        }
    }
}

#[derive(Serialize)]
struct ImageBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    source: ImageSource<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<&'a Value>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

#[derive(Serialize)]
struct ToolUseBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    name: &'a str,
    input: Cow<'a, Value>,
}

#[derive(Serialize)]
struct ToolResultBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    tool_use_id: &'a str,
    content: ToolResultContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<&'a Value>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolResultContent<'a> {
    Text(&'a str),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Tool<'a> {
    Function(FunctionTool<'a>),
    /// A tool already in Anthropic's shape (`web_search_20250305`, `bash_20250124`, ...).
    Raw(&'a Value),
}

#[derive(Serialize)]
struct FunctionTool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: Cow<'a, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<&'a Value>,
}

#[derive(Serialize)]
struct ToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

impl<'a> ToolChoice<'a> {
    fn of(kind: &'static str) -> Self {
        ToolChoice {
            kind,
            name: None,
            disable_parallel_tool_use: None,
        }
    }

    fn tool(name: &'a str) -> Self {
        ToolChoice {
            kind: "tool",
            name: Some(name),
            disable_parallel_tool_use: None,
        }
    }
}

/// Client fields sent on as they came, in the client's order.
struct Passthrough<'a>(Vec<(&'a str, &'a Value)>);

impl Serialize for Passthrough<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

// === request translation ===

/// Whether a client parameter is one Anthropic cannot take (a neutral value such as `n: 1` or
/// `logprobs: false` is not).
fn is_unsupported(key: &str, value: &Value) -> bool {
    let neutral = match key {
        "n" => value.as_u64() == Some(1),
        "logprobs" => value == &Value::Bool(false),
        _ => false,
    };
    UNSUPPORTED_PARAMS.contains(&key) && !value.is_null() && !neutral
}

fn translate_request<'a>(
    model: &'a str,
    default_max_tokens: u64,
    request: &'a PreparedRequest,
    drop_params: bool,
) -> Result<MessagesBody<'a>, ProviderError> {
    let body = request.body();
    let get = |key: &str| body.get(key).filter(|v| !v.is_null());
    if !drop_params {
        let refused: Vec<String> = body
            .iter()
            .filter(|(k, v)| is_unsupported(k, v))
            .map(|(k, _)| k.clone())
            .collect();
        if !refused.is_empty() {
            return Err(ProviderError::unsupported_params(PROVIDER, &refused, model));
        }
    }

    let (system, mut messages) = translate_messages(get("messages"))?;

    let mut tools = match get("tools") {
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, t)| map_tool(i, t))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad_request("tools must be a list")),
        None => Vec::new(),
    };
    let mut tool_choice = map_tool_choice(
        get("tool_choice"),
        get("parallel_tool_calls").and_then(Value::as_bool),
        !tools.is_empty(),
    )?;
    if let Some(schema) = response_format_schema(get("response_format")) {
        let thinking = get("thinking")
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "enabled" || t == "adaptive");
        let forced = tools.is_empty() && !thinking;
        tools.push(Tool::Function(FunctionTool {
            name: JSON_TOOL_NAME,
            description: (!forced).then_some(JSON_TOOL_DESCRIPTION),
            input_schema: Cow::Borrowed(schema),
            cache_control: None,
        }));
        if forced {
            tool_choice = Some(ToolChoice::tool(JSON_TOOL_NAME));
        }
    }
    if tools.is_empty() && messages.iter().any(|t| t.content.iter().any(is_tool_block)) {
        // Anthropic refuses tool_use / tool_result history without tool definitions.
        tools.push(Tool::Function(FunctionTool {
            name: "dummy_tool",
            description: Some("This is a dummy tool call"),
            input_schema: Cow::Owned(json!({"type": "object", "properties": {}})),
            cache_control: None,
        }));
    }
    // Anthropic refuses a final assistant turn (a prefill) that ends in whitespace.
    if let Some(Turn {
        role: "assistant",
        content,
    }) = messages.last_mut()
    {
        if let Some(Block::Text(block)) = content.last_mut() {
            block.text = block.text.trim_end();
        }
    }

    let mut out = MessagesBody {
        model,
        messages,
        system,
        max_tokens: max_tokens(
            get("max_completion_tokens").or_else(|| get("max_tokens")),
            default_max_tokens,
        ),
        temperature: get("temperature"),
        top_p: get("top_p"),
        stop_sequences: stop_sequences(get("stop"), drop_params),
        stream: request.stream.then_some(true),
        metadata: get("user")
            .and_then(Value::as_str)
            .filter(|u| is_valid_user_id(u))
            .map(|user_id| Metadata { user_id }),
        tools,
        tool_choice,
        passthrough: Passthrough(Vec::new()),
    };
    let passthrough = body
        .iter()
        .filter(|(k, _)| {
            !TRANSLATED.contains(&k.as_str())
                && !UNSUPPORTED_PARAMS.contains(&k.as_str())
                && !out.writes(k)
        })
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    out.passthrough = Passthrough(passthrough);
    Ok(out)
}

fn is_tool_block(block: &Block<'_>) -> bool {
    matches!(block, Block::ToolUse(_) | Block::ToolResult(_))
}

/// The client's `max_tokens` as an integer (LiteLLM rounds floats, minimum 1), else the model's
/// default.
fn max_tokens(value: Option<&Value>, default: u64) -> Value {
    match value {
        Some(Value::Number(n)) if n.is_u64() => Value::Number(n.clone()),
        Some(Value::Number(n)) => match n.as_f64() {
            // A float that is not an integer: round it, as LiteLLM does.
            Some(f) if f.is_finite() => json!((f.round() as i64).max(1)),
            _ => Value::Number(n.clone()),
        },
        // Not a number: Anthropic's own validation error is the clearest answer.
        Some(other) => other.clone(),
        None => json!(default),
    }
}

/// `stop` as a list; under `drop_params`, whitespace-only sequences (which Anthropic refuses)
/// are dropped, as LiteLLM does.
fn stop_sequences(stop: Option<&Value>, drop_params: bool) -> Option<Vec<&str>> {
    let keep = |s: &&str| !(drop_params && !s.is_empty() && s.chars().all(char::is_whitespace));
    let list: Vec<&str> = match stop? {
        Value::String(s) => std::iter::once(s.as_str()).filter(keep).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(keep)
            .collect(),
        _ => Vec::new(),
    };
    (!list.is_empty()).then_some(list)
}

/// Anthropic refuses e-mail addresses and phone numbers as `metadata.user_id`; LiteLLM leaves
/// such a `user` out rather than fail the call.
fn is_valid_user_id(user: &str) -> bool {
    let email = user.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.rsplit_once('.').is_some_and(|(host, tld)| {
                !host.is_empty() && tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic())
            })
    });
    let digits = user.strip_prefix('+').unwrap_or(user);
    let phone = digits.chars().count() >= 7
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_whitespace() || matches!(c, '(' | ')' | '-'));
    !email && !phone
}

type Conversation<'a> = (Vec<TextBlock<'a>>, Vec<Turn<'a>>);

fn translate_messages(messages: Option<&Value>) -> Result<Conversation<'_>, ProviderError> {
    let list = messages
        .and_then(Value::as_array)
        .ok_or_else(|| bad_request("messages is required and must be a list"))?;
    let mut system = Vec::new();
    let mut turns: Vec<Turn<'_>> = Vec::new();
    for (i, message) in list.iter().enumerate() {
        let m = message
            .as_object()
            .ok_or_else(|| bad_request(format_args!("messages[{i}] must be an object")))?;
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let (role, blocks) = match role {
            "system" | "developer" => {
                system_blocks(m, &mut system);
                continue;
            }
            "user" => ("user", content_blocks(m, i)?),
            "assistant" => ("assistant", assistant_blocks(m, i)?),
            "tool" | "function" => ("user", vec![tool_result(m, i)?]),
            other => {
                return Err(bad_request(format_args!(
                    "messages[{i}] has an unsupported role '{other}'"
                )))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(Turn {
                role,
                content: blocks,
            }),
        }
    }
    if turns.is_empty() {
        return Err(bad_request(
            "Anthropic requires at least one non-system message",
        ));
    }
    Ok((system, turns))
}

fn system_blocks<'a>(m: &'a Map<String, Value>, out: &mut Vec<TextBlock<'a>>) {
    match m.get("content") {
        Some(Value::String(text)) if !text.is_empty() => {
            out.push(TextBlock::new(text, m.get("cache_control")));
        }
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(text) = part
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    out.push(TextBlock::new(text, part.get("cache_control")));
                }
            }
        }
        _ => {}
    }
}

/// A user or assistant message's `content` (a string or a list of parts) as blocks. Empty text
/// is left out: Anthropic refuses empty text blocks.
fn content_blocks(m: &Map<String, Value>, i: usize) -> Result<Vec<Block<'_>>, ProviderError> {
    let mut out = Vec::new();
    match m.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if !text.is_empty() {
                out.push(Block::Text(TextBlock::new(text, m.get("cache_control"))));
            }
        }
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(block) = part_block(part, i)? {
                    out.push(block);
                }
            }
        }
        Some(_) => {
            return Err(bad_request(format_args!(
                "messages[{i}].content must be a string or a list of content parts"
            )))
        }
    }
    Ok(out)
}

fn part_block(part: &Value, i: usize) -> Result<Option<Block<'_>>, ProviderError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => {
            let text = part.get("text").and_then(Value::as_str).ok_or_else(|| {
                bad_request(format_args!(
                    "messages[{i}]: a text part needs a string `text`"
                ))
            })?;
            Ok((!text.is_empty())
                .then(|| Block::Text(TextBlock::new(text, part.get("cache_control")))))
        }
        Some("image_url") => image_block(part, i).map(Some),
        _ => Ok(Some(Block::Raw(part))),
    }
}

/// `image_url` with a `data:` URL becomes a base64 source, an http(s) URL a url source
/// (Anthropic fetches it; LiteLLM downloads `http://` images itself, we do no I/O here).
fn image_block(part: &Value, i: usize) -> Result<Block<'_>, ProviderError> {
    let image = part.get("image_url");
    let url = image
        .and_then(|u| u.as_str().or_else(|| u.get("url").and_then(Value::as_str)))
        .ok_or_else(|| bad_request(format_args!("messages[{i}]: an image_url part needs a url")))?;
    let source = if let Some(rest) = url.strip_prefix("data:") {
        let (header, data) = rest
            .split_once(',')
            .filter(|(h, _)| h.ends_with(";base64"))
            .ok_or_else(|| {
                bad_request(format_args!(
                    "messages[{i}]: image data URLs must be base64 (data:<media type>;base64,<data>)"
                ))
            })?;
        let media_type = header.split(';').next().unwrap_or_default();
        ImageSource::Base64 { media_type, data }
    } else if url.starts_with("https://") || url.starts_with("http://") {
        ImageSource::Url { url }
    } else {
        return Err(bad_request(format_args!(
            "messages[{i}]: image url must be a data: URL or an http(s) URL"
        )));
    };
    Ok(Block::Image(ImageBlock {
        kind: "image",
        source,
        cache_control: part.get("cache_control"),
    }))
}

/// Thinking blocks being replayed come first (Anthropic checks their order), then the text,
/// then one `tool_use` per tool call.
fn assistant_blocks(m: &Map<String, Value>, i: usize) -> Result<Vec<Block<'_>>, ProviderError> {
    let mut out: Vec<Block<'_>> = match m.get("thinking_blocks") {
        Some(Value::Array(blocks)) => blocks.iter().map(Block::Raw).collect(),
        _ => Vec::new(),
    };
    out.extend(content_blocks(m, i)?);
    if let Some(Value::Array(calls)) = m.get("tool_calls") {
        for (j, call) in calls.iter().enumerate() {
            out.push(tool_use(call, i, j)?);
        }
    }
    Ok(out)
}

fn tool_use(call: &Value, i: usize, j: usize) -> Result<Block<'_>, ProviderError> {
    let missing =
        |what: &str| bad_request(format_args!("messages[{i}].tool_calls[{j}] has no {what}"));
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("id"))?;
    let function = call.get("function").ok_or_else(|| missing("function"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("function.name"))?;
    let input = match function.get("arguments") {
        None | Some(Value::Null) => Cow::Owned(json!({})),
        Some(Value::String(s)) if s.trim().is_empty() => Cow::Owned(json!({})),
        Some(Value::String(s)) => Cow::Owned(serde_json::from_str::<Value>(s).map_err(|e| {
            bad_request(format_args!(
                "messages[{i}].tool_calls[{j}].function.arguments is not valid JSON: {e}"
            ))
        })?),
        Some(other) => Cow::Borrowed(other),
    };
    if !input.is_object() {
        return Err(bad_request(format_args!(
            "messages[{i}].tool_calls[{j}].function.arguments must be a JSON object"
        )));
    }
    Ok(Block::ToolUse(ToolUseBlock {
        kind: "tool_use",
        id,
        name,
        input,
    }))
}

fn tool_result(m: &Map<String, Value>, i: usize) -> Result<Block<'_>, ProviderError> {
    let tool_use_id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad_request(format_args!(
                "messages[{i}] (a tool result) has no tool_call_id"
            ))
        })?;
    let content = match m.get("content") {
        Some(Value::String(text)) => ToolResultContent::Text(text),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                if let Some(block) = part_block(part, i)? {
                    blocks.push(block);
                }
            }
            ToolResultContent::Blocks(blocks)
        }
        _ => ToolResultContent::Text(""),
    };
    Ok(Block::ToolResult(ToolResultBlock {
        kind: "tool_result",
        tool_use_id,
        content,
        cache_control: m.get("cache_control"),
    }))
}

fn map_tool(i: usize, tool: &Value) -> Result<Tool<'_>, ProviderError> {
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return Ok(Tool::Raw(tool));
    }
    let function = tool
        .get("function")
        .ok_or_else(|| bad_request(format_args!("tools[{i}] has no function")))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format_args!("tools[{i}].function has no name")))?;
    Ok(Tool::Function(FunctionTool {
        name,
        description: function.get("description").and_then(Value::as_str),
        input_schema: match function.get("parameters") {
            Some(schema) if !schema.is_null() => Cow::Borrowed(schema),
            _ => Cow::Owned(json!({"type": "object", "properties": {}})),
        },
        cache_control: tool
            .get("cache_control")
            .or_else(|| function.get("cache_control")),
    }))
}

/// OpenAI's `tool_choice` and `parallel_tool_calls` as Anthropic's one `tool_choice` object.
fn map_tool_choice(
    choice: Option<&Value>,
    parallel: Option<bool>,
    has_tools: bool,
) -> Result<Option<ToolChoice<'_>>, ProviderError> {
    let invalid = || {
        bad_request("tool_choice must be \"auto\", \"required\", \"none\" or {\"type\": \"function\", \"function\": {\"name\": …}}")
    };
    let mapped = match choice {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::of("auto"),
            "required" | "any" => ToolChoice::of("any"),
            "none" => ToolChoice::of("none"),
            _ => return Err(invalid()),
        }),
        Some(Value::Object(o)) => {
            let function_name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str);
            match (function_name, o.get("type").and_then(Value::as_str)) {
                (Some(name), _) => Some(ToolChoice::tool(name)),
                (None, Some("auto")) => Some(ToolChoice::of("auto")),
                (None, Some("required" | "any")) => Some(ToolChoice::of("any")),
                (None, Some("none")) => Some(ToolChoice::of("none")),
                (None, Some("tool")) => Some(ToolChoice::tool(
                    o.get("name").and_then(Value::as_str).ok_or_else(invalid)?,
                )),
                _ => return Err(invalid()),
            }
        }
        Some(_) => return Err(invalid()),
    };
    Ok(match (mapped, parallel) {
        (Some(c), _) if c.kind == "none" => Some(c),
        (Some(mut c), Some(p)) => {
            c.disable_parallel_tool_use = Some(!p);
            Some(c)
        }
        (None, Some(p)) if has_tools => Some(ToolChoice {
            disable_parallel_tool_use: Some(!p),
            ..ToolChoice::of("auto")
        }),
        (c, _) => c,
    })
}

/// The JSON schema of a `json_schema` response format (or LiteLLM's `response_schema`).
fn response_format_schema(format: Option<&Value>) -> Option<&Value> {
    let format = format?;
    format
        .get("response_schema")
        .or_else(|| format.get("json_schema").and_then(|j| j.get("schema")))
        .filter(|s| s.is_object())
}

// === response translation ===

/// OpenAI's finish reason for Anthropic's `stop_reason` (LiteLLM's `map_finish_reason`).
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "pause_turn" | "compaction" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Prompt tokens include cache writes and reads, as LiteLLM counts them.
fn prompt_tokens(usage: &Value) -> u64 {
    [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .iter()
    .filter_map(|k| usage.get(*k).and_then(Value::as_u64))
    .sum()
}

fn translate_response(
    message: &Value,
    ctx: &StreamContext,
) -> Result<ParsedResponse, ProviderError> {
    let blocks = message
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ProviderError::malformed_response(LABEL, "the message has no content list")
        })?;
    let mut text = String::new();
    let mut reasoning: Option<String> = None;
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    let mut json_answer = None;
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(
                block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            Some("tool_use") => {
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let arguments = block
                    .get("input")
                    .map_or_else(|| "{}".to_string(), Value::to_string);
                if name == JSON_TOOL_NAME {
                    json_answer = Some(arguments);
                } else {
                    tool_calls.push(json!({
                        "id": block.get("id").cloned().unwrap_or(Value::Null),
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }));
                }
            }
            Some("thinking") => {
                let thinking = block
                    .get("thinking")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                reasoning.get_or_insert_with(String::new).push_str(thinking);
                thinking_blocks.push(block.clone());
            }
            Some("redacted_thinking") => thinking_blocks.push(block.clone()),
            _ => {}
        }
    }
    let stop_reason = message
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let finish = if json_answer.is_some() && tool_calls.is_empty() {
        "stop"
    } else {
        finish_reason(stop_reason)
    };
    let content = match json_answer {
        Some(answer) => Value::String(answer),
        None if text.is_empty() => Value::Null,
        None => Value::String(text),
    };
    let mut out_message = Map::new();
    out_message.insert("role".into(), "assistant".into());
    out_message.insert("content".into(), content);
    if !tool_calls.is_empty() {
        out_message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if let Some(reasoning) = reasoning {
        out_message.insert("reasoning_content".into(), reasoning.into());
    }
    if !thinking_blocks.is_empty() {
        out_message.insert("thinking_blocks".into(), Value::Array(thinking_blocks));
    }
    let usage_in = message.get("usage").cloned().unwrap_or(Value::Null);
    let usage = Usage {
        prompt_tokens: prompt_tokens(&usage_in),
        completion_tokens: usage_in
            .get("output_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    };
    let body = json!({
        "id": message.get("id").and_then(Value::as_str).unwrap_or(&ctx.id),
        "created": ctx.created,
        "model": message.get("model").and_then(Value::as_str).unwrap_or(&ctx.model),
        "object": "chat.completion",
        "choices": [{"index": 0, "message": out_message, "finish_reason": finish}],
        "usage": usage_json(usage),
    });
    Ok(ParsedResponse {
        body: Bytes::from(body.to_string()),
        usage: Some(usage),
    })
}

fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    })
}

// === errors ===

/// `error.type` and `error.message` of Anthropic's `{"type":"error","error":{…}}`.
fn error_fields(body: &Value) -> (Option<String>, Option<String>) {
    let error = body.get("error");
    let field = |k: &str| {
        error
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    (field("type"), field("message"))
}

/// The HTTP status Anthropic documents for each error type, for errors that arrive without one
/// (inside a stream, or in a 2xx body).
fn status_for_error_type(kind: Option<&str>) -> u16 {
    match kind {
        Some("invalid_request_error") => 400,
        Some("authentication_error") => 401,
        Some("billing_error") => 402,
        Some("permission_error") => 403,
        Some("not_found_error") => 404,
        Some("request_too_large") => 413,
        Some("rate_limit_error") => 429,
        Some("timeout_error") => 504,
        Some("overloaded_error") => 529,
        _ => 500,
    }
}

fn in_band_error(body: &Value) -> ProviderError {
    let (kind, message) = error_fields(body);
    let status = status_for_error_type(kind.as_deref());
    let message = message.unwrap_or_else(|| body.to_string());
    ProviderError::from_upstream(LABEL, status, &message, kind, None, None)
}

// === stream decoding ===

/// The content block being streamed, by what its deltas become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpenBlock {
    /// A client tool call: OpenAI `tool_calls[index]`.
    Tool { index: u32, has_arguments: bool },
    /// The `response_format` tool: its JSON is the answer's content.
    JsonAnswer,
    /// Text, thinking, or a block kind with no OpenAI counterpart.
    Other,
}

struct AnthropicStream {
    splitter: SseSplitter,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    role_sent: bool,
    block: Option<OpenBlock>,
    tool_calls: u32,
    json_answer: bool,
    usage: Usage,
    finish_sent: bool,
    ended: bool,
}

impl AnthropicStream {
    fn new(ctx: &StreamContext) -> Self {
        AnthropicStream {
            splitter: SseSplitter::default(),
            id: ctx.id.clone(),
            created: ctx.created,
            model: ctx.model.clone(),
            include_usage: ctx.include_usage,
            role_sent: false,
            block: None,
            tool_calls: 0,
            json_answer: false,
            usage: Usage::default(),
            finish_sent: false,
            ended: false,
        }
    }

    fn frame(&self, choices: Value, usage: Option<Usage>) -> StreamEvent {
        let mut chunk = json!({
            "id": self.id,
            "created": self.created,
            "model": self.model,
            "object": "chat.completion.chunk",
            "choices": choices,
        });
        if let (Some(usage), Some(map)) = (usage, chunk.as_object_mut()) {
            map.insert("usage".into(), usage_json(usage));
        }
        StreamEvent::Chunk(Bytes::from(chunk.to_string()))
    }

    /// One choice delta; the first one of the stream also carries `role: assistant`.
    fn delta(&mut self, key: &str, value: Value, finish: Option<&str>, out: &mut Vec<StreamEvent>) {
        let mut delta = Map::new();
        if !self.role_sent {
            delta.insert("role".into(), "assistant".into());
            self.role_sent = true;
        }
        if !key.is_empty() {
            delta.insert(key.into(), value);
        }
        let mut choice = Map::new();
        choice.insert("index".into(), 0.into());
        choice.insert("delta".into(), Value::Object(delta));
        if let Some(finish) = finish {
            choice.insert("finish_reason".into(), finish.into());
        }
        out.push(self.frame(Value::Array(vec![Value::Object(choice)]), None));
    }

    fn text(&mut self, key: &str, text: &str, out: &mut Vec<StreamEvent>) {
        if !text.is_empty() {
            self.delta(key, text.into(), None, out);
        }
    }

    fn tool_arguments(&mut self, index: u32, arguments: &str, out: &mut Vec<StreamEvent>) {
        let call = json!([{"index": index, "function": {"arguments": arguments}}]);
        self.delta("tool_calls", call, None, out);
    }

    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) {
        let data: Value = match serde_json::from_str(&event.data) {
            Ok(v) => v,
            Err(e) => {
                let detail = format!("undecodable stream event: {e}");
                return self.fail(ProviderError::malformed_response(LABEL, &detail), out);
            }
        };
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or_default();
        match kind {
            "message_start" => {
                let message = data.get("message");
                if let Some(model) = message.and_then(|m| m.get("model")).and_then(Value::as_str) {
                    self.model = model.to_string();
                }
                if let Some(usage) = message.and_then(|m| m.get("usage")) {
                    self.usage.prompt_tokens = prompt_tokens(usage);
                    self.usage.completion_tokens = usage
                        .get("output_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                }
            }
            "content_block_start" => {
                self.block_start(data.get("content_block").unwrap_or(&Value::Null), out)
            }
            "content_block_delta" => {
                self.block_delta(data.get("delta").unwrap_or(&Value::Null), out)
            }
            "content_block_stop" => {
                if let Some(OpenBlock::Tool {
                    index,
                    has_arguments: false,
                }) = self.block
                {
                    // A tool called without input still gets valid JSON arguments.
                    self.tool_arguments(index, "{}", out);
                }
                self.block = None;
            }
            "message_delta" => {
                // Anthropic's usage here is cumulative.
                if let Some(usage) = data.get("usage") {
                    if let Some(n) = usage.get("output_tokens").and_then(Value::as_u64) {
                        self.usage.completion_tokens = n;
                    }
                    if usage.get("input_tokens").and_then(Value::as_u64).is_some() {
                        self.usage.prompt_tokens = prompt_tokens(usage);
                    }
                }
                if let Some(reason) = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    let finish = self.finish_reason(reason);
                    self.delta("", Value::Null, Some(finish), out);
                    self.finish_sent = true;
                }
            }
            "message_stop" => self.end(out),
            "error" => self.fail(in_band_error(&data), out),
            // ping, and event kinds added after this was written
            _ => {}
        }
    }

    fn block_start(&mut self, block: &Value, out: &mut Vec<StreamEvent>) {
        let str_field = |k: &str| block.get(k).and_then(Value::as_str).unwrap_or_default();
        match str_field("type") {
            "tool_use" if str_field("name") == JSON_TOOL_NAME => {
                self.json_answer = true;
                self.block = Some(OpenBlock::JsonAnswer);
            }
            "tool_use" => {
                let index = self.tool_calls;
                self.tool_calls += 1;
                self.block = Some(OpenBlock::Tool {
                    index,
                    has_arguments: false,
                });
                let call = json!([{
                    "index": index,
                    "id": str_field("id"),
                    "type": "function",
                    "function": {"name": str_field("name"), "arguments": ""},
                }]);
                self.delta("tool_calls", call, None, out);
            }
            "text" => {
                self.block = Some(OpenBlock::Other);
                self.text("content", str_field("text"), out);
            }
            "thinking" => {
                self.block = Some(OpenBlock::Other);
                self.text("reasoning_content", str_field("thinking"), out);
            }
            _ => self.block = Some(OpenBlock::Other),
        }
    }

    fn block_delta(&mut self, delta: &Value, out: &mut Vec<StreamEvent>) {
        let str_field = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or_default();
        match str_field("type") {
            "text_delta" => self.text("content", str_field("text"), out),
            "thinking_delta" => self.text("reasoning_content", str_field("thinking"), out),
            "input_json_delta" => {
                let fragment = str_field("partial_json");
                match self.block {
                    Some(OpenBlock::Tool { index, .. }) if !fragment.is_empty() => {
                        self.block = Some(OpenBlock::Tool {
                            index,
                            has_arguments: true,
                        });
                        self.tool_arguments(index, fragment, out);
                    }
                    Some(OpenBlock::JsonAnswer) => self.text("content", fragment, out),
                    _ => {}
                }
            }
            // signature_delta, citations_delta: no OpenAI counterpart
            _ => {}
        }
    }

    fn finish_reason(&self, stop_reason: &str) -> &'static str {
        if stop_reason == "tool_use" && self.json_answer && self.tool_calls == 0 {
            "stop"
        } else {
            finish_reason(stop_reason)
        }
    }

    /// `message_stop`: the finish chunk if `message_delta` did not bring one, the usage chunk
    /// when the client asked for it, then the end.
    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.finish_sent {
            let finish = if self.tool_calls > 0 {
                "tool_calls"
            } else {
                "stop"
            };
            self.delta("", Value::Null, Some(finish), out);
            self.finish_sent = true;
        }
        if self.include_usage {
            out.push(self.frame(json!([]), Some(self.usage)));
        }
        out.push(StreamEvent::Usage(self.usage));
        out.push(StreamEvent::Done);
        self.ended = true;
    }

    /// The stream failed: account for what was used, report the error, ignore anything after.
    fn fail(&mut self, error: ProviderError, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::Usage(self.usage));
        out.push(StreamEvent::Error(error));
        self.ended = true;
    }

    fn events(&mut self, events: Vec<SseEvent>, out: &mut Vec<StreamEvent>) {
        for event in events {
            if self.ended {
                return;
            }
            self.event(&event, out);
        }
    }
}

impl StreamDecoder for AnthropicStream {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        let mut events = Vec::new();
        let fed = self.splitter.feed(bytes, &mut events);
        self.events(events, out);
        if fed.is_err() && !self.ended {
            let error =
                ProviderError::malformed_response(LABEL, "a stream line exceeded the size limit");
            self.fail(error, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        let mut events = Vec::new();
        self.splitter.finish(&mut events);
        self.events(events, out);
        if !self.ended {
            let error = ProviderError::connection(LABEL, "the stream ended before message_stop");
            self.fail(error, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use actix_web::http::header::HeaderMap;

    use super::*;
    use crate::providers::params::prepare;
    use crate::providers::testing;

    fn fixture_path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/anthropic")
            .join(name)
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(fixture_path(name))
            .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    }

    /// Compare with a golden file; `BLESS=1 cargo test` rewrites the file instead.
    fn golden(name: &str, actual: &str) {
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(fixture_path(name), format!("{actual}\n")).unwrap();
            return;
        }
        assert_eq!(
            actual,
            fixture(name).trim_end_matches('\n'),
            "golden file {name}"
        );
    }

    use crate::providers::testing::{obj, pairs};

    fn adapter(model: &str) -> AnthropicAdapter {
        let params =
            obj(json!({"model": format!("anthropic/{model}"), "api_key": "sk-ant-secret"}));
        AnthropicAdapter::with_env(model, &params, |_| None).unwrap()
    }

    fn build(
        adapter: &AnthropicAdapter,
        body: Value,
        drop_params: bool,
    ) -> Result<UpstreamRequest, ProviderError> {
        let prepared = prepare(obj(body), &Map::new());
        let ctx = RequestContext {
            now: SystemTime::UNIX_EPOCH,
            drop_params,
        };
        adapter.build_request(Endpoint::ChatCompletions, &prepared, &ctx)
    }

    fn build_fixture(case: &str, drop_params: bool) -> String {
        let body: Value = serde_json::from_str(&fixture(&format!("{case}.openai.json"))).unwrap();
        let request = build(&adapter("claude-3-5-sonnet-20241022"), body, drop_params).unwrap();
        String::from_utf8(request.body.to_vec()).unwrap()
    }

    fn stream_ctx(include_usage: bool) -> StreamContext {
        StreamContext {
            id: "chatcmpl-test".into(),
            created: 1_700_000_000,
            model: "claude-3-5-sonnet".into(),
            include_usage,
        }
    }

    fn render(events: &[StreamEvent]) -> String {
        events
            .iter()
            .map(|e| match e {
                StreamEvent::Chunk(b) => format!("data: {}", String::from_utf8_lossy(b)),
                StreamEvent::Usage(u) => format!(
                    "usage: prompt_tokens={} completion_tokens={}",
                    u.prompt_tokens, u.completion_tokens
                ),
                StreamEvent::Error(e) => format!(
                    "error: {} {:?} {:?} {}",
                    e.status, e.class, e.error_type, e.message
                ),
                StreamEvent::Done => "done".to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Decode a recorded stream whole, then one byte at a time; both must give the same events.
    fn decode(sse: &str, include_usage: bool) -> String {
        let adapter = adapter("claude-3-5-sonnet");
        let mut whole = Vec::new();
        let mut decoder =
            adapter.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(include_usage));
        decoder.feed(sse.as_bytes(), &mut whole);
        decoder.finish(&mut whole);
        let mut bytewise = Vec::new();
        let mut decoder =
            adapter.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(include_usage));
        for byte in sse.as_bytes() {
            decoder.feed(std::slice::from_ref(byte), &mut bytewise);
        }
        decoder.finish(&mut bytewise);
        assert_eq!(whole, bytewise, "byte-at-a-time decoding differs");
        render(&whole)
    }

    fn parse(name: &str) -> ParsedResponse {
        let body = Bytes::from(fixture(name));
        let response = UpstreamResponse {
            status: 200,
            headers: &HeaderMap::new(),
            body: &body,
        };
        adapter("claude-3-5-sonnet")
            .parse_response(Endpoint::ChatCompletions, &response, &stream_ctx(false))
            .unwrap()
    }

    // --- request bytes ---

    #[test]
    fn plain_request() {
        golden("plain.anthropic.json", &build_fixture("plain", false));
    }

    #[test]
    fn system_messages_are_lifted_and_turns_merged() {
        golden(
            "system_multi_turn.anthropic.json",
            &build_fixture("system_multi_turn", false),
        );
    }

    #[test]
    fn tools_tool_calls_and_tool_results() {
        golden("tools.anthropic.json", &build_fixture("tools", false));
    }

    #[test]
    fn images_become_base64_and_url_sources() {
        golden("images.anthropic.json", &build_fixture("images", false));
    }

    #[test]
    fn stop_becomes_stop_sequences() {
        golden("stop.anthropic.json", &build_fixture("stop", false));
        let body = build(
            &adapter("claude-3-haiku-20240307"),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": "END"}),
            false,
        )
        .unwrap()
        .body;
        assert_eq!(
            &body[..],
            br#"{"model":"claude-3-haiku-20240307","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"max_tokens":4096,"stop_sequences":["END"]}"#
        );
    }

    #[test]
    fn drop_params_drops_unsupported_params() {
        golden(
            "drop_params.anthropic.json",
            &build_fixture("drop_params", true),
        );
    }

    #[test]
    fn unsupported_params_are_refused_without_drop_params() {
        let body: Value = serde_json::from_str(&fixture("drop_params.openai.json")).unwrap();
        let e = build(&adapter("claude-3-5-sonnet-20241022"), body, false).unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::BadRequest, 400));
        assert!(
            e.message.contains(
                "anthropic does not support parameters: ['logit_bias', 'presence_penalty', 'frequency_penalty', 'n', 'seed', 'logprobs', 'top_logprobs'], for model=claude-3-5-sonnet-20241022"
            ),
            "{}",
            e.message
        );
        assert_eq!(e.param.as_deref(), Some("logit_bias"));
        // Neutral values are not refused.
        let ok = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 1, "logprobs": false, "seed": null});
        assert!(build(&adapter("claude-3-5-sonnet"), ok, false).is_ok());
    }

    #[test]
    fn response_format_becomes_a_forced_tool() {
        golden(
            "response_format.anthropic.json",
            &build_fixture("response_format", false),
        );
        // With tools of its own, the client's tool choice stands and the JSON tool is described.
        let body = json!({
            "model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}
        });
        let sent: Value =
            serde_json::from_slice(&build(&adapter("m"), body, false).unwrap().body).unwrap();
        assert_eq!(sent.get("tool_choice"), None);
        assert_eq!(sent["tools"][1]["name"], "json_tool_call");
        assert_eq!(sent["tools"][1]["description"], JSON_TOOL_DESCRIPTION);
        // json_object and text carry no schema and are ignored, as in LiteLLM.
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}});
        let sent: Value =
            serde_json::from_slice(&build(&adapter("m"), body, false).unwrap().body).unwrap();
        assert_eq!(sent.get("tools"), None);
    }

    #[test]
    fn tool_choice_mapping() {
        let map = |choice: Value, parallel: Option<bool>| {
            let c = map_tool_choice(Some(&choice), parallel, true).unwrap();
            serde_json::to_value(c).unwrap()
        };
        assert_eq!(map(json!("auto"), None), json!({"type": "auto"}));
        assert_eq!(map(json!("required"), None), json!({"type": "any"}));
        assert_eq!(map(json!("none"), Some(false)), json!({"type": "none"}));
        assert_eq!(
            map(
                json!({"type": "function", "function": {"name": "f"}}),
                Some(true)
            ),
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": false})
        );
        let parallel_only = map_tool_choice(None, Some(false), true).unwrap();
        assert_eq!(
            serde_json::to_value(parallel_only).unwrap(),
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert!(map_tool_choice(None, Some(false), false).unwrap().is_none());
        assert!(map_tool_choice(Some(&json!("sometimes")), None, true).is_err());
    }

    #[test]
    fn tool_history_without_tools_gets_a_dummy_tool() {
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "done"}
        ]});
        let sent: Value =
            serde_json::from_slice(&build(&adapter("m"), body, false).unwrap().body).unwrap();
        assert_eq!(
            sent["tools"],
            json!([{"name": "dummy_tool", "description": "This is a dummy tool call", "input_schema": {"type": "object", "properties": {}}}])
        );
    }

    #[test]
    fn malformed_messages_are_refused_before_any_call() {
        let cases = [
            (json!({"model": "m"}), "messages is required"),
            (
                json!({"model": "m", "messages": [{"role": "system", "content": "only"}]}),
                "at least one non-system message",
            ),
            (
                json!({"model": "m", "messages": [{"role": "critic", "content": "x"}]}),
                "unsupported role 'critic'",
            ),
            (
                json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "has no tool_call_id",
            ),
            (
                json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{oops"}}]}]}),
                "is not valid JSON",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}),
                "data: URL or an http(s) URL",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}}]}]}),
                "must be base64",
            ),
        ];
        for (body, expected) in cases {
            let e = build(&adapter("m"), body, false).unwrap_err();
            assert_eq!((e.class, e.status), (ErrorClass::BadRequest, 400));
            assert!(
                e.message.contains(expected),
                "{} does not contain {expected}",
                e.message
            );
        }
    }

    #[test]
    fn max_tokens_defaults_per_model() {
        assert_eq!(default_max_tokens("claude-3-5-sonnet-20241022"), 8192);
        assert_eq!(default_max_tokens("claude-3-7-sonnet-latest"), 64_000);
        assert_eq!(default_max_tokens("claude-opus-4-1-20250805"), 32_000);
        assert_eq!(default_max_tokens("claude-opus-4-5"), 64_000);
        assert_eq!(default_max_tokens("claude-sonnet-4-20250514"), 64_000);
        assert_eq!(default_max_tokens("claude-sonnet-4-6"), 128_000);
        assert_eq!(default_max_tokens("claude-3-haiku-20240307"), 4096);
        assert_eq!(default_max_tokens("claude-instant-1"), 4096);
        assert_eq!(max_tokens(Some(&json!(99.6)), 1), json!(100));
        assert_eq!(max_tokens(Some(&json!(0.2)), 1), json!(1));
        assert_eq!(max_tokens(None, 4096), json!(4096));
    }

    #[test]
    fn user_ids_that_look_personal_are_left_out() {
        assert!(is_valid_user_id("user-1234"));
        assert!(is_valid_user_id("12345"));
        assert!(!is_valid_user_id("ada@example.com"));
        assert!(!is_valid_user_id("+1 (555) 010-9999"));
    }

    // --- URL, headers, credentials ---

    #[test]
    fn url_and_headers() {
        let ok = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let request = build(&adapter("claude-3-5-sonnet"), ok.clone(), false).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.url.to_string(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            pairs(&request.headers),
            vec![
                ("x-api-key".to_string(), "sk-ant-secret".to_string()),
                ("anthropic-version".to_string(), "2023-06-01".to_string()),
                ("content-type".to_string(), "application/json".to_string()),
            ]
        );
        let mut with_headers = ok;
        with_headers["extra_headers"] = json!({"anthropic-beta": "prompt-caching-2024-07-31", "Anthropic-Version": "2024-01-01"});
        let request = build(&adapter("claude-3-5-sonnet"), with_headers, false).unwrap();
        assert_eq!(
            pairs(&request.headers)[1..],
            [
                ("content-type".to_string(), "application/json".to_string()),
                (
                    "anthropic-beta".to_string(),
                    "prompt-caching-2024-07-31".to_string()
                ),
                ("anthropic-version".to_string(), "2024-01-01".to_string()),
            ]
        );
    }

    #[test]
    fn api_base_from_params_or_env_without_doubling_v1() {
        let env = |name: &str| match name {
            "ANTHROPIC_API_BASE" => Some("https://env.example/".to_string()),
            "ANTHROPIC_API_KEY" => Some("sk-env".to_string()),
            _ => None,
        };
        for (base, url) in [
            ("https://proxy.example", "https://proxy.example/v1/messages"),
            (
                "https://proxy.example/",
                "https://proxy.example/v1/messages",
            ),
            (
                "https://proxy.example/v1",
                "https://proxy.example/v1/messages",
            ),
            (
                "https://proxy.example/v1/messages",
                "https://proxy.example/v1/messages",
            ),
        ] {
            let a = AnthropicAdapter::with_env("m", &obj(json!({"api_base": base})), env).unwrap();
            assert_eq!(a.url.as_str(), url);
        }
        let a = AnthropicAdapter::with_env("m", &Map::new(), env).unwrap();
        assert_eq!(
            (a.url.as_str(), a.api_base()),
            (
                "https://env.example/v1/messages",
                Some("https://env.example")
            )
        );
        let sent = build(
            &a,
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
            false,
        )
        .unwrap();
        assert_eq!(
            pairs(&sent.headers)[0],
            ("x-api-key".to_string(), "sk-env".to_string())
        );
        assert!(AnthropicAdapter::with_env("m", &obj(json!({"api_base": 3})), env).is_err());
        assert!(AnthropicAdapter::with_env("", &Map::new(), env).is_err());
    }

    #[test]
    fn missing_key_fails_at_build_time_unless_the_request_brings_one() {
        let a = AnthropicAdapter::with_env("claude-3-5-sonnet", &Map::new(), |_| None).unwrap();
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let e = build(&a, body.clone(), false).unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::Auth, 401));
        assert!(e.message.contains("ANTHROPIC_API_KEY"), "{}", e.message);
        let mut with_key = body;
        with_key["extra_headers"] = json!({"x-api-key": "sk-client"});
        let request = build(&a, with_key, false).unwrap();
        assert_eq!(
            pairs(&request.headers).last(),
            Some(&("x-api-key".to_string(), "sk-client".to_string()))
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", adapter("claude-3-5-sonnet"));
        assert!(!shown.contains("sk-ant-secret"), "{shown}");
        assert!(shown.contains("*****"), "{shown}");
    }

    #[test]
    fn embeddings_and_completions_are_refused() {
        let prepared = prepare(obj(json!({"model": "m", "input": "x"})), &Map::new());
        let ctx = RequestContext {
            now: SystemTime::UNIX_EPOCH,
            drop_params: false,
        };
        let a = adapter("claude-3-5-sonnet");
        let e = a
            .build_request(Endpoint::Embeddings, &prepared, &ctx)
            .unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::BadRequest, 400));
        assert!(
            e.message.contains("Anthropic has no embeddings API"),
            "{}",
            e.message
        );
        let e = a
            .build_request(Endpoint::Completions, &prepared, &ctx)
            .unwrap_err();
        assert!(e.message.contains("/completions"), "{}", e.message);
    }

    // --- responses ---

    #[test]
    fn text_response_with_thinking_and_cache_usage() {
        let parsed = parse("response_text.json");
        golden(
            "response_text.openai.json",
            &String::from_utf8_lossy(&parsed.body),
        );
        assert_eq!(
            parsed.usage,
            Some(Usage {
                prompt_tokens: 2112,
                completion_tokens: 9
            })
        );
    }

    #[test]
    fn tool_use_response() {
        let parsed = parse("response_tool_use.json");
        golden(
            "response_tool_use.openai.json",
            &String::from_utf8_lossy(&parsed.body),
        );
        assert_eq!(
            parsed.usage,
            Some(Usage {
                prompt_tokens: 472,
                completion_tokens: 91
            })
        );
    }

    #[test]
    fn json_mode_response_is_content() {
        let parsed = parse("response_json_mode.json");
        golden(
            "response_json_mode.openai.json",
            &String::from_utf8_lossy(&parsed.body),
        );
    }

    #[test]
    fn unreadable_or_error_bodies_in_a_2xx() {
        let a = adapter("m");
        let ctx = stream_ctx(false);
        let response = UpstreamResponse {
            status: 200,
            headers: &HeaderMap::new(),
            body: &Bytes::from_static(b"not json"),
        };
        let e = a
            .parse_response(Endpoint::ChatCompletions, &response, &ctx)
            .unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::ServerError, 500));
        let body =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let response = UpstreamResponse {
            status: 200,
            headers: &HeaderMap::new(),
            body: &Bytes::from_static(body),
        };
        let e = a
            .parse_response(Endpoint::ChatCompletions, &response, &ctx)
            .unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::ServerError, 529));
    }

    // --- streams ---

    #[test]
    fn text_stream_with_thinking_and_usage_chunk() {
        golden(
            "stream_text.expected",
            &decode(&fixture("stream_text.sse"), true),
        );
    }

    #[test]
    fn tool_call_stream() {
        golden(
            "stream_tool.expected",
            &decode(&fixture("stream_tool.sse"), false),
        );
    }

    #[test]
    fn json_mode_stream_is_content() {
        golden(
            "stream_json_mode.expected",
            &decode(&fixture("stream_json_mode.sse"), false),
        );
    }

    #[test]
    fn overloaded_error_event_ends_the_stream() {
        let rendered = decode(&fixture("stream_overloaded.sse"), true);
        golden("stream_overloaded.expected", &rendered);
        let mut out = Vec::new();
        let mut decoder = adapter("m").stream_decoder(Endpoint::ChatCompletions, &stream_ctx(true));
        decoder.feed(fixture("stream_overloaded.sse").as_bytes(), &mut out);
        let Some(StreamEvent::Error(e)) = out.last() else {
            panic!("no error event: {out:?}");
        };
        assert_eq!((e.class, e.status), (ErrorClass::ServerError, 529));
        assert!(e.class.is_retryable());
    }

    #[test]
    fn a_stream_cut_before_message_stop_is_an_error() {
        let sse = fixture("stream_text.sse");
        let cut = &sse[..sse.find("event: message_delta").unwrap()];
        let mut out = Vec::new();
        let mut decoder = adapter("m").stream_decoder(Endpoint::ChatCompletions, &stream_ctx(true));
        decoder.feed(cut.as_bytes(), &mut out);
        decoder.finish(&mut out);
        let tail = &out[out.len() - 2..];
        assert_eq!(
            tail[0],
            StreamEvent::Usage(Usage {
                prompt_tokens: 30,
                completion_tokens: 1
            })
        );
        let StreamEvent::Error(e) = &tail[1] else {
            panic!("no error event: {tail:?}");
        };
        assert_eq!(e.class, ErrorClass::Connection);
        assert!(e.message.contains("before message_stop"), "{}", e.message);
        // Nothing more after the end.
        let before = out.len();
        decoder.feed(b"data: {\"type\":\"message_stop\"}\n\n", &mut out);
        decoder.finish(&mut out);
        assert_eq!(out.len(), before);
    }

    #[test]
    fn an_undecodable_event_is_an_error() {
        let mut out = Vec::new();
        let mut decoder =
            adapter("m").stream_decoder(Endpoint::ChatCompletions, &stream_ctx(false));
        decoder.feed(b"event: content_block_delta\ndata: {not json\n\n", &mut out);
        assert_eq!(out.len(), 2);
        let StreamEvent::Error(e) = &out[1] else {
            panic!("no error event: {out:?}");
        };
        assert_eq!(e.class, ErrorClass::ServerError);
        assert!(
            e.message.contains("undecodable stream event"),
            "{}",
            e.message
        );
    }

    // --- errors ---

    #[test]
    fn every_error_type_is_classified() {
        let rows: Vec<Value> = serde_json::from_str(&fixture("errors.json")).unwrap();
        let a = adapter("claude-3-5-sonnet");
        for row in rows {
            let status = row["status"].as_u64().unwrap() as u16;
            let body = match &row["body"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let headers: Vec<(&str, &str)> = row
                .get("headers")
                .and_then(Value::as_array)
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h[0].as_str().unwrap(), h[1].as_str().unwrap()))
                        .collect()
                })
                .unwrap_or_default();
            let e = a.parse_error(&UpstreamResponse {
                status,
                headers: &testing::headers(&headers),
                body: &Bytes::from(body),
            });
            assert_eq!(
                format!("{:?}", e.class),
                row["class"].as_str().unwrap(),
                "status {status}"
            );
            assert_eq!(
                u64::from(e.status),
                row["client_status"].as_u64().unwrap(),
                "status {status}"
            );
            assert_eq!(
                e.error_type.as_deref(),
                row["error_type"].as_str(),
                "status {status}"
            );
            assert_eq!(
                e.message,
                row["message"].as_str().unwrap(),
                "status {status}"
            );
            assert_eq!(
                e.retry_after,
                row.get("retry_after_secs")
                    .and_then(Value::as_u64)
                    .map(Duration::from_secs),
                "status {status}"
            );
        }
    }

    #[test]
    fn in_band_error_types_get_their_documented_status() {
        for (kind, status, class) in [
            ("overloaded_error", 529, ErrorClass::ServerError),
            ("rate_limit_error", 429, ErrorClass::RateLimit),
            ("api_error", 500, ErrorClass::ServerError),
            ("invalid_request_error", 400, ErrorClass::BadRequest),
            ("authentication_error", 401, ErrorClass::Auth),
            ("timeout_error", 504, ErrorClass::Timeout),
            ("something_new", 500, ErrorClass::ServerError),
        ] {
            let e =
                in_band_error(&json!({"type": "error", "error": {"type": kind, "message": "m"}}));
            assert_eq!((e.class, e.status), (class, status), "{kind}");
        }
    }
}
