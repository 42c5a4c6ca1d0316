//! The Bedrock Converse API (`/converse`, `/converse-stream`): OpenAI chat in, OpenAI chat out.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::eventstream::{stream_exception, usage_json, ChunkWriter, Frame, FrameReader};
use super::{base_model, ignored_param, LABEL};
use crate::providers::params::OPENAI_PARAMS;
use crate::providers::{
    PreparedRequest, ProviderError, StreamContext, StreamDecoder, StreamEvent, Usage,
};

/// Request fields the adapter reads itself; they never reach `additionalModelRequestFields`.
const CONSUMED: &[&str] = &["model", "messages", "stream", "stream_options"];

/// The Converse body for an OpenAI chat request. Mapped OpenAI params go to `inferenceConfig`
/// and `toolConfig`; OpenAI params Converse has no place for are dropped with `drop_params`
/// and refused without it; any other field rides along in `additionalModelRequestFields`.
pub(super) fn request_body(
    model_id: &str,
    request: &PreparedRequest,
    drop_params: bool,
) -> Result<Vec<u8>, ProviderError> {
    let anthropic = base_model(model_id).starts_with("anthropic.");
    let mut inference = InferenceConfig::default();
    let mut tools: Option<Vec<Value>> = None;
    let mut tool_choice: Option<Value> = None;
    let mut additional = Map::new();
    let mut unsupported = Vec::new();

    for (key, value) in request.body() {
        if value.is_null() || CONSUMED.contains(&key.as_str()) || ignored_param(key, value) {
            continue;
        }
        match key.as_str() {
            "max_tokens" | "max_completion_tokens" => inference.max_tokens = Some(value.clone()),
            "temperature" => inference.temperature = Some(value.clone()),
            "top_p" => inference.top_p = Some(value.clone()),
            "stop" => match value {
                Value::String(s) if s.is_empty() => {}
                Value::String(s) => inference.stop = Some(json!([s])),
                other => inference.stop = Some(other.clone()),
            },
            "tools" => tools = Some(tool_specs(value)?),
            "tool_choice" => match map_tool_choice(value) {
                Some(choice) => tool_choice = Some(choice),
                None => unsupported.push(key.clone()),
            },
            "thinking" if anthropic => {
                additional.insert(key.clone(), value.clone());
            }
            k if OPENAI_PARAMS.contains(&k) || k == "thinking" => unsupported.push(key.clone()),
            _ => {
                additional.insert(key.clone(), value.clone());
            }
        }
    }
    if !unsupported.is_empty() && !drop_params {
        return Err(ProviderError::unsupported_params(
            "bedrock",
            &unsupported,
            model_id,
        ));
    }

    let messages = request
        .body()
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (system, messages) = convert_messages(messages)?;

    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("inferenceConfig".into(), inference.into_json());
    if let Some(tools) = tools.filter(|t| !t.is_empty()) {
        let mut config = Map::new();
        config.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice {
            config.insert("toolChoice".into(), choice);
        }
        body.insert("toolConfig".into(), Value::Object(config));
    }
    if !additional.is_empty() {
        body.insert(
            "additionalModelRequestFields".into(),
            Value::Object(additional),
        );
    }
    Ok(Value::Object(body).to_string().into_bytes())
}

#[derive(Default)]
struct InferenceConfig {
    max_tokens: Option<Value>,
    temperature: Option<Value>,
    top_p: Option<Value>,
    stop: Option<Value>,
}

impl InferenceConfig {
    fn into_json(self) -> Value {
        let mut m = Map::new();
        for (name, value) in [
            ("maxTokens", self.max_tokens),
            ("temperature", self.temperature),
            ("topP", self.top_p),
            ("stopSequences", self.stop),
        ] {
            if let Some(v) = value {
                m.insert(name.into(), v);
            }
        }
        Value::Object(m)
    }
}

fn bad_request(detail: impl std::fmt::Display) -> ProviderError {
    ProviderError::invalid_config(format!("BedrockException - {detail}"))
}

/// OpenAI `tools` into Converse `toolSpec`s (a missing description is the tool's name, as
/// LiteLLM sends it).
fn tool_specs(tools: &Value) -> Result<Vec<Value>, ProviderError> {
    let Some(list) = tools.as_array() else {
        return Err(bad_request("`tools` must be a list"));
    };
    list.iter()
        .map(|tool| {
            let function = tool.get("function").unwrap_or(tool);
            let Some(name) = function.get("name").and_then(Value::as_str) else {
                return Err(bad_request("every tool needs `function.name`"));
            };
            let description = function.get("description").and_then(Value::as_str).unwrap_or(name);
            let schema = function
                .get("parameters")
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            Ok(json!({"toolSpec": {"name": name, "description": description, "inputSchema": {"json": schema}}}))
        })
        .collect()
}

/// `auto` / `required` / a named function; `none` has no Converse equivalent (`None`).
fn map_tool_choice(choice: &Value) -> Option<Value> {
    match choice {
        Value::String(s) if s == "auto" => Some(json!({"auto": {}})),
        Value::String(s) if s == "required" => Some(json!({"any": {}})),
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| json!({"tool": {"name": name}})),
        _ => None,
    }
}

/// OpenAI messages into Converse `system` blocks and alternating turns: system and developer
/// messages become `system` text, tool results join the user turn, consecutive turns of the same
/// role are merged (Converse refuses two user turns in a row).
fn convert_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in messages {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let content = message.get("content").unwrap_or(&Value::Null);
        let (turn_role, blocks) = match role {
            "system" | "developer" => {
                system.extend(
                    text_parts(content)?
                        .into_iter()
                        .map(|t| json!({ "text": t })),
                );
                continue;
            }
            "user" => ("user", user_blocks(content)?),
            "tool" => ("user", vec![tool_result(message, content)?]),
            "assistant" => ("assistant", assistant_blocks(message, content)?),
            other => return Err(bad_request(format!("unsupported message role {other:?}"))),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == turn_role => existing.extend(blocks),
            _ => turns.push((turn_role, blocks)),
        }
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, turns))
}

/// The text of a string content or of the `text` parts of a list (empty strings skipped).
fn text_parts(content: &Value) -> Result<Vec<&str>, ProviderError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => p
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(Ok),
                other => Some(Err(bad_request(format!(
                    "unsupported content part type {other:?} here"
                )))),
            })
            .collect(),
        _ => Err(bad_request(
            "message content must be a string or a list of parts",
        )),
    }
}

fn user_blocks(content: &Value) -> Result<Vec<Value>, ProviderError> {
    let Value::Array(parts) = content else {
        return Ok(text_parts(content)?
            .into_iter()
            .map(|t| json!({ "text": t }))
            .collect());
    };
    let mut blocks = Vec::new();
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(t) = part
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    blocks.push(json!({ "text": t }));
                }
            }
            Some("image_url") => {
                let url = part
                    .get("image_url")
                    .map(|u| u.get("url").unwrap_or(u))
                    .and_then(Value::as_str);
                blocks.push(image_block(url.unwrap_or_default())?);
            }
            other => {
                return Err(bad_request(format!(
                    "unsupported content part type {other:?} for Bedrock Converse"
                )))
            }
        }
    }
    Ok(blocks)
}

/// A `data:image/<fmt>;base64,<data>` URL into a Converse image block. Remote URLs are refused:
/// adapters do no I/O, and Bedrock takes only inline bytes.
fn image_block(url: &str) -> Result<Value, ProviderError> {
    let parsed = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .and_then(|(meta, data)| meta.strip_suffix(";base64").map(|mime| (mime, data)));
    let Some((mime, data)) = parsed else {
        return Err(bad_request("image_url must be a base64 data: URL for Bedrock (llm-proxy does not fetch image URLs)"));
    };
    let format = match mime {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(bad_request(format!(
                "unsupported image type {other:?}; Bedrock takes png, jpeg, gif, webp"
            )))
        }
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

fn tool_result(message: &Value, content: &Value) -> Result<Value, ProviderError> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let text: Vec<Value> = match content {
        Value::String(s) => vec![json!({ "text": s })],
        Value::Array(_) => text_parts(content)?
            .into_iter()
            .map(|t| json!({ "text": t }))
            .collect(),
        Value::Null => Vec::new(),
        other => vec![json!({ "text": other.to_string() })],
    };
    Ok(json!({"toolResult": {"content": text, "toolUseId": id}}))
}

fn assistant_blocks(message: &Value, content: &Value) -> Result<Vec<Value>, ProviderError> {
    let mut blocks: Vec<Value> = text_parts(content)?
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| json!({ "text": t }))
        .collect();
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
        let function = call.get("function").unwrap_or(&Value::Null);
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let input = match function.get("arguments") {
            Some(Value::String(s)) if s.trim().is_empty() => json!({}),
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| {
                bad_request(format!(
                    "tool call {id} has arguments that are not JSON: {e}"
                ))
            })?,
            Some(Value::Object(o)) => Value::Object(o.clone()),
            _ => json!({}),
        };
        blocks.push(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}));
    }
    Ok(blocks)
}

/// Converse `stopReason` into OpenAI's `finish_reason` (LiteLLM's `map_finish_reason`, plus the
/// two Bedrock filter reasons, which LiteLLM leaves as `stop`).
pub(super) fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

fn usage_of(v: Option<&Value>) -> Option<Usage> {
    let v = v?;
    Some(Usage {
        prompt_tokens: v.get("inputTokens").and_then(Value::as_u64).unwrap_or(0),
        completion_tokens: v.get("outputTokens").and_then(Value::as_u64).unwrap_or(0),
    })
}

/// A Converse answer into an OpenAI `chat.completion`.
pub(super) fn parse_response(
    model_id: &str,
    body: &[u8],
    ctx: &StreamContext,
) -> Result<(Bytes, Option<Usage>), ProviderError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::malformed_response(LABEL, &e.to_string()))?;
    let Some(blocks) = v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
    else {
        return Err(ProviderError::malformed_response(
            LABEL,
            "no output.message.content",
        ));
    };
    let mut text = String::new();
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in blocks {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(tool) = block.get("toolUse") {
            let arguments = tool
                .get("input")
                .cloned()
                .unwrap_or_else(|| json!({}))
                .to_string();
            tool_calls.push(json!({
                "id": tool.get("toolUseId").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {"name": tool.get("name").cloned().unwrap_or(Value::Null), "arguments": arguments},
            }));
        } else if let Some(t) = block
            .pointer("/reasoningContent/reasoningText/text")
            .and_then(Value::as_str)
        {
            reasoning.get_or_insert_with(String::new).push_str(t);
        }
    }
    let stop = v
        .get("stopReason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let usage = usage_of(v.get("usage"));

    let mut message = Map::new();
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    message.insert("content".into(), content);
    message.insert("role".into(), Value::String("assistant".into()));
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if let Some(r) = reasoning {
        message.insert("reasoning_content".into(), Value::String(r));
    }
    let out = json!({
        "id": ctx.id,
        "created": ctx.created,
        "model": model_id,
        "object": "chat.completion",
        "choices": [{"finish_reason": finish_reason(stop), "index": 0, "message": message}],
        "usage": usage_json(usage.unwrap_or_default()),
    });
    Ok((Bytes::from(out.to_string()), usage))
}

/// `/converse-stream` event frames into OpenAI chunks.
#[derive(Debug)]
pub(super) struct ConverseStream {
    frames: FrameReader,
    chunks: ChunkWriter,
    include_usage: bool,
    /// OpenAI `tool_calls[].index` of the tool block in progress (counts tool blocks only).
    tool_index: Option<u64>,
    /// The tool block in progress has received no input yet.
    tool_block_empty: bool,
    stopped: bool,
    done: bool,
}

impl ConverseStream {
    pub(super) fn new(ctx: &StreamContext, model_id: &str) -> ConverseStream {
        ConverseStream {
            frames: FrameReader::default(),
            chunks: ChunkWriter::new(ctx, model_id),
            include_usage: ctx.include_usage,
            tool_index: None,
            tool_block_empty: false,
            stopped: false,
            done: false,
        }
    }

    fn tool_delta(&mut self, call: Value) -> Bytes {
        let mut fields = Map::new();
        fields.insert("tool_calls".into(), json!([call]));
        self.chunks.delta(fields)
    }

    fn event(&mut self, event_type: &str, payload: &Value, out: &mut Vec<StreamEvent>) {
        match event_type {
            "contentBlockStart" => {
                if let Some(tool) = payload.pointer("/start/toolUse") {
                    let index = self.tool_index.map_or(0, |i| i + 1);
                    self.tool_index = Some(index);
                    self.tool_block_empty = true;
                    let call = json!({
                        "index": index,
                        "id": tool.get("toolUseId").cloned().unwrap_or(Value::Null),
                        "type": "function",
                        "function": {"name": tool.get("name").cloned().unwrap_or(Value::Null), "arguments": ""},
                    });
                    let chunk = self.tool_delta(call);
                    out.push(StreamEvent::Chunk(chunk));
                }
            }
            "contentBlockDelta" => {
                let Some(delta) = payload.get("delta") else {
                    return;
                };
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    let mut fields = Map::new();
                    fields.insert("content".into(), Value::String(text.to_string()));
                    out.push(StreamEvent::Chunk(self.chunks.delta(fields)));
                } else if let Some(input) = delta.pointer("/toolUse/input").and_then(Value::as_str)
                {
                    self.tool_block_empty = false;
                    let call = json!({"index": self.tool_index.unwrap_or(0), "function": {"arguments": input}});
                    let chunk = self.tool_delta(call);
                    out.push(StreamEvent::Chunk(chunk));
                } else if let Some(text) = delta
                    .pointer("/reasoningContent/text")
                    .and_then(Value::as_str)
                {
                    let mut fields = Map::new();
                    fields.insert("reasoning_content".into(), Value::String(text.to_string()));
                    out.push(StreamEvent::Chunk(self.chunks.delta(fields)));
                }
            }
            // A tool called with no input still gets arguments (`{}`), as LiteLLM sends.
            "contentBlockStop" if self.tool_block_empty => {
                self.tool_block_empty = false;
                let call =
                    json!({"index": self.tool_index.unwrap_or(0), "function": {"arguments": "{}"}});
                let chunk = self.tool_delta(call);
                out.push(StreamEvent::Chunk(chunk));
            }
            "messageStop" => {
                let stop = payload
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("end_turn");
                self.stopped = true;
                out.push(StreamEvent::Chunk(self.chunks.finish(finish_reason(stop))));
            }
            "metadata" => {
                if let Some(usage) = usage_of(payload.get("usage")) {
                    out.push(StreamEvent::Usage(usage));
                    if self.include_usage {
                        out.push(StreamEvent::Chunk(self.chunks.usage(usage)));
                    }
                }
                self.done = true;
                out.push(StreamEvent::Done);
            }
            // messageStart carries only the role, which the first content chunk sends; a text
            // block's contentBlockStop needs no chunk.
            _ => {}
        }
    }
}

impl StreamDecoder for ConverseStream {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        let mut frames = Vec::new();
        self.frames.feed(bytes, &mut frames);
        for frame in frames {
            match frame {
                Ok(Frame::Event {
                    event_type,
                    payload,
                }) => match serde_json::from_slice::<Value>(&payload) {
                    Ok(v) => self.event(&event_type, &v, out),
                    Err(e) => {
                        out.push(StreamEvent::Error(ProviderError::malformed_response(
                            LABEL,
                            &format!("{event_type} payload is not JSON: {e}"),
                        )));
                        self.done = true;
                    }
                },
                Ok(Frame::Exception(e)) | Err(e) => {
                    out.push(StreamEvent::Error(e));
                    self.done = true;
                }
            }
            if self.done {
                return;
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        self.done = true;
        if self.frames.failed() {
            return;
        }
        if self.stopped && !self.frames.truncated() {
            // messageStop arrived; only the metadata (usage) frame is missing.
            out.push(StreamEvent::Done);
        } else {
            out.push(StreamEvent::Error(stream_exception(
                "connectionClosed",
                "the Bedrock stream ended before messageStop",
            )));
        }
    }
}
