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
//! - Embeddings: an object is the whole response (`model`, `object` and `usage` filled in); an
//!   array of numbers is the embedding of every input; anything else gives a small
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
            .body()
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
                // No text after the marker: the stream fails before its first chunk.
                chunks: if partial.is_empty() {
                    Vec::new()
                } else {
                    answer.content_chunks(partial)
                },
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
    let mut defaults = Map::new();
    defaults.insert("id".to_string(), json!(answer.id));
    defaults.insert("created".to_string(), json!(answer.created));
    defaults.insert("model".to_string(), json!(answer.model));
    defaults.insert("object".to_string(), json!(object));
    with_defaults(defaults, whole)
}

/// `whole` over `defaults` (fields keep the defaults' order, new ones follow), with zero usage
/// when it has none, as LiteLLM's response types default it.
fn with_defaults(mut body: Map<String, Value>, whole: &Map<String, Value>) -> MockOutcome {
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
    if let Value::Object(whole) = mock {
        let mut defaults = Map::new();
        defaults.insert("model".to_string(), json!(model));
        defaults.insert("object".to_string(), json!("list"));
        return with_defaults(defaults, whole);
    }
    let given: Option<&Vec<Value>> = mock
        .as_array()
        .filter(|values| !values.is_empty() && values.iter().all(Value::is_number));
    let dimensions = request
        .body()
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(8)
        .clamp(1, 4096);
    let data: Vec<Value> = embedding_inputs(request.body().get("input"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::params::prepare;

    fn request(body: Value) -> PreparedRequest {
        match body {
            Value::Object(map) => prepare(map, &Map::new()),
            other => unreachable!("not an object: {other}"),
        }
    }

    fn chat(extra: Value) -> PreparedRequest {
        let mut body =
            json!({"model": "my-group", "messages": [{"role": "user", "content": "hi"}]});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        request(body)
    }

    fn run(endpoint: Endpoint, mock: Value, model: &str, req: &PreparedRequest) -> MockOutcome {
        respond(endpoint, &mock, model, req, "chatcmpl-mock", 1700000000)
    }

    fn text(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    fn texts(chunks: &[Bytes]) -> Vec<&str> {
        chunks.iter().map(text).collect()
    }

    fn error_of(outcome: MockOutcome) -> ProviderError {
        match outcome {
            MockOutcome::Error(e) => e,
            other => unreachable!("not an error: {other:?}"),
        }
    }

    #[test]
    fn a_string_is_a_chat_completion_with_fixed_usage() {
        let out = run(
            Endpoint::ChatCompletions,
            json!("Hello world!"),
            "openai/facebook/opt-125m",
            &chat(json!({})),
        );
        let MockOutcome::Response { body, usage } = out else {
            unreachable!("{out:?}")
        };
        assert_eq!(
            text(&body),
            r#"{"id":"chatcmpl-mock","created":1700000000,"model":"facebook/opt-125m","object":"chat.completion","system_fingerprint":null,"choices":[{"finish_reason":"stop","index":0,"message":{"content":"Hello world!","role":"assistant","tool_calls":null,"function_call":null}}],"usage":{"completion_tokens":20,"prompt_tokens":10,"total_tokens":30}}"#
        );
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 10,
                completion_tokens: 20
            }
        );
    }

    #[test]
    fn n_gives_that_many_choices() {
        let out = run(
            Endpoint::ChatCompletions,
            json!("ok"),
            "gpt-4o",
            &chat(json!({"n": 2})),
        );
        let MockOutcome::Response { body, .. } = out else {
            unreachable!("{out:?}")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["choices"][1]["index"], json!(1));
        assert_eq!(v["choices"][1]["message"]["content"], json!("ok"));
        assert_eq!(v["model"], json!("gpt-4o"));
    }

    #[test]
    fn a_stream_is_cut_in_three_character_deltas() {
        let req = chat(json!({"stream": true, "stream_options": {"include_usage": true}}));
        let out = run(
            Endpoint::ChatCompletions,
            json!("Hello world!"),
            "openai/gpt-4o",
            &req,
        );
        let MockOutcome::Stream { chunks, usage } = out else {
            unreachable!("{out:?}")
        };
        let head = r#"{"id":"chatcmpl-mock","created":1700000000,"model":"gpt-4o","object":"chat.completion.chunk","#;
        assert_eq!(
            texts(&chunks),
            vec![
                format!(
                    r#"{head}"choices":[{{"index":0,"delta":{{"content":"Hel","role":"assistant"}}}}]}}"#
                ),
                format!(r#"{head}"choices":[{{"index":0,"delta":{{"content":"lo "}}}}]}}"#),
                format!(r#"{head}"choices":[{{"index":0,"delta":{{"content":"wor"}}}}]}}"#),
                format!(r#"{head}"choices":[{{"index":0,"delta":{{"content":"ld!"}}}}]}}"#),
                format!(r#"{head}"choices":[{{"finish_reason":"stop","index":0,"delta":{{}}}}]}}"#),
                format!(
                    r#"{head}"choices":[{{"index":0,"delta":{{}}}}],"usage":{{"completion_tokens":20,"prompt_tokens":10,"total_tokens":30}}}}"#
                ),
            ]
        );
        assert_eq!(usage, MOCK_USAGE);
    }

    #[test]
    fn without_include_usage_no_usage_chunk_is_sent_and_multibyte_text_splits_by_character() {
        let out = run(
            Endpoint::ChatCompletions,
            json!("héllo→ok"),
            "gpt-4o",
            &chat(json!({"stream": true})),
        );
        let MockOutcome::Stream { chunks, usage } = out else {
            unreachable!("{out:?}")
        };
        let deltas: Vec<Value> = chunks
            .iter()
            .map(|c| serde_json::from_slice::<Value>(c).unwrap()["choices"][0]["delta"].clone())
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!({"content": "hél", "role": "assistant"}),
                json!({"content": "lo→"}),
                json!({"content": "ok"}),
                json!({}),
            ]
        );
        assert_eq!(usage, MOCK_USAGE);
    }

    #[test]
    fn text_completions_use_the_text_completion_shape() {
        let req = request(json!({"model": "g", "prompt": "hi"}));
        let out = run(
            Endpoint::Completions,
            json!("Hello"),
            "text-completion-openai/gpt-3.5-turbo-instruct",
            &req,
        );
        let MockOutcome::Response { body, .. } = out else {
            unreachable!("{out:?}")
        };
        assert_eq!(
            text(&body),
            r#"{"id":"chatcmpl-mock","object":"text_completion","created":1700000000,"model":"gpt-3.5-turbo-instruct","choices":[{"finish_reason":"stop","index":0,"text":"Hello","logprobs":null}],"usage":{"completion_tokens":20,"prompt_tokens":10,"total_tokens":30}}"#
        );

        let req = request(
            json!({"model": "g", "prompt": "hi", "stream": true, "stream_options": {"include_usage": true}}),
        );
        let out = run(
            Endpoint::Completions,
            json!("Hello"),
            "gpt-3.5-turbo-instruct",
            &req,
        );
        let MockOutcome::Stream { chunks, .. } = out else {
            unreachable!("{out:?}")
        };
        let head = r#"{"id":"chatcmpl-mock","object":"text_completion","created":1700000000,"model":"gpt-3.5-turbo-instruct","#;
        assert_eq!(
            texts(&chunks),
            vec![
                format!(r#"{head}"choices":[{{"index":0,"text":"Hel"}}]}}"#),
                format!(r#"{head}"choices":[{{"index":0,"text":"lo"}}]}}"#),
                format!(r#"{head}"choices":[{{"finish_reason":"stop","index":0,"text":""}}]}}"#),
                format!(
                    r#"{head}"choices":[],"usage":{{"completion_tokens":20,"prompt_tokens":10,"total_tokens":30}}}}"#
                ),
            ]
        );
    }

    #[test]
    fn special_strings_fail_like_litellm() {
        let req = chat(json!({}));
        let e = error_of(run(
            Endpoint::ChatCompletions,
            json!("litellm.RateLimitError"),
            "openai/gpt-4o",
            &req,
        ));
        assert_eq!((e.class, e.status), (ErrorClass::RateLimit, 429));
        assert_eq!(
            e.message,
            "litellm.RateLimitError: this is a mock rate limit error"
        );
        assert_eq!(e.error_type.as_deref(), Some("throttling_error"));

        let e = error_of(run(
            Endpoint::ChatCompletions,
            json!("litellm.ContextWindowExceededError"),
            "gpt-4o",
            &req,
        ));
        assert_eq!(
            (e.class, e.status),
            (ErrorClass::ContextWindowExceeded, 400)
        );
        assert_eq!(
            e.message,
            "litellm.ContextWindowExceededError: litellm.BadRequestError: this is a mock context window exceeded error"
        );

        let e = error_of(run(
            Endpoint::Completions,
            json!("litellm.InternalServerError"),
            "gpt-4o",
            &req,
        ));
        assert_eq!((e.class, e.status), (ErrorClass::ServerError, 500));
        assert_eq!(
            e.message,
            "litellm.InternalServerError: this is a mock internal server error"
        );

        let e = error_of(run(
            Endpoint::ChatCompletions,
            json!("Exception: content_filter_policy hit"),
            "azure/gpt-4o-dep",
            &req,
        ));
        assert_eq!((e.class, e.status), (ErrorClass::ContentPolicy, 400));
        assert_eq!(
            e.message,
            "litellm.ContentPolicyViolationError: ContentPolicyViolationError: AzureException - litellm.MockException: Exception: content_filter_policy hit"
        );
    }

    #[test]
    fn the_streaming_error_fails_a_stream_after_the_text_that_follows_it() {
        let req = chat(json!({"stream": true}));
        let out = run(
            Endpoint::ChatCompletions,
            json!("Exception: mock_streaming_error"),
            "openai/gpt-4o",
            &req,
        );
        let MockOutcome::StreamError { chunks, error } = out else {
            unreachable!("{out:?}")
        };
        assert!(
            chunks.is_empty(),
            "the bare marker fails before the first chunk"
        );
        assert_eq!((error.class, error.status), (ErrorClass::ServerError, 503));
        assert_eq!(
            error.message,
            "litellm.ServiceUnavailableError: litellm.MidStreamFallbackError: litellm.APIError: APIError: OpenAIException - litellm.MockException: This is a mock error raised mid-stream"
        );

        let out = run(
            Endpoint::ChatCompletions,
            json!("Exception: mock_streaming_error: partial answer"),
            "gpt-4o",
            &req,
        );
        let MockOutcome::StreamError { chunks, .. } = out else {
            unreachable!("{out:?}")
        };
        let content: String = chunks
            .iter()
            .map(|c| {
                serde_json::from_slice::<Value>(c).unwrap()["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(content, "partial answer");

        let e = error_of(run(
            Endpoint::ChatCompletions,
            json!("Exception: mock_streaming_error"),
            "gpt-4o",
            &chat(json!({})),
        ));
        assert_eq!((e.class, e.status), (ErrorClass::ServerError, 529));
        assert_eq!(
            e.message,
            "litellm.APIError: APIError: OpenAIException - litellm.MockException: This is a mock error raised mid-stream"
        );
    }

    #[test]
    fn an_object_is_the_whole_response_with_defaults_filled_in() {
        let mock = json!({"choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": "length", "index": 0}], "model": "zz", "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}});
        let out = run(
            Endpoint::ChatCompletions,
            mock.clone(),
            "openai/gpt-4o",
            &chat(json!({})),
        );
        let MockOutcome::Response { body, usage } = out else {
            unreachable!("{out:?}")
        };
        assert_eq!(
            text(&body),
            r#"{"id":"chatcmpl-mock","created":1700000000,"model":"zz","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"x"},"finish_reason":"length","index":0}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#
        );
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 3,
                completion_tokens: 4
            }
        );

        let out = run(
            Endpoint::ChatCompletions,
            json!({"choices": []}),
            "gpt-4o",
            &chat(json!({})),
        );
        let MockOutcome::Response { body, usage } = out else {
            unreachable!("{out:?}")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["usage"],
            json!({"completion_tokens": 0, "prompt_tokens": 0, "total_tokens": 0})
        );
        assert_eq!(usage, Usage::default());

        let req = chat(json!({"stream": true, "stream_options": {"include_usage": true}}));
        let out = run(Endpoint::ChatCompletions, mock, "gpt-4o", &req);
        let MockOutcome::Stream { chunks, usage } = out else {
            unreachable!("{out:?}")
        };
        assert_eq!(
            texts(&chunks),
            vec![
                r#"{"id":"chatcmpl-mock","created":1700000000,"model":"zz","object":"chat.completion.chunk","choices":[{"finish_reason":"length","index":0,"delta":{"role":"assistant","content":"x"}}]}"#,
                r#"{"id":"chatcmpl-mock","created":1700000000,"model":"zz","object":"chat.completion.chunk","choices":[{"index":0,"delta":{}}],"usage":{"completion_tokens":4,"prompt_tokens":3,"total_tokens":7}}"#,
            ]
        );
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 3,
                completion_tokens: 4
            }
        );
    }

    #[test]
    fn null_and_non_string_mocks_still_answer() {
        let out = run(
            Endpoint::ChatCompletions,
            Value::Null,
            "gpt-4o",
            &chat(json!({})),
        );
        let MockOutcome::Response { body, .. } = out else {
            unreachable!("{out:?}")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            json!("This is a mock request")
        );
        let out = run(
            Endpoint::ChatCompletions,
            json!(42),
            "gpt-4o",
            &chat(json!({})),
        );
        let MockOutcome::Response { body, .. } = out else {
            unreachable!("{out:?}")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], json!("42"));
    }

    #[test]
    fn embeddings_are_deterministic_one_per_input() {
        let req = request(json!({"model": "emb", "input": ["a", "b"]}));
        let first = run(
            Endpoint::Embeddings,
            json!("hi"),
            "openai/text-embedding-3-small",
            &req,
        );
        assert_eq!(
            first,
            run(
                Endpoint::Embeddings,
                json!("hi"),
                "openai/text-embedding-3-small",
                &req
            )
        );
        let MockOutcome::Response { body, usage } = first else {
            unreachable!("{first:?}")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["object"], json!("list"));
        assert_eq!(v["model"], json!("text-embedding-3-small"));
        assert_eq!(v["usage"], json!({"prompt_tokens": 10, "total_tokens": 10}));
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[1]["index"], json!(1));
        assert_eq!(data[1]["object"], json!("embedding"));
        let a = data[0]["embedding"].as_array().unwrap();
        assert_eq!(a.len(), 8);
        assert!(a
            .iter()
            .all(|x| x.as_f64().is_some_and(|x| (-1.0..=1.0).contains(&x))));
        assert_ne!(data[0]["embedding"], data[1]["embedding"]);
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 10,
                completion_tokens: 0
            }
        );

        let req = request(json!({"model": "emb", "input": [1, 2, 3], "dimensions": 3}));
        let out = run(
            Endpoint::Embeddings,
            json!("hi"),
            "text-embedding-3-small",
            &req,
        );
        let MockOutcome::Response { body, .. } = out else {
            unreachable!("{out:?}")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["data"].as_array().unwrap().len(),
            1,
            "a token list is one input"
        );
        assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn an_embedding_mock_vector_is_used_and_error_fails() {
        let req = request(json!({"model": "emb", "input": "a"}));
        let out = run(
            Endpoint::Embeddings,
            json!([0.1, 0.2]),
            "text-embedding-3-small",
            &req,
        );
        let MockOutcome::Response { body, .. } = out else {
            unreachable!("{out:?}")
        };
        assert_eq!(
            text(&body),
            r#"{"model":"text-embedding-3-small","data":[{"embedding":[0.1,0.2],"index":0,"object":"embedding"}],"object":"list","usage":{"prompt_tokens":10,"total_tokens":10}}"#
        );
        let whole = json!({"data": [{"embedding": [1], "index": 0, "object": "embedding"}], "usage": {"prompt_tokens": 2, "total_tokens": 2}});
        let out = run(Endpoint::Embeddings, whole, "azure/emb-dep", &req);
        let MockOutcome::Response { body, usage } = out else {
            unreachable!("{out:?}")
        };
        assert_eq!(
            text(&body),
            r#"{"model":"emb-dep","object":"list","data":[{"embedding":[1],"index":0,"object":"embedding"}],"usage":{"prompt_tokens":2,"total_tokens":2}}"#
        );
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 2,
                completion_tokens: 0
            }
        );
        let e = error_of(run(
            Endpoint::Embeddings,
            json!("error"),
            "text-embedding-3-small",
            &req,
        ));
        assert_eq!((e.class, e.status), (ErrorClass::ServerError, 500));
        let e = error_of(run(
            Endpoint::Embeddings,
            json!("litellm.RateLimitError"),
            "text-embedding-3-small",
            &req,
        ));
        assert_eq!(e.class, ErrorClass::RateLimit);
    }

    #[test]
    fn provider_labels_follow_litellm() {
        assert_eq!(provider_label(Some("openai")), "OpenAI");
        assert_eq!(provider_label(Some("azure")), "Azure");
        assert_eq!(provider_label(Some("hosted_vllm")), "Hosted_vllm");
        assert_eq!(provider_label(None), "OpenAI");
    }
}
