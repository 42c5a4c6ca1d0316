//! LiteLLM's `mock_response` (`main.py::mock_completion`, `mock_embedding`): an answer made up
//! by the proxy, with no upstream call, in the shapes LiteLLM's proxy sends.
//!
//! - A string is the answer's content: a `chat.completion` (or `text_completion`) with
//!   `finish_reason: "stop"` and usage 10 prompt / 20 completion / 30 total tokens.
//! - Streamed, the content goes out in 3-character deltas (the first carries `role: assistant`),
//!   then a chunk with an empty delta and `finish_reason: "stop"`, then, with
//!   `stream_options.include_usage`, a usage chunk. Chunks share one `id` and `created`.
//! - `"litellm.RateLimitError"`, `"litellm.ContextWindowExceededError"`,
//!   `"litellm.InternalServerError"` and `"Exception: content_filter_policy…"` fail the call with
//!   the error LiteLLM raises for them.
//! - `"Exception: mock_streaming_error…"` fails a stream: any text after the marker is streamed
//!   first, so `"Exception: mock_streaming_error: partial answer"` fails mid-way and the bare
//!   marker fails before the first chunk, as in LiteLLM. Without `stream` the call fails at once.
//! - An object is the whole response; missing `id`, `created`, `model`, `object` and `usage` are
//!   filled in. Streamed, it becomes one chunk whose deltas are its messages.
//! - Embeddings: an array of numbers is the embedding of every input; anything else gives a small
//!   deterministic vector per input (8 numbers, or `dimensions`), derived from the input's text.
//!   `"error"` fails the call.

use bytes::Bytes;
use llm_proxy_actors::ErrorClass;
use serde_json::{json, Map, Value};

use super::{infer_provider, split_provider, Endpoint, PreparedRequest, ProviderError, Usage};

/// What the proxy answers for a mocked call.
#[derive(Clone, Debug, PartialEq)]
pub enum MockOutcome {
    /// A whole JSON body: `chat.completion`, `text_completion` or an embedding `list`.
    Response { body: Bytes, usage: Usage },
    /// Chunk JSONs (without `data: ` framing) to send in order, then `[DONE]`.
    Stream { chunks: Vec<Bytes>, usage: Usage },
    /// Chunk JSONs to send in order, after which the stream fails with `error`. With no chunks
    /// the failure comes before the first byte, so the caller may still retry or fall back.
    StreamError {
        chunks: Vec<Bytes>,
        error: ProviderError,
    },
    /// The call fails before any answer.
    Error(ProviderError),
}

/// LiteLLM's `DEFAULT_MOCK_RESPONSE_PROMPT_TOKEN_COUNT` / `..._COMPLETION_...`.
pub const MOCK_USAGE: Usage = Usage {
    prompt_tokens: 10,
    completion_tokens: 20,
};

/// LiteLLM's content when `mock_response` is null.
const DEFAULT_CONTENT: &str = "This is a mock request";

const STREAMING_ERROR_MARKER: &str = "Exception: mock_streaming_error";

/// The answer to a call whose `mock_response` is `mock`.
///
/// `model` is the deployment's litellm model (`openai/gpt-4o`, `azure/my-deployment`); responses
/// report it without its provider prefix, as LiteLLM does. `id` and `created` are used for the
/// response and every chunk. `request` supplies `stream`, `include_usage`, `n`, `input` and
/// `dimensions`. Pure: the same arguments give the same bytes.
pub fn respond(
    endpoint: Endpoint,
    mock: &Value,
    model: &str,
    request: &PreparedRequest,
    id: &str,
    created: u64,
) -> MockOutcome {
    let (provider, reported) = split_provider(model);
    let label = provider_label(provider.or_else(|| infer_provider(reported)));
    if let Value::String(text) = mock {
        if let Some(outcome) =
            special_string(endpoint, text, &label, reported, request, id, created)
        {
            return outcome;
        }
    }
    if endpoint == Endpoint::Embeddings {
        return embedding(mock, reported, request);
    }
    let answer = Answer {
        endpoint,
        id,
        created,
        model: reported,
        choices: request
            .body
            .get("n")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 128),
    };
    match mock {
        Value::Object(whole) if request.stream => {
            whole_as_stream(&answer, whole, request.include_usage)
        }
        Value::Object(whole) => whole_response(&answer, whole),
        Value::String(text) => answer.text(text, request),
        Value::Null => answer.text(DEFAULT_CONTENT, request),
        other => answer.text(&other.to_string(), request),
    }
}

/// The `{label}Exception` name LiteLLM gives a provider: `OpenAI`, else the name capitalised.
fn provider_label(provider: Option<&str>) -> String {
    match provider {
        None | Some("openai") => "OpenAI".to_string(),
        Some(name) => {
            let mut chars = name.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        }
    }
}

fn special_string(
    endpoint: Endpoint,
    text: &str,
    label: &str,
    model: &str,
    request: &PreparedRequest,
    id: &str,
    created: u64,
) -> Option<MockOutcome> {
    let error = match text {
        "litellm.RateLimitError" => {
            let mut e = ProviderError::new(
                ErrorClass::RateLimit,
                429,
                "litellm.RateLimitError: this is a mock rate limit error",
            );
            e.error_type = Some("throttling_error".to_string());
            e
        }
        "litellm.ContextWindowExceededError" => ProviderError::new(
            ErrorClass::ContextWindowExceeded,
            400,
            "litellm.ContextWindowExceededError: litellm.BadRequestError: this is a mock context window exceeded error",
        ),
        "litellm.InternalServerError" => ProviderError::new(
            ErrorClass::ServerError,
            500,
            "litellm.InternalServerError: this is a mock internal server error",
        ),
        "error" if endpoint == Endpoint::Embeddings => {
            ProviderError::new(ErrorClass::ServerError, 500, "litellm.InternalServerError: Mock error")
        }
        t if t.starts_with("Exception: content_filter_policy") => {
            // LiteLLM raises a 400 MockException that only its Azure mapping reads as a content
            // policy violation; the text says content_filter_policy, so it is one for every provider.
            ProviderError::from_upstream(label, 400, &format!("litellm.MockException: {t}"), None, None, None)
        }
        t if t.starts_with(STREAMING_ERROR_MARKER) => {
            if !request.stream {
                return Some(MockOutcome::Error(ProviderError::from_upstream(
                    label,
                    529,
                    "litellm.MockException: This is a mock error raised mid-stream",
                    None,
                    None,
                    None,
                )));
            }
            let partial = t[STREAMING_ERROR_MARKER.len()..].trim_start_matches([':', ' ']);
            let answer = Answer {
                endpoint,
                id,
                created,
                model,
                choices: 1,
            };
            let error = ProviderError::new(
                ErrorClass::ServerError,
                503,
                format!(
                    "litellm.ServiceUnavailableError: litellm.MidStreamFallbackError: litellm.APIError: APIError: {label}Exception - litellm.MockException: This is a mock error raised mid-stream"
                ),
            );
            return Some(MockOutcome::StreamError {
                chunks: answer.content_chunks(partial),
                error,
            });
        }
        _ => return None,
    };
    Some(MockOutcome::Error(error))
}

/// The facts every chat or text completion answer shares.
struct Answer<'a> {
    endpoint: Endpoint,
    id: &'a str,
    created: u64,
    model: &'a str,
    choices: u64,
}

impl Answer<'_> {
    fn chat(&self) -> bool {
        self.endpoint == Endpoint::ChatCompletions
    }

    fn text(&self, content: &str, request: &PreparedRequest) -> MockOutcome {
        if !request.stream {
            return MockOutcome::Response {
                body: self.whole(content),
                usage: MOCK_USAGE,
            };
        }
        let mut chunks = self.content_chunks(content);
        chunks.push(self.finish_chunk());
        if request.include_usage {
            chunks.push(self.usage_chunk(MOCK_USAGE));
        }
        MockOutcome::Stream {
            chunks,
            usage: MOCK_USAGE,
        }
    }

    fn whole(&self, content: &str) -> Bytes {
        let usage = usage_json(MOCK_USAGE);
        let body = if self.chat() {
            let choices: Vec<Value> = (0..self.choices)
                .map(|i| {
                    json!({"finish_reason": "stop", "index": i, "message": {
                        "content": content, "role": "assistant", "tool_calls": null, "function_call": null
                    }})
                })
                .collect();
            json!({
                "id": self.id, "created": self.created, "model": self.model, "object": "chat.completion",
                "system_fingerprint": null, "choices": choices, "usage": usage
            })
        } else {
            let choices: Vec<Value> = (0..self.choices)
                .map(|i| json!({"finish_reason": "stop", "index": i, "text": content, "logprobs": null}))
                .collect();
            json!({
                "id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": choices, "usage": usage
            })
        };
        Bytes::from(body.to_string())
    }

    /// `content` cut into 3-character pieces, one chunk each; the first chat delta carries the
    /// role. Empty content still yields one chunk, so the role is sent.
    fn content_chunks(&self, content: &str) -> Vec<Bytes> {
        let chars: Vec<char> = content.chars().collect();
        let mut pieces: Vec<String> = chars.chunks(3).map(|c| c.iter().collect()).collect();
        if pieces.is_empty() {
            pieces.push(String::new());
        }
        pieces
            .iter()
            .enumerate()
            .map(|(n, piece)| {
                let choices: Vec<Value> = (0..self.choices)
                    .map(|i| {
                        if !self.chat() {
                            json!({"index": i, "text": piece})
                        } else if n == 0 {
                            json!({"index": i, "delta": {"content": piece, "role": "assistant"}})
                        } else {
                            json!({"index": i, "delta": {"content": piece}})
                        }
                    })
                    .collect();
                self.chunk(choices, None)
            })
            .collect()
    }

    fn finish_chunk(&self) -> Bytes {
        let choices: Vec<Value> = (0..self.choices)
            .map(|i| {
                if self.chat() {
                    json!({"finish_reason": "stop", "index": i, "delta": {}})
                } else {
                    json!({"finish_reason": "stop", "index": i, "text": ""})
                }
            })
            .collect();
        self.chunk(choices, None)
    }

    fn usage_chunk(&self, usage: Usage) -> Bytes {
        let choices = if self.chat() {
            vec![json!({"index": 0, "delta": {}})]
        } else {
            Vec::new()
        };
        self.chunk(choices, Some(usage))
    }

    fn chunk(&self, choices: Vec<Value>, usage: Option<Usage>) -> Bytes {
        let mut chunk = if self.chat() {
            json!({"id": self.id, "created": self.created, "model": self.model, "object": "chat.completion.chunk", "choices": choices})
        } else {
            json!({"id": self.id, "object": "text_completion", "created": self.created, "model": self.model, "choices": choices})
        };
        if let (Some(usage), Value::Object(map)) = (usage, &mut chunk) {
            map.insert("usage".to_string(), usage_json(usage));
        }
        Bytes::from(chunk.to_string())
    }
}

fn usage_json(usage: Usage) -> Value {
    json!({
        "completion_tokens": usage.completion_tokens,
        "prompt_tokens": usage.prompt_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens
    })
}

fn usage_of(whole: &Map<String, Value>) -> Usage {
    let count = |key: &str| {
        whole
            .get("usage")
            .and_then(|u| u.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Usage {
        prompt_tokens: count("prompt_tokens"),
        completion_tokens: count("completion_tokens"),
    }
}

/// A mock object as the whole response, with LiteLLM's defaults for the fields it leaves out.
fn whole_response(answer: &Answer<'_>, whole: &Map<String, Value>) -> MockOutcome {
    let object = if answer.chat() {
        "chat.completion"
    } else {
        "text_completion"
    };
    let mut body = Map::new();
    body.insert("id".to_string(), json!(answer.id));
    body.insert("created".to_string(), json!(answer.created));
    body.insert("model".to_string(), json!(answer.model));
    body.insert("object".to_string(), json!(object));
    for (k, v) in whole {
        body.insert(k.clone(), v.clone());
    }
    let usage = usage_of(whole);
    body.entry("usage").or_insert_with(|| usage_json(usage));
    MockOutcome::Response {
        body: Bytes::from(Value::Object(body).to_string()),
        usage,
    }
}

/// A mock object streamed: one chunk whose deltas are its choices' messages, each with its
/// finish reason (LiteLLM's `convert_model_response_to_streaming`), then the usage chunk.
fn whole_as_stream(
    answer: &Answer<'_>,
    whole: &Map<String, Value>,
    include_usage: bool,
) -> MockOutcome {
    let id = whole.get("id").and_then(Value::as_str).unwrap_or(answer.id);
    let created = whole
        .get("created")
        .and_then(Value::as_u64)
        .unwrap_or(answer.created);
    let model = whole
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(answer.model);
    let answer = Answer {
        endpoint: answer.endpoint,
        id,
        created,
        model,
        choices: answer.choices,
    };
    let choices: Vec<Value> = whole
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, choice)| {
            let index = choice.get("index").cloned().unwrap_or_else(|| json!(i));
            let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
            if answer.chat() {
                let delta = choice
                    .get("message")
                    .or_else(|| choice.get("delta"))
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                json!({"finish_reason": finish, "index": index, "delta": delta})
            } else {
                let text = choice.get("text").cloned().unwrap_or_else(|| json!(""));
                json!({"finish_reason": finish, "index": index, "text": text})
            }
        })
        .collect();
    let usage = usage_of(whole);
    let mut chunks = vec![answer.chunk(choices, None)];
    if include_usage {
        chunks.push(answer.usage_chunk(usage));
    }
    MockOutcome::Stream { chunks, usage }
}

/// An embedding list with one entry per input.
fn embedding(mock: &Value, model: &str, request: &PreparedRequest) -> MockOutcome {
    let given: Option<&Vec<Value>> = mock
        .as_array()
        .filter(|values| !values.is_empty() && values.iter().all(Value::is_number));
    let dimensions = request
        .body
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(8)
        .clamp(1, 4096);
    let data: Vec<Value> = embedding_inputs(request.body.get("input"))
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let vector = match given {
                Some(values) => Value::Array(values.clone()),
                None => deterministic_vector(input, dimensions),
            };
            json!({"embedding": vector, "index": i, "object": "embedding"})
        })
        .collect();
    let usage = Usage {
        prompt_tokens: MOCK_USAGE.prompt_tokens,
        completion_tokens: 0,
    };
    let body = json!({
        "model": model, "data": data, "object": "list",
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
    });
    MockOutcome::Response {
        body: Bytes::from(body.to_string()),
        usage,
    }
}

/// The inputs of an embedding request, as text: a string, a list of strings, one token list, or
/// a list of token lists.
fn embedding_inputs(input: Option<&Value>) -> Vec<String> {
    match input {
        Some(Value::Array(items)) if !items.is_empty() && !items.iter().all(Value::is_number) => {
            items.iter().map(|item| item.to_string()).collect()
        }
        Some(other) => vec![other.to_string()],
        None => vec![String::new()],
    }
}

/// Values in [-1, 1] with three decimals, from a xorshift generator seeded with the input's
/// FNV-1a hash: the same input always gets the same vector, different inputs differ.
fn deterministic_vector(input: &str, dimensions: u64) -> Value {
    let mut state = input.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    if state == 0 {
        state = 1;
    }
    let values: Vec<Value> = (0..dimensions)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let milli = i64::try_from((state >> 11) % 2001).unwrap_or(0) - 1000;
            json!(milli as f64 / 1000.0)
        })
        .collect();
    Value::Array(values)
}
