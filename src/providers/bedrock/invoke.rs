//! InvokeModel (`/invoke`, `/invoke-with-response-stream`) bodies: Cohere Command chat and the
//! Titan and Cohere embedding models.

use actix_web::http::header::HeaderName;
use aws_smithy_types::base64;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::eventstream::{stream_exception, usage_json, ChunkWriter, Frame, FrameReader};
use super::{ignored_param, LABEL};
use crate::providers::params::OPENAI_PARAMS;
use crate::providers::{
    PreparedRequest, ProviderError, StreamContext, StreamDecoder, StreamEvent, UpstreamResponse,
    Usage,
};

fn bad_request(detail: impl std::fmt::Display) -> ProviderError {
    ProviderError::invalid_config(format!("BedrockException - {detail}"))
}

fn fail_unsupported(
    unsupported: Vec<String>,
    drop_params: bool,
    model_id: &str,
) -> Result<(), ProviderError> {
    if unsupported.is_empty() || drop_params {
        Ok(())
    } else {
        Err(ProviderError::unsupported_params(
            "bedrock",
            &unsupported,
            model_id,
        ))
    }
}

/// Cohere's chat request fields for the OpenAI params it takes (LiteLLM's `CohereChatConfig`).
fn cohere_param(key: &str) -> Option<&'static str> {
    Some(match key {
        "max_tokens" | "max_completion_tokens" => "max_tokens",
        "temperature" => "temperature",
        "top_p" => "p",
        "frequency_penalty" => "frequency_penalty",
        "presence_penalty" => "presence_penalty",
        "stop" => "stop_sequences",
        "n" => "num_generations",
        "seed" => "seed",
        _ => return None,
    })
}

/// Which Cohere generation answers on InvokeModel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CohereApi {
    /// `cohere.command-r*`: Cohere chat, `{message, ..., chat_history}`.
    Chat,
    /// `cohere.command-text*` / `command-light*`: Cohere generate, `{prompt, ..., stream}`.
    Generate,
}

/// The InvokeModel body for a Cohere Command model. The prompt is every message's text joined
/// by blank lines, system text first where the client put it (LiteLLM's `cohere_message_pt`).
pub(super) fn cohere_chat_body(
    api: CohereApi,
    model_id: &str,
    request: &PreparedRequest,
    drop_params: bool,
) -> Result<Vec<u8>, ProviderError> {
    let mut prompt = String::new();
    for message in request
        .body()
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if role == "tool" {
            return Err(bad_request(
                "tool results are not supported for Cohere on Bedrock InvokeModel",
            ));
        }
        match message.get("content") {
            Some(Value::String(s)) if !s.is_empty() => {
                prompt.push_str(s);
                prompt.push_str("\n\n");
            }
            Some(Value::Array(parts)) => {
                for part in parts {
                    if part.get("type").and_then(Value::as_str) != Some("text") {
                        return Err(bad_request(
                            "Cohere on Bedrock InvokeModel takes text content only",
                        ));
                    }
                    if let Some(t) = part
                        .get("text")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                    {
                        prompt.push_str(t);
                        prompt.push_str("\n\n");
                    }
                }
            }
            _ => {}
        }
    }
    let prompt = prompt.trim_end().to_string();

    let mut body = Map::new();
    body.insert(
        if api == CohereApi::Chat {
            "message"
        } else {
            "prompt"
        }
        .into(),
        Value::String(prompt),
    );
    let mut unsupported = Vec::new();
    for (key, value) in request.body() {
        // Cohere takes `n` (num_generations); `user` it has no place for, and LiteLLM lets
        // that through unsent for every provider.
        if value.is_null()
            || matches!(
                key.as_str(),
                "model" | "messages" | "stream" | "stream_options" | "user"
            )
        {
            continue;
        }
        match cohere_param(key) {
            Some("stop_sequences") => {
                let stops = if value.is_string() {
                    json!([value])
                } else {
                    value.clone()
                };
                body.insert("stop_sequences".into(), stops);
            }
            Some(name) => {
                body.insert(name.into(), value.clone());
            }
            None if OPENAI_PARAMS.contains(&key.as_str()) => unsupported.push(key.clone()),
            None => {
                body.insert(key.clone(), value.clone());
            }
        }
    }
    fail_unsupported(unsupported, drop_params, model_id)?;
    match api {
        CohereApi::Chat => {
            body.insert("chat_history".into(), json!([]));
        }
        CohereApi::Generate if request.stream => {
            body.insert("stream".into(), Value::Bool(true));
        }
        CohereApi::Generate => {}
    }
    Ok(Value::Object(body).to_string().into_bytes())
}

/// A numeric response header; `name` is a lower-case literal, so the lookup allocates nothing.
fn header_u64(response: &UpstreamResponse<'_>, name: &'static str) -> Option<u64> {
    response
        .header(HeaderName::from_static(name))
        .and_then(|v| v.trim().parse().ok())
}

/// Usage from Bedrock's InvokeModel response headers.
fn header_usage(response: &UpstreamResponse<'_>) -> Option<Usage> {
    let prompt = header_u64(response, "x-amzn-bedrock-input-token-count");
    let completion = header_u64(response, "x-amzn-bedrock-output-token-count");
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    Some(Usage {
        prompt_tokens: prompt.unwrap_or(0),
        completion_tokens: completion.unwrap_or(0),
    })
}

/// Cohere finish reasons (LiteLLM's `map_finish_reason`).
fn cohere_finish(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "TOOL_CALL" => "tool_calls",
        "ERROR_TOXIC" => "content_filter",
        _ => "stop",
    }
}

/// A Cohere InvokeModel answer (`{"text", "finish_reason"}` from chat, `{"generations": [...]}`
/// from generate) into an OpenAI `chat.completion`.
pub(super) fn parse_cohere_chat(
    model_id: &str,
    response: &UpstreamResponse<'_>,
    ctx: &StreamContext,
) -> Result<(Bytes, Option<Usage>), ProviderError> {
    let v: Value = serde_json::from_slice(response.body)
        .map_err(|e| ProviderError::malformed_response(LABEL, &e.to_string()))?;
    let (text, reason) = if let Some(text) = v.get("text").and_then(Value::as_str) {
        (text, v.get("finish_reason").and_then(Value::as_str))
    } else if let Some(generation) = v.pointer("/generations/0") {
        let text = generation
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        (
            text,
            generation.get("finish_reason").and_then(Value::as_str),
        )
    } else {
        return Err(ProviderError::malformed_response(
            LABEL,
            "no text in the Cohere answer",
        ));
    };
    let usage = header_usage(response);
    let out = json!({
        "id": ctx.id,
        "created": ctx.created,
        "model": model_id,
        "object": "chat.completion",
        "choices": [{
            "finish_reason": cohere_finish(reason.unwrap_or("COMPLETE")),
            "index": 0,
            "message": {"content": text, "role": "assistant"},
        }],
        "usage": usage_json(usage.unwrap_or_default()),
    });
    Ok((Bytes::from(out.to_string()), usage))
}

/// `/invoke-with-response-stream` for Cohere: `chunk` events whose payload is
/// `{"bytes": base64(json)}`; the inner JSON is a Cohere stream event, and the last one carries
/// `amazon-bedrock-invocationMetrics` with the token counts.
#[derive(Debug)]
pub(super) struct CohereStream {
    frames: FrameReader,
    chunks: ChunkWriter,
    include_usage: bool,
    done: bool,
}

impl CohereStream {
    pub(super) fn new(ctx: &StreamContext, model_id: &str) -> CohereStream {
        CohereStream {
            frames: FrameReader::default(),
            chunks: ChunkWriter::new(ctx, model_id),
            include_usage: ctx.include_usage,
            done: false,
        }
    }

    fn inner_event(payload: &[u8]) -> Result<Value, String> {
        let outer: Value = serde_json::from_slice(payload)
            .map_err(|e| format!("chunk payload is not JSON: {e}"))?;
        let encoded = outer
            .get("bytes")
            .and_then(Value::as_str)
            .ok_or("chunk payload has no bytes")?;
        let decoded =
            base64::decode(encoded).map_err(|e| format!("chunk bytes are not base64: {e}"))?;
        serde_json::from_slice(&decoded).map_err(|e| format!("chunk bytes are not JSON: {e}"))
    }

    fn event(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        let event_type = v.get("event_type").and_then(Value::as_str);
        if let Some(text) = v.get("text").and_then(Value::as_str) {
            if matches!(event_type, None | Some("text-generation")) && !text.is_empty() {
                let mut fields = Map::new();
                fields.insert("content".into(), Value::String(text.to_string()));
                out.push(StreamEvent::Chunk(self.chunks.delta(fields)));
            }
        }
        let finished = event_type == Some("stream-end")
            || v.get("is_finished").and_then(Value::as_bool) == Some(true);
        if !finished {
            return;
        }
        let reason = v
            .get("finish_reason")
            .and_then(Value::as_str)
            .unwrap_or("COMPLETE");
        out.push(StreamEvent::Chunk(
            self.chunks.finish(cohere_finish(reason)),
        ));
        if let Some(metrics) = v.get("amazon-bedrock-invocationMetrics") {
            let usage = Usage {
                prompt_tokens: metrics
                    .get("inputTokenCount")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                completion_tokens: metrics
                    .get("outputTokenCount")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            };
            out.push(StreamEvent::Usage(usage));
            if self.include_usage {
                out.push(StreamEvent::Chunk(self.chunks.usage(usage)));
            }
        }
        self.done = true;
        out.push(StreamEvent::Done);
    }
}

impl StreamDecoder for CohereStream {
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
                }) if event_type == "chunk" => match Self::inner_event(&payload) {
                    Ok(v) => self.event(&v, out),
                    Err(detail) => {
                        out.push(StreamEvent::Error(ProviderError::malformed_response(
                            LABEL, &detail,
                        )));
                        self.done = true;
                    }
                },
                Ok(Frame::Event { .. }) => {}
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
        if !self.frames.failed() {
            out.push(StreamEvent::Error(stream_exception(
                "connectionClosed",
                "the Bedrock stream ended before the Cohere stream-end event",
            )));
        }
    }
}

/// The embedding model families InvokeModel serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EmbedModel {
    /// `amazon.titan-embed-text-v1` / `amazon.titan-embed-g1-*`: `{"inputText"}` only.
    TitanV1,
    /// `amazon.titan-embed-text-v2*`: also `dimensions` and `embeddingTypes`.
    TitanV2,
    /// `cohere.embed-*`: `{"texts", "input_type"}`.
    Cohere,
}

/// The client's `input` as a list of strings.
fn inputs(request: &PreparedRequest) -> Result<Vec<&str>, ProviderError> {
    match request.body().get("input") {
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| bad_request("Bedrock embeddings take text inputs only"))
            })
            .collect(),
        _ => Err(bad_request("`input` must be a string or a list of strings")),
    }
}

/// The InvokeModel body for an embedding request. Titan embeds one text per call, so a Titan
/// request with several inputs is refused (the transport sends one upstream request per call).
pub(super) fn embed_body(
    model: EmbedModel,
    model_id: &str,
    request: &PreparedRequest,
    drop_params: bool,
) -> Result<Vec<u8>, ProviderError> {
    let texts = inputs(request)?;
    let mut body = Map::new();
    let mut unsupported = Vec::new();
    match model {
        EmbedModel::TitanV1 | EmbedModel::TitanV2 => {
            let [text] = texts.as_slice() else {
                return Err(bad_request(format!(
                    "{model_id} embeds one input per request; send {} inputs as separate requests",
                    texts.len()
                )));
            };
            body.insert("inputText".into(), Value::String((*text).to_string()));
        }
        EmbedModel::Cohere => {
            body.insert("texts".into(), json!(texts));
            let input_type = request
                .body()
                .get("input_type")
                .cloned()
                .unwrap_or_else(|| json!("search_document"));
            body.insert("input_type".into(), input_type);
        }
    }
    for (key, value) in request.body() {
        if value.is_null()
            || matches!(key.as_str(), "model" | "input" | "input_type")
            || ignored_param(key, value)
        {
            continue;
        }
        match (model, key.as_str()) {
            (EmbedModel::TitanV2, "dimensions") => {
                body.insert("dimensions".into(), value.clone());
            }
            (EmbedModel::TitanV2, "encoding_format") if value == "float" => {
                body.insert("embeddingTypes".into(), json!(["float"]));
            }
            (EmbedModel::Cohere, "dimensions") => {
                body.insert("output_dimension".into(), value.clone());
            }
            (EmbedModel::Cohere, "encoding_format") if value == "float" => {
                body.insert("embedding_types".into(), json!(["float"]));
            }
            (_, k) if OPENAI_PARAMS.contains(&k) => unsupported.push(key.clone()),
            _ => {
                body.insert(key.clone(), value.clone());
            }
        }
    }
    fail_unsupported(unsupported, drop_params, model_id)?;
    Ok(Value::Object(body).to_string().into_bytes())
}

/// A Titan (`{"embedding", "inputTextTokenCount"}`, or `embeddingsByType.float`) or Cohere
/// (`{"embeddings": [[...]]}` or `{"embeddings": {"float": [[...]]}}`) answer into an OpenAI
/// embedding list. Cohere's token count comes from the response header.
pub(super) fn parse_embeddings(
    model: EmbedModel,
    model_id: &str,
    response: &UpstreamResponse<'_>,
) -> Result<(Bytes, Option<Usage>), ProviderError> {
    let v: Value = serde_json::from_slice(response.body)
        .map_err(|e| ProviderError::malformed_response(LABEL, &e.to_string()))?;
    let (vectors, prompt_tokens): (Vec<&Value>, Option<u64>) = match model {
        EmbedModel::TitanV1 | EmbedModel::TitanV2 => {
            let vector = v
                .get("embedding")
                .or_else(|| v.pointer("/embeddingsByType/float"));
            let tokens = v.get("inputTextTokenCount").and_then(Value::as_u64);
            (vector.into_iter().collect(), tokens)
        }
        EmbedModel::Cohere => {
            let list = match v.get("embeddings") {
                Some(Value::Object(by_type)) => by_type.get("float"),
                other => other,
            };
            let vectors = list
                .and_then(Value::as_array)
                .map(|l| l.iter().collect())
                .unwrap_or_default();
            (vectors, header_usage(response).map(|u| u.prompt_tokens))
        }
    };
    if vectors.is_empty() {
        return Err(ProviderError::malformed_response(
            LABEL,
            "no embeddings in the answer",
        ));
    }
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| json!({"embedding": embedding, "index": index, "object": "embedding"}))
        .collect();
    let tokens = prompt_tokens.unwrap_or(0);
    let out = json!({
        "model": model_id,
        "data": data,
        "object": "list",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    let usage = prompt_tokens.map(|p| Usage {
        prompt_tokens: p,
        completion_tokens: 0,
    });
    Ok((Bytes::from(out.to_string()), usage))
}
