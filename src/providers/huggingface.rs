//! Hugging Face: `huggingface/<repo>` against a TGI server or Inference Endpoint (`api_base`) or
//! the Hugging Face router.
//!
//! By default this is OpenAI chat (TGI's Messages API), as LiteLLM speaks it: the request goes
//! out as the client sent it with `model` set to the repo id, and the answer comes back
//! OpenAI-shaped. When the deployment sets a custom prompt template (LiteLLM's documented
//! `initial_prompt_value` / `roles` / `final_prompt_value` / `bos_token` / `eos_token`), the
//! prompt is built here and sent to TGI's `/generate` (`/generate_stream`), which LiteLLM no
//! longer does.

use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use bytes::Bytes;
use llm_proxy_actors::ErrorClass;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::ollama::{
    completion_response, embedding_list, error_text, finish_reason, is_openai_param,
    openai_params_in_order, shape_of, stream_event, Answer, ChunkWriter, Shape,
};
use super::openai::{passthrough, upstream_error, OpenAiStream};
use super::outgoing::{FixedHeaders, UpstreamUrl};
use super::prompt_template::{content_text, PromptTemplate};
use super::sse::SseSplitter;
use super::{
    Endpoint, ParsedResponse, PreparedRequest, ProviderAdapter, ProviderError, RequestContext,
    StreamContext, StreamDecoder, StreamEvent, UpstreamRequest, UpstreamResponse, Usage,
};

const LABEL: &str = "Huggingface";
const ROUTER: &str = "https://router.huggingface.co";

/// TGI `parameters` a deployment may set in `litellm_params`.
const TGI_PARAMS: &[&str] = &[
    "adapter_id",
    "best_of",
    "decoder_input_details",
    "details",
    "do_sample",
    "frequency_penalty",
    "grammar",
    "max_new_tokens",
    "repetition_penalty",
    "return_full_text",
    "seed",
    "stop",
    "temperature",
    "top_k",
    "top_n_tokens",
    "top_p",
    "truncate",
    "typical_p",
    "watermark",
];

/// Inference API `options` (outside `parameters`).
const TGI_OPTIONS: &[&str] = &["use_cache", "wait_for_model"];

/// One Hugging Face deployment.
#[derive(Debug)]
pub struct HuggingFaceAdapter {
    /// The `model` sent upstream: the repo id (or, for `<provider>/<org>/<model>`, `<org>/<model>`).
    model: String,
    chat_url: UpstreamUrl,
    embed_url: UpstreamUrl,
    /// What `x-litellm-model-api-base` reports.
    api_base: String,
    /// Content type and, with a key, auth.
    headers: FixedHeaders,
    /// Set when the deployment has a custom prompt template: the prompt goes to TGI `/generate`.
    tgi: Option<Tgi>,
}

#[derive(Debug)]
struct Tgi {
    /// `/generate` and `/generate_stream` on the server root.
    generate_url: UpstreamUrl,
    generate_stream_url: UpstreamUrl,
    template: PromptTemplate,
    /// TGI parameters the deployment sets; request values win.
    parameters: Map<String, Value>,
}

impl HuggingFaceAdapter {
    /// `model` is the part after `huggingface/`. Reads `HF_TOKEN` / `HUGGINGFACE_API_KEY` and
    /// `HF_API_BASE` / `HUGGINGFACE_API_BASE` from the environment.
    pub fn new(
        model: &str,
        params: &Map<String, Value>,
    ) -> Result<HuggingFaceAdapter, ProviderError> {
        HuggingFaceAdapter::with_env(model, params, |name| std::env::var(name).ok())
    }

    /// [`HuggingFaceAdapter::new`] with the environment passed in.
    pub fn with_env(
        model: &str,
        params: &Map<String, Value>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<HuggingFaceAdapter, ProviderError> {
        let env = |name: &str| env(name).filter(|s| !s.is_empty());
        let param = |key: &str| {
            params
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let api_key = param("api_key")
            .or_else(|| env("HF_TOKEN"))
            .or_else(|| env("HUGGINGFACE_API_KEY"));
        let api_base = param("api_base").map(|b| b.trim_end_matches('/').to_string());
        let env_base = env("HF_API_BASE")
            .or_else(|| env("HUGGINGFACE_API_BASE"))
            .map(|b| b.trim_end_matches('/').to_string());
        let model_url = (model.starts_with("http://") || model.starts_with("https://"))
            .then(|| model.to_string());

        let mut sent_model = model.to_string();
        let chat_url = if let Some(base) = &api_base {
            chat_completions_url(base)
        } else if let Some(base) = &env_base {
            // LiteLLM takes the environment's base as the complete URL.
            base.clone()
        } else if let Some(url) = &model_url {
            chat_completions_url(url)
        } else {
            match model.split_once('/') {
                Some((provider, rest)) if rest.contains('/') => {
                    sent_model = rest.to_string();
                    router_provider_url(provider, rest)
                }
                _ => format!("{ROUTER}/v1/chat/completions"),
            }
        };
        let embed_url = api_base
            .clone()
            .or_else(|| model_url.clone())
            .or_else(|| env_base.clone())
            .unwrap_or_else(|| {
                format!("{ROUTER}/hf-inference/pipeline/feature-extraction/{model}")
            });
        let server = api_base
            .clone()
            .or_else(|| model_url.clone())
            .or_else(|| env_base.clone());
        let reported = server.clone().unwrap_or_else(|| ROUTER.to_string());

        let tgi = match PromptTemplate::from_params(params, &format!("huggingface/{model}"))? {
            None => None,
            Some(template) => {
                let Some(server) = server else {
                    return Err(ProviderError::invalid_config(format!(
                        "model=huggingface/{model} sets a custom prompt template, which is sent to a TGI server's /generate; set `api_base` to the TGI server or Inference Endpoint"
                    )));
                };
                let parameters = params
                    .iter()
                    .filter(|(k, v)| {
                        !v.is_null()
                            && (TGI_PARAMS.contains(&k.as_str())
                                || TGI_OPTIONS.contains(&k.as_str()))
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let root = server_root(&server);
                Some(Tgi {
                    generate_url: UpstreamUrl::new(format!("{root}/generate")),
                    generate_stream_url: UpstreamUrl::new(format!("{root}/generate_stream")),
                    template,
                    parameters,
                })
            }
        };
        let mut headers = FixedHeaders::default()
            .with(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &api_key {
            headers = headers.with_text(AUTHORIZATION, &format!("Bearer {key}"));
        }
        Ok(HuggingFaceAdapter {
            model: sent_model,
            chat_url: UpstreamUrl::new(chat_url),
            embed_url: UpstreamUrl::new(embed_url),
            api_base: reported,
            headers,
            tgi,
        })
    }

    /// OpenAI chat body: the client's body with `model` set to the repo id (no LiteLLM fields:
    /// LiteLLM leaks `max_retries` here). `/completions` becomes one user message.
    fn chat_body(
        &self,
        endpoint: Endpoint,
        request: &PreparedRequest,
    ) -> Result<Bytes, ProviderError> {
        if endpoint != Endpoint::Completions {
            return Ok(request.json_with_model(&self.model));
        }
        let body = request.body();
        let prompt = completion_prompt(body)?;
        let mut out = Map::new();
        out.insert("model".into(), Value::String(self.model.clone()));
        out.insert(
            "messages".into(),
            json!([{"role": "user", "content": prompt}]),
        );
        for (k, v) in body {
            if !matches!(
                k.as_str(),
                "model" | "prompt" | "echo" | "suffix" | "best_of"
            ) {
                out.insert(k.clone(), v.clone());
            }
        }
        serde_json::to_vec(&out)
            .map(Bytes::from)
            .map_err(encode_error)
    }

    fn embed_body(&self, request: &PreparedRequest) -> Result<Vec<u8>, ProviderError> {
        let inputs = match request.body().get("input") {
            Some(Value::String(s)) => json!([s]),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                Value::Array(items.clone())
            }
            _ => return Err(bad_request("`input` must be a string or a list of strings")),
        };
        let mut out = Map::new();
        out.insert("inputs".into(), inputs);
        for (k, v) in request.body() {
            match k.as_str() {
                "model" | "input" | "user" | "encoding_format" => {}
                _ if v.is_null() => {}
                k if TGI_OPTIONS.contains(&k) => {
                    if let Value::Object(o) = out.entry("options").or_insert_with(|| json!({})) {
                        o.insert(k.to_string(), v.clone());
                    }
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        serde_json::to_vec(&out).map_err(encode_error)
    }

    fn generate_body(
        &self,
        tgi: &Tgi,
        endpoint: Endpoint,
        request: &PreparedRequest,
        ctx: &RequestContext,
    ) -> Result<Vec<u8>, ProviderError> {
        let body = request.body();
        let prompt = match endpoint {
            Endpoint::Completions => completion_prompt(body)?,
            _ => match body.get("messages") {
                Some(Value::Array(m)) => tgi.template.render(m),
                _ => return Err(bad_request("`messages` must be a list of messages")),
            },
        };
        let mut parameters = Map::new();
        let mut options = Map::new();
        let mut unsupported = Vec::new();
        for (key, value) in openai_params_in_order(body) {
            match key {
                // TGI refuses 0: "`temperature` must be strictly positive".
                "temperature" if value.as_f64() == Some(0.0) => {
                    parameters.insert("temperature".into(), json!(0.01));
                }
                "temperature" | "top_p" | "seed" | "frequency_penalty" => {
                    parameters.insert(key.to_string(), value.clone());
                }
                "stop" => {
                    let stop = match value {
                        Value::String(s) => json!([s]),
                        other => other.clone(),
                    };
                    parameters.insert("stop".into(), stop);
                }
                // TGI refuses 0: "`max_new_tokens` must be strictly positive".
                "max_tokens" | "max_completion_tokens" => {
                    let v = if value.as_u64() == Some(0) {
                        json!(1)
                    } else {
                        value.clone()
                    };
                    parameters.insert("max_new_tokens".into(), v);
                }
                "n" if value.as_u64() == Some(1) => {}
                "n" => {
                    parameters.insert("best_of".into(), value.clone());
                    parameters.insert("do_sample".into(), Value::Bool(true));
                }
                "stream" | "stream_options" | "user" => {}
                other => unsupported.push(other.to_string()),
            }
        }
        if !unsupported.is_empty() && !ctx.drop_params {
            return Err(ProviderError::unsupported_params(
                "huggingface",
                &unsupported,
                &self.model,
            ));
        }
        let natives = body.iter().filter(|(k, v)| {
            !v.is_null()
                && !matches!(k.as_str(), "model" | "messages" | "prompt")
                && !is_openai_param(k)
        });
        for (key, value) in natives {
            match key.as_str() {
                "parameters" => {
                    if let Value::Object(o) = value {
                        parameters.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                "options" => {
                    if let Value::Object(o) = value {
                        options.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                k if TGI_OPTIONS.contains(&k) => {
                    options.insert(key.clone(), value.clone());
                }
                _ => {
                    parameters.insert(key.clone(), value.clone());
                }
            }
        }
        for (key, value) in &tgi.parameters {
            let target = if TGI_OPTIONS.contains(&key.as_str()) {
                &mut options
            } else {
                &mut parameters
            };
            target.entry(key.clone()).or_insert_with(|| value.clone());
        }
        parameters.entry("details").or_insert(Value::Bool(true));
        parameters
            .entry("return_full_text")
            .or_insert(Value::Bool(false));
        serde_json::to_vec(&GenerateBody {
            inputs: &prompt,
            parameters: &parameters,
            stream: request.stream,
            options: (!options.is_empty()).then_some(&options),
        })
        .map_err(encode_error)
    }
}

/// TGI `/generate` body.
#[derive(Serialize)]
struct GenerateBody<'a> {
    inputs: &'a str,
    parameters: &'a Map<String, Value>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<&'a Map<String, Value>>,
}

/// LiteLLM's `_build_chat_completion_url`: `/chat/completions` after a `/v1`, `/v1/chat/completions`
/// after anything else, nothing when the URL already ends with `/chat/completions`.
fn chat_completions_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/chat/completions") {
        base.to_string()
    } else if base.ends_with("/v1") {
        format!("{base}/chat/completions")
    } else {
        format!("{base}/v1/chat/completions")
    }
}

/// The router route for `huggingface/<provider>/<org>/<model>`.
fn router_provider_url(provider: &str, repo: &str) -> String {
    match provider {
        "hf-inference" => format!("{ROUTER}/hf-inference/models/{repo}/v1/chat/completions"),
        "novita" => format!("{ROUTER}/novita/v3/openai/chat/completions"),
        "fireworks-ai" => format!("{ROUTER}/fireworks-ai/inference/v1/chat/completions"),
        other => format!("{ROUTER}/{other}/v1/chat/completions"),
    }
}

/// A TGI server's root from a configured base that may name its OpenAI routes.
fn server_root(base: &str) -> String {
    let mut root = base.trim_end_matches('/');
    for suffix in ["/chat/completions", "/v1"] {
        root = root.strip_suffix(suffix).unwrap_or(root);
    }
    root.to_string()
}

fn bad_request(detail: &str) -> ProviderError {
    ProviderError::new(
        ErrorClass::BadRequest,
        400,
        format!("litellm.BadRequestError: {LABEL}Exception - {detail}"),
    )
}

fn encode_error(e: serde_json::Error) -> ProviderError {
    ProviderError::new(
        ErrorClass::BadRequest,
        400,
        format!("litellm.BadRequestError: could not encode the request: {e}"),
    )
}

/// The `/completions` prompt: a string, or a list holding one string.
fn completion_prompt(body: &Map<String, Value>) -> Result<String, ProviderError> {
    match body.get("prompt") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
            Ok(items[0].as_str().unwrap_or_default().to_string())
        }
        _ => Err(bad_request(
            "`prompt` must be a string (one prompt per call)",
        )),
    }
}

/// LiteLLM's `output_parser`: ChatML / Llama markers TGI may leave at either end of the text.
fn strip_chat_markers(text: &str) -> String {
    let mut s = text.to_string();
    for token in ["<|assistant|>", "<|system|>", "<|user|>", "<s>", "</s>"] {
        if s.trim().starts_with(token) {
            s = s.replacen(token, "", 1);
        }
        if let Some(stripped) = s.strip_suffix(token) {
            s = stripped.to_string();
        }
    }
    s
}

/// A numeric response header; `name` is a lower-case literal, so the lookup allocates nothing.
fn header_u64(response: &UpstreamResponse<'_>, name: &'static str) -> Option<u64> {
    response
        .header(HeaderName::from_static(name))
        .and_then(|v| v.trim().parse().ok())
}

/// Prompt tokens from TGI `details`: `input_length` (stream details), else the `prefill` tokens.
fn details_prompt_tokens(details: &Value) -> Option<u64> {
    details
        .get("input_length")
        .and_then(Value::as_u64)
        .or_else(|| {
            details
                .get("prefill")
                .and_then(Value::as_array)
                .filter(|p| !p.is_empty())
                .map(|p| p.len() as u64)
        })
}

/// An OpenAI `finish_reason` string from an upstream that may use any value.
fn openai_finish(reason: Option<&str>) -> &'static str {
    match reason {
        Some("tool_calls") => "tool_calls",
        Some("content_filter") => "content_filter",
        other => finish_reason(other, false),
    }
}

impl ProviderAdapter for HuggingFaceAdapter {
    fn name(&self) -> &'static str {
        "huggingface"
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
        let (url, body) = match (endpoint, &self.tgi) {
            (Endpoint::Embeddings, _) => (&self.embed_url, Bytes::from(self.embed_body(request)?)),
            (_, Some(tgi)) => (
                if request.stream {
                    &tgi.generate_stream_url
                } else {
                    &tgi.generate_url
                },
                Bytes::from(self.generate_body(tgi, endpoint, request, ctx)?),
            ),
            (_, None) => (&self.chat_url, self.chat_body(endpoint, request)?),
        };
        Ok(UpstreamRequest {
            method: "POST",
            // Headers before the URL: awc reported a bad header over a bad URL.
            headers: self.headers.with_extra(LABEL, &request.extra_headers)?,
            url: url.uri(LABEL)?,
            body,
        })
    }

    fn parse_response(
        &self,
        endpoint: Endpoint,
        response: &UpstreamResponse<'_>,
        ctx: &StreamContext,
    ) -> Result<ParsedResponse, ProviderError> {
        if self.tgi.is_none() && endpoint == Endpoint::ChatCompletions {
            return passthrough(LABEL, None, response);
        }
        let v: Value = serde_json::from_slice(response.body).map_err(|e| {
            ProviderError::malformed_response(LABEL, &format!("the body is not JSON: {e}"))
        })?;
        if let Some(err) = v.get("error") {
            return Err(ProviderError::from_upstream(
                LABEL,
                500,
                &error_text(err),
                None,
                None,
                None,
            ));
        }
        match (endpoint, &self.tgi) {
            (Endpoint::Embeddings, _) => embeddings(&v, &self.model, response),
            (_, Some(_)) => generate_response(&v, endpoint, response, ctx, &self.model),
            (_, None) => chat_as_text(&v, ctx),
        }
    }

    fn parse_error(&self, response: &UpstreamResponse<'_>) -> ProviderError {
        upstream_error(LABEL, None, response)
    }

    fn stream_decoder(&self, endpoint: Endpoint, ctx: &StreamContext) -> Box<dyn StreamDecoder> {
        let mode = match (&self.tgi, endpoint) {
            (Some(_), _) => SseMode::Tgi,
            (None, Endpoint::Completions) => SseMode::ChatAsText {
                reason: None,
                usage: None,
            },
            (None, _) => return Box::new(OpenAiStream::new(LABEL, None)),
        };
        Box::new(HfSseDecoder {
            sse: SseSplitter::default(),
            writer: ChunkWriter::new(ctx, shape_of(endpoint)),
            mode,
            ended: false,
        })
    }
}

/// OpenAI `usage` of a chat answer or chunk.
fn usage_of(v: &Value) -> Option<Usage> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    Some(Usage {
        prompt_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        completion_tokens: u
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

/// TGI `/generate`: `[{"generated_text", "details"}]` or one such object.
fn generate_response(
    v: &Value,
    endpoint: Endpoint,
    response: &UpstreamResponse<'_>,
    ctx: &StreamContext,
    model: &str,
) -> Result<ParsedResponse, ProviderError> {
    let first = match v {
        Value::Array(items) => items.first(),
        other => Some(other),
    }
    .filter(|f| f.get("generated_text").is_some_and(Value::is_string))
    .ok_or_else(|| {
        ProviderError::malformed_response(LABEL, "expected [{\"generated_text\": ...}]")
    })?;
    let text = first
        .get("generated_text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let details = first.get("details").unwrap_or(&Value::Null);
    let usage = Usage {
        prompt_tokens: details_prompt_tokens(details)
            .or_else(|| header_u64(response, "x-prompt-tokens"))
            .unwrap_or(0),
        completion_tokens: details
            .get("generated_tokens")
            .and_then(Value::as_u64)
            .or_else(|| header_u64(response, "x-generated-tokens"))
            .unwrap_or(0),
    };
    let answer = Answer {
        content: strip_chat_markers(text),
        reasoning: None,
        tool_calls: None,
        finish_reason: finish_reason(details.get("finish_reason").and_then(Value::as_str), false),
        usage,
    };
    Ok(completion_response(shape_of(endpoint), ctx, model, answer))
}

/// An OpenAI chat answer rewritten as a `text_completion` (for `/completions`).
fn chat_as_text(v: &Value, ctx: &StreamContext) -> Result<ParsedResponse, ProviderError> {
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| ProviderError::malformed_response(LABEL, "no choices"))?;
    let model = v
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(&ctx.model)
        .to_string();
    let answer = Answer {
        content: content_text(choice.get("message").and_then(|m| m.get("content"))),
        reasoning: None,
        tool_calls: None,
        finish_reason: openai_finish(choice.get("finish_reason").and_then(Value::as_str)),
        usage: usage_of(v).unwrap_or_default(),
    };
    Ok(completion_response(Shape::Text, ctx, &model, answer))
}

/// TEI / Inference API embeddings: a list of vectors (a token-level answer gives each input's
/// first row). Prompt tokens come from TEI's `x-compute-tokens` header when present.
fn embeddings(
    v: &Value,
    model: &str,
    response: &UpstreamResponse<'_>,
) -> Result<ParsedResponse, ProviderError> {
    let items = v
        .as_array()
        .ok_or_else(|| ProviderError::malformed_response(LABEL, "expected a list of embeddings"))?;
    let vectors: Vec<&Value> = items
        .iter()
        .map(|item| match item {
            Value::Array(rows) if rows.first().is_some_and(Value::is_array) => &rows[0],
            other => other,
        })
        .collect();
    Ok(embedding_list(
        vectors.into_iter(),
        model,
        header_u64(response, "x-compute-tokens").unwrap_or(0),
    ))
}

#[derive(Debug)]
enum SseMode {
    /// OpenAI chat chunks rewritten as `text_completion` chunks.
    ChatAsText {
        reason: Option<&'static str>,
        usage: Option<Usage>,
    },
    /// TGI `/generate_stream` token events.
    Tgi,
}

#[derive(Debug)]
struct HfSseDecoder {
    sse: SseSplitter,
    writer: ChunkWriter,
    mode: SseMode,
    ended: bool,
}

impl HfSseDecoder {
    fn fail(&mut self, e: ProviderError, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::Error(e));
        self.ended = true;
    }

    fn event(&mut self, data: &str, out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        if data.trim() == "[DONE]" {
            match &mut self.mode {
                SseMode::ChatAsText { reason, usage } => {
                    let (r, u) = (reason.unwrap_or("stop"), usage.unwrap_or_default());
                    self.writer.finish(r, u, out);
                }
                SseMode::Tgi => out.push(StreamEvent::Done),
            }
            self.ended = true;
            return;
        }
        let v = match stream_event(LABEL, data, "a stream event") {
            Ok(v) => v,
            Err(e) => return self.fail(e, out),
        };
        match &mut self.mode {
            SseMode::ChatAsText { reason, usage } => {
                if let Some(u) = usage_of(&v) {
                    *usage = Some(u);
                }
                if let Some(choice) = v.get("choices").and_then(|c| c.get(0)) {
                    if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
                        *reason = Some(openai_finish(Some(r)));
                    }
                    let text = choice
                        .get("delta")
                        .and_then(|d| d.get("content"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    self.writer.delta(text, None, &[], out);
                }
            }
            SseMode::Tgi => {
                let token = v.get("token");
                let special = token
                    .and_then(|t| t.get("special"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if !special {
                    let text = token
                        .and_then(|t| t.get("text"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    self.writer.delta(text, None, &[], out);
                }
                if let Some(details) = v.get("details").filter(|d| d.is_object()) {
                    let usage = Usage {
                        prompt_tokens: details_prompt_tokens(details).unwrap_or(0),
                        completion_tokens: details
                            .get("generated_tokens")
                            .and_then(Value::as_u64)
                            .unwrap_or(0),
                    };
                    let reason =
                        finish_reason(details.get("finish_reason").and_then(Value::as_str), false);
                    self.writer.finish(reason, usage, out);
                    self.ended = true;
                }
            }
        }
    }
}

impl StreamDecoder for HfSseDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        let mut events = Vec::new();
        let split = self.sse.feed(bytes, &mut events);
        for e in events {
            self.event(&e.data, out);
        }
        if split.is_err() && !self.ended {
            self.fail(
                ProviderError::malformed_response(LABEL, "a stream line is longer than 16 MiB"),
                out,
            );
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        let mut events = Vec::new();
        self.sse.finish(&mut events);
        for e in events {
            self.event(&e.data, out);
        }
        if !self.ended {
            self.fail(
                ProviderError::connection(LABEL, "the stream ended before its last event"),
                out,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use actix_web::http::header::HeaderMap;

    use super::*;
    use crate::providers::params::prepare;
    use crate::providers::testing;

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/huggingface/");

    fn fixture(name: &str) -> Bytes {
        Bytes::from(std::fs::read(format!("{FIX}{name}")).unwrap())
    }

    use crate::providers::testing::{obj, pairs};

    /// The docs' prompt-template deployment (09-custom-prompt-template.yaml).
    fn fixture_09() -> Map<String, Value> {
        let doc: Value =
            serde_yaml::from_slice(&fixture("09-custom-prompt-template.yaml")).unwrap();
        obj(doc["model_list"][0]["litellm_params"].clone())
    }

    fn adapter(model: &str, params: &Map<String, Value>) -> HuggingFaceAdapter {
        HuggingFaceAdapter::with_env(model, params, |_| None).unwrap()
    }

    fn rctx(drop_params: bool) -> RequestContext {
        RequestContext {
            now: SystemTime::UNIX_EPOCH,
            drop_params,
        }
    }

    fn sctx(include_usage: bool) -> StreamContext {
        StreamContext {
            id: "chatcmpl-abc".into(),
            created: 1_700_000_000,
            model: "mistral-7b".into(),
            include_usage,
        }
    }

    fn build(
        a: &HuggingFaceAdapter,
        endpoint: Endpoint,
        body: Value,
        deployment: &Map<String, Value>,
        drop: bool,
    ) -> Result<UpstreamRequest, ProviderError> {
        a.build_request(endpoint, &prepare(obj(body), deployment), &rctx(drop))
    }

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    use crate::providers::testing::{chunks, decode};

    #[test]
    fn urls_follow_litellm() {
        let url =
            |model: &str, params: Value| adapter(model, &obj(params)).chat_url.as_str().to_string();
        assert_eq!(
            url(
                "org/m",
                json!({"api_base": "https://x.endpoints.huggingface.cloud/"})
            ),
            "https://x.endpoints.huggingface.cloud/v1/chat/completions"
        );
        assert_eq!(
            url("org/m", json!({"api_base": "http://tgi:8080/v1"})),
            "http://tgi:8080/v1/chat/completions"
        );
        assert_eq!(
            url(
                "org/m",
                json!({"api_base": "http://tgi:8080/v1/chat/completions"})
            ),
            "http://tgi:8080/v1/chat/completions"
        );
        assert_eq!(
            url("meta-llama/Llama-3.1-8B-Instruct", json!({})),
            "https://router.huggingface.co/v1/chat/completions"
        );
        assert_eq!(
            url("together/deepseek-ai/DeepSeek-R1", json!({})),
            "https://router.huggingface.co/together/v1/chat/completions"
        );
        assert_eq!(
            url("hf-inference/org/m", json!({})),
            "https://router.huggingface.co/hf-inference/models/org/m/v1/chat/completions"
        );
        assert_eq!(
            url("novita/org/m", json!({})),
            "https://router.huggingface.co/novita/v3/openai/chat/completions"
        );
        assert_eq!(
            url("fireworks-ai/org/m", json!({})),
            "https://router.huggingface.co/fireworks-ai/inference/v1/chat/completions"
        );
        assert_eq!(
            url("https://my-endpoint.cloud", json!({})),
            "https://my-endpoint.cloud/v1/chat/completions"
        );
        let a = HuggingFaceAdapter::with_env("org/m", &Map::new(), |k| {
            (k == "HF_API_BASE").then(|| "http://env/v1/chat/completions/".to_string())
        })
        .unwrap();
        assert_eq!(a.chat_url.as_str(), "http://env/v1/chat/completions");
        assert_eq!(
            adapter("together/deepseek-ai/DeepSeek-R1", &Map::new()).model,
            "deepseek-ai/DeepSeek-R1"
        );
    }

    #[test]
    fn chat_request_is_the_openai_body_with_the_repo_id() {
        let params = obj(
            json!({"model": "huggingface/mistralai/Mistral-7B-Instruct-v0.3", "api_base": "http://tgi:8080", "max_retries": 3, "temperature": 0.3}),
        );
        let a = adapter("mistralai/Mistral-7B-Instruct-v0.3", &params);
        let req = build(
            &a,
            Endpoint::ChatCompletions,
            json!({"model": "mistral", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20, "max_retries": 2, "stream": true, "extra_headers": {"X-Trace": "1"}}),
            &params,
            false,
        )
        .unwrap();
        assert_eq!(req.url.to_string(), "http://tgi:8080/v1/chat/completions");
        assert_eq!(
            pairs(&req.headers),
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("x-trace".to_string(), "1".to_string())
            ]
        );
        assert_eq!(
            text(&req.body),
            r#"{"model":"mistralai/Mistral-7B-Instruct-v0.3","messages":[{"role":"user","content":"hi"}],"max_tokens":20,"stream":true,"temperature":0.3}"#
        );
    }

    #[test]
    fn the_key_comes_from_params_then_hf_token_then_huggingface_api_key() {
        let key = |params: Value, env: &'static [(&'static str, &'static str)]| {
            let a = HuggingFaceAdapter::with_env("org/m", &obj(params), |k| {
                env.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap();
            pairs(&a.headers.with_extra(LABEL, &[]).unwrap())
                .get(1)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            key(json!({"api_key": "hf_a"}), &[("HF_TOKEN", "hf_b")]),
            Some("Bearer hf_a".to_string())
        );
        assert_eq!(
            key(
                json!({}),
                &[("HF_TOKEN", "hf_b"), ("HUGGINGFACE_API_KEY", "hf_c")]
            ),
            Some("Bearer hf_b".to_string())
        );
        assert_eq!(
            key(json!({}), &[("HUGGINGFACE_API_KEY", "hf_c")]),
            Some("Bearer hf_c".to_string())
        );
        assert_eq!(key(json!({}), &[]), None);
    }

    #[test]
    fn chat_answers_pass_through() {
        let a = adapter("org/m", &obj(json!({"api_base": "http://tgi:8080"})));
        let body = fixture("chat_response.json");
        let r = a
            .parse_response(
                Endpoint::ChatCompletions,
                &UpstreamResponse {
                    status: 200,
                    headers: &HeaderMap::new(),
                    body: &body,
                },
                &sctx(false),
            )
            .unwrap();
        assert_eq!(&r.body[..], &body[..]);
        assert_eq!(
            r.usage,
            Some(Usage {
                prompt_tokens: 15,
                completion_tokens: 10
            })
        );
        let events = decode(
            &a,
            Endpoint::ChatCompletions,
            &sctx(true),
            &fixture("chat_stream.sse"),
        );
        assert_eq!(chunks(&events).len(), 3);
        assert!(events.contains(&StreamEvent::Usage(Usage {
            prompt_tokens: 15,
            completion_tokens: 2
        })));
        assert_eq!(events.last(), Some(&StreamEvent::Done));
    }

    #[test]
    fn completions_go_through_chat_and_come_back_as_text() {
        let a = adapter("org/m", &obj(json!({"api_base": "http://tgi:8080"})));
        let req = build(
            &a,
            Endpoint::Completions,
            json!({"model": "m", "prompt": "Say hi", "max_tokens": 5, "echo": false}),
            &Map::new(),
            false,
        )
        .unwrap();
        assert_eq!(req.url.to_string(), "http://tgi:8080/v1/chat/completions");
        assert_eq!(
            text(&req.body),
            r#"{"model":"org/m","messages":[{"role":"user","content":"Say hi"}],"max_tokens":5}"#
        );
        let body = fixture("chat_response.json");
        let r = a
            .parse_response(
                Endpoint::Completions,
                &UpstreamResponse {
                    status: 200,
                    headers: &HeaderMap::new(),
                    body: &body,
                },
                &sctx(false),
            )
            .unwrap();
        assert_eq!(
            text(&r.body),
            r#"{"id":"chatcmpl-abc","created":1700000000,"model":"tgi","object":"text_completion","choices":[{"finish_reason":"stop","index":0,"logprobs":null,"text":"Deep learning is a subset of machine learning."}],"usage":{"completion_tokens":10,"prompt_tokens":15,"total_tokens":25}}"#
        );
        let events = decode(
            &a,
            Endpoint::Completions,
            &sctx(true),
            &fixture("chat_stream.sse"),
        );
        assert_eq!(
            chunks(&events),
            [
                r#"{"id":"chatcmpl-abc","created":1700000000,"model":"mistral-7b","object":"text_completion","choices":[{"text":"Deep","index":0,"logprobs":null,"finish_reason":null}]}"#,
                r#"{"id":"chatcmpl-abc","created":1700000000,"model":"mistral-7b","object":"text_completion","choices":[{"text":" learning","index":0,"logprobs":null,"finish_reason":null}]}"#,
                r#"{"id":"chatcmpl-abc","created":1700000000,"model":"mistral-7b","object":"text_completion","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}]}"#,
                r#"{"id":"chatcmpl-abc","created":1700000000,"model":"mistral-7b","object":"text_completion","choices":[],"usage":{"completion_tokens":2,"prompt_tokens":15,"total_tokens":17}}"#,
            ]
        );
    }

    /// The docs' example deployment: its template turns the chat into a TGI `/generate` prompt.
    #[test]
    fn a_prompt_template_sends_tgi_generate() {
        let mut params = fixture_09();
        params.insert(
            "api_base".into(),
            json!("https://x.endpoints.huggingface.cloud/v1/"),
        );
        params.insert("top_k".into(), json!(40));
        let a = adapter("mistralai/Mistral-7B-Instruct-v0.1", &params);
        let req = build(
            &a,
            Endpoint::ChatCompletions,
            json!({"model": "mistral-7b", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], "temperature": 0, "stop": "###", "n": 1, "wait_for_model": true}),
            &params,
            false,
        )
        .unwrap();
        assert_eq!(
            req.url.to_string(),
            "https://x.endpoints.huggingface.cloud/generate"
        );
        assert_eq!(
            pairs(&req.headers)[1],
            (
                "authorization".to_string(),
                "Bearer <your-api-key>".to_string()
            )
        );
        assert_eq!(
            text(&req.body),
            r####"{"inputs":" \n<|im_start|>system\nS<|im_end|><|im_start|>user\nU<|im_end|>\n","parameters":{"temperature":0.01,"stop":["###"],"max_new_tokens":4096,"top_k":40,"details":true,"return_full_text":false},"stream":false,"options":{"wait_for_model":true}}"####
        );
        let req = build(
            &a,
            Endpoint::Completions,
            json!({"model": "m", "prompt": "raw", "max_tokens": 0, "stream": true}),
            &Map::new(),
            false,
        )
        .unwrap();
        assert_eq!(
            req.url.to_string(),
            "https://x.endpoints.huggingface.cloud/generate_stream"
        );
        assert_eq!(
            text(&req.body),
            r#"{"inputs":"raw","parameters":{"max_new_tokens":1,"top_k":40,"details":true,"return_full_text":false},"stream":true}"#
        );
    }

    #[test]
    fn a_template_without_a_server_is_a_configuration_error() {
        let mut params = fixture_09();
        params.remove("api_base");
        let e = HuggingFaceAdapter::with_env("org/m", &params, |_| None).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("set `api_base`"), "{}", e.message);
    }

    #[test]
    fn tgi_rejects_unsupported_params_unless_dropped() {
        // The fixture's `<your-api-base>` is no URL: a request to it fails when it is built.
        let mut params = fixture_09();
        params.insert("api_base".into(), json!("http://tgi:8080"));
        let a = adapter("org/m", &params);
        let body = json!({"model": "m", "messages": [], "tools": [], "logprobs": true});
        let e = build(
            &a,
            Endpoint::ChatCompletions,
            body.clone(),
            &Map::new(),
            false,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("huggingface does not support parameters: ['tools', 'logprobs']"),
            "{}",
            e.message
        );
        let req = build(&a, Endpoint::ChatCompletions, body, &Map::new(), true).unwrap();
        assert_eq!(
            text(&req.body),
            r#"{"inputs":" \n\n","parameters":{"details":true,"return_full_text":false},"stream":false}"#
        );
    }

    #[test]
    fn tgi_generate_answer_becomes_a_chat_completion() {
        let a = adapter("mistralai/Mistral-7B-Instruct-v0.1", &fixture_09());
        let body = fixture("tgi_generate_response.json");
        let headers = testing::headers(&[("x-prompt-tokens", "17")]);
        let r = a
            .parse_response(
                Endpoint::ChatCompletions,
                &UpstreamResponse {
                    status: 200,
                    headers: &headers,
                    body: &body,
                },
                &sctx(false),
            )
            .unwrap();
        assert_eq!(
            text(&r.body),
            r#"{"id":"chatcmpl-abc","created":1700000000,"model":"mistralai/Mistral-7B-Instruct-v0.1","object":"chat.completion","choices":[{"finish_reason":"stop","index":0,"message":{"content":"Hello! How can I help you today?","role":"assistant"}}],"usage":{"completion_tokens":9,"prompt_tokens":17,"total_tokens":26}}"#
        );
        // A single object (not a list), cut by length, with the prompt in `prefill`.
        let body = br#"{"generated_text":"<|assistant|>Hi</s>","details":{"finish_reason":"length","generated_tokens":2,"prefill":[{"id":1},{"id":2},{"id":3}]}}"#;
        let r = a
            .parse_response(
                Endpoint::Completions,
                &UpstreamResponse {
                    status: 200,
                    headers: &HeaderMap::new(),
                    body: &Bytes::from_static(body),
                },
                &sctx(false),
            )
            .unwrap();
        assert_eq!(
            text(&r.body),
            r#"{"id":"chatcmpl-abc","created":1700000000,"model":"mistralai/Mistral-7B-Instruct-v0.1","object":"text_completion","choices":[{"finish_reason":"length","index":0,"logprobs":null,"text":"Hi"}],"usage":{"completion_tokens":2,"prompt_tokens":3,"total_tokens":5}}"#
        );
    }

    #[test]
    fn tgi_stream_becomes_openai_chunks() {
        let a = adapter("mistralai/Mistral-7B-Instruct-v0.1", &fixture_09());
        let events = decode(
            &a,
            Endpoint::ChatCompletions,
            &sctx(true),
            &fixture("tgi_generate_stream.sse"),
        );
        let expected: Vec<String> = text(&fixture("tgi_generate_stream.expected.jsonl"))
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(chunks(&events), expected);
        assert_eq!(
            &events[events.len() - 2..],
            [
                StreamEvent::Usage(Usage {
                    prompt_tokens: 17,
                    completion_tokens: 3
                }),
                StreamEvent::Done
            ]
        );
    }

    #[test]
    fn tgi_stream_errors() {
        let a = adapter("org/m", &fixture_09());
        let events = decode(
            &a,
            Endpoint::ChatCompletions,
            &sctx(false),
            &fixture("tgi_stream_error.sse"),
        );
        assert_eq!(events.len(), 2);
        assert!(
            matches!(&events[1], StreamEvent::Error(e) if e.status == 500 && e.message.starts_with("litellm.InternalServerError: InternalServerError: HuggingfaceException - Request failed during generation")),
            "{events:?}"
        );
        let events = decode(
            &a,
            Endpoint::ChatCompletions,
            &sctx(false),
            b"data:{\"token\":{\"text\":\"a\",\"special\":false},\"details\":null}\n\n",
        );
        assert!(
            matches!(&events[1], StreamEvent::Error(e) if e.class == ErrorClass::Connection),
            "{events:?}"
        );
    }

    #[test]
    fn errors_are_classified() {
        let a = adapter("org/m", &fixture_09());
        let body = fixture("tgi_error_context.json");
        let e = a.parse_error(&UpstreamResponse {
            status: 422,
            headers: &HeaderMap::new(),
            body: &body,
        });
        // The class is what the router reads; the status (422, kept by error.rs) is not
        // asserted here.
        assert_eq!(e.class, ErrorClass::ContextWindowExceeded);
        assert!(e.message.starts_with("litellm.ContextWindowExceededError: ContextWindowExceededError: HuggingfaceException - Input validation error: `inputs` tokens"), "{}", e.message);
        for (status, body, class) in [
            (422, &br#"{"error":"Input validation error: `temperature` must be strictly positive","error_type":"validation"}"#[..], ErrorClass::BadRequest),
            (401, &br#"{"error":"Invalid credentials in Authorization header"}"#[..], ErrorClass::Auth),
            (404, &br#"{"error":"Model org/m does not exist"}"#[..], ErrorClass::NotFound),
            (429, &br#"{"error":"Model is overloaded","error_type":"overloaded"}"#[..], ErrorClass::RateLimit),
            (503, &br#"{"error":"Model org/m is currently loading","estimated_time":20.0}"#[..], ErrorClass::ServerError),
            (500, &br#"{"error":"Request failed during generation: Server error: CUDA out of memory","error_type":"generation"}"#[..], ErrorClass::ServerError),
        ] {
            let e = a.parse_error(&UpstreamResponse {
                status,
                headers: &HeaderMap::new(),
                body: &Bytes::from_static(body),
            });
            assert_eq!(e.class, class, "{status}: {}", e.message);
            assert!(e.message.contains("HuggingfaceException - "), "{}", e.message);
        }
    }

    #[test]
    fn embeddings_post_inputs_to_the_endpoint() {
        let a = adapter(
            "BAAI/bge-small-en-v1.5",
            &obj(json!({"api_base": "http://tei:8080"})),
        );
        let req = build(&a, Endpoint::Embeddings, json!({"model": "emb", "input": ["a", "b"], "encoding_format": "float", "truncate": true}), &Map::new(), false).unwrap();
        // The root path, as awc sent it for the configured `http://tei:8080`.
        assert_eq!(req.url.to_string(), "http://tei:8080/");
        assert_eq!(text(&req.body), r#"{"inputs":["a","b"],"truncate":true}"#);
        let body = fixture("tei_embed_response.json");
        let headers = testing::headers(&[("x-compute-tokens", "6")]);
        let r = a
            .parse_response(
                Endpoint::Embeddings,
                &UpstreamResponse {
                    status: 200,
                    headers: &headers,
                    body: &body,
                },
                &sctx(false),
            )
            .unwrap();
        assert_eq!(
            text(&r.body),
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0123,-0.0456,0.0789]},{"object":"embedding","index":1,"embedding":[0.1,0.2,0.3]}],"model":"BAAI/bge-small-en-v1.5","usage":{"prompt_tokens":6,"total_tokens":6}}"#
        );
        let router = adapter("BAAI/bge-small-en-v1.5", &Map::new());
        assert_eq!(router.embed_url.as_str(), "https://router.huggingface.co/hf-inference/pipeline/feature-extraction/BAAI/bge-small-en-v1.5");
    }

    #[test]
    fn chat_markers_are_stripped_from_generated_text() {
        assert_eq!(strip_chat_markers("<s> Hi there</s>"), " Hi there");
        assert_eq!(strip_chat_markers("<|assistant|>\nok"), "\nok");
        assert_eq!(strip_chat_markers("keep <s> inside"), "keep <s> inside");
    }
}
