//! Every provider end to end over HTTP: the real binary in front of a loopback mock that
//! impersonates the provider. Each test checks what reached the wire (method, path, query, the
//! headers that matter, the body) and what the OpenAI client got back, plain and streaming, with
//! the provider's real answer, stream and error shapes (the adapters' golden fixtures in
//! `tests/fixtures/<provider>/`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "support/sigv4.rs"]
mod sigv4;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};

// === helpers ===

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// A recorded request body: the fixture file without its trailing newline.
fn fixture_body(path: &str) -> Vec<u8> {
    let mut bytes = fixture(path);
    while bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    bytes
}

fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_text(path: &str) -> String {
    String::from_utf8(fixture(path)).unwrap()
}

/// A 200 answer with these exact bytes.
fn body_reply(content_type: &str, body: Vec<u8>) -> Reply {
    Reply::Bytes {
        status: 200,
        content_type: content_type.into(),
        headers: vec![],
        body,
    }
}

/// A JSON fixture for a plain request; for `"stream": true` a stream fixture sent in pieces of
/// `piece` bytes, so frames arrive cut anywhere.
fn stream_or_json(
    stream_type: &'static str,
    stream: &'static str,
    piece: usize,
    json: &'static str,
) -> Reply {
    Reply::respond(move |req| {
        if req.json()["stream"] == true {
            Reply::chunked(stream_type, &fixture(stream), piece)
        } else {
            body_reply("application/json", fixture(json))
        }
    })
}

fn error_reply(status: u16, body: &str) -> Reply {
    Reply::Bytes {
        status,
        content_type: "application/json".into(),
        headers: vec![],
        body: body.as_bytes().to_vec(),
    }
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

fn chat(proxy: &Proxy, body: Value) -> Response {
    post_json(&proxy.url("/v1/chat/completions"), &body, &[])
}

fn streamed(model: &str, messages: Value) -> Value {
    json!({"model": model, "messages": messages, "stream": true, "stream_options": {"include_usage": true}})
}

/// The chunks of an SSE answer: asserts a 200 `text/event-stream` that ends with exactly one
/// `[DONE]`, every event before it an OpenAI chunk sharing one `id` and `created`.
fn chunks(res: &Response) -> Vec<Value> {
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        res.header("content-type")
            .unwrap_or_default()
            .starts_with("text/event-stream"),
        "{:?}",
        res.headers
    );
    let data = res.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    assert_eq!(
        data.iter().filter(|d| *d == "[DONE]").count(),
        1,
        "{data:?}"
    );
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect();
    for c in &chunks {
        assert!(c.get("error").is_none(), "error event in the stream: {c}");
    }
    chunks
}

/// Our own chunks (not a passed-through OpenAI-compatible stream): one id, one `created`,
/// `chat.completion.chunk` objects.
fn assert_one_identity(chunks: &[Value]) {
    let id = &chunks[0]["id"];
    assert!(
        id.as_str().is_some_and(|i| i.starts_with("chatcmpl-")),
        "{id}"
    );
    for c in chunks {
        assert_eq!(&c["id"], id, "{c}");
        assert_eq!(c["created"], chunks[0]["created"], "{c}");
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
    }
}

fn text_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default())
        .filter_map(|ch| ch["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

fn finish_of(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default())
        .filter_map(|ch| ch["finish_reason"].as_str().map(str::to_string))
        .collect()
}

/// The `include_usage` chunk: the last one, with no choices.
fn usage_chunk(chunks: &[Value]) -> Value {
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]), "{last}");
    last["usage"].clone()
}

/// A chunk without the per-call `id` / `created`, to compare with a fixture.
fn without_identity(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("id");
        m.remove("created");
    }
    v
}

/// The chunk lines (`chunk {json}`, `data: {json}` or bare JSON lines) of a decoder fixture,
/// identity removed.
fn expected_chunks(path: &str) -> Vec<Value> {
    fixture_text(path)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("chunk ")
                .or_else(|| l.strip_prefix("data: "))
                .or_else(|| l.starts_with('{').then_some(l))
        })
        .map(|j| without_identity(serde_json::from_str(j).unwrap()))
        .collect()
}

fn error_of(res: &Response) -> Value {
    let err = res.json()["error"].clone();
    for key in ["message", "type", "param", "code"] {
        assert!(err.get(key).is_some(), "missing {key} in {err}");
    }
    assert_eq!(err["code"], res.status.to_string(), "{err}");
    err
}

fn message_of(err: &Value) -> String {
    err["message"].as_str().unwrap_or_default().to_string()
}

// === Azure OpenAI ===

fn azure_config(mock: &MockUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: azure-gpt
    litellm_params:
      model: azure/gpt-4o-eu
      api_base: {base}
      api_key: az-key-0123
      api_version: "2024-10-21"
  - model_name: azure-ad
    litellm_params:
      model: azure/gpt-4o-ad
      api_base: {base}/
      api_key: az-key-not-sent
      azure_ad_token: eyJ0eXAiOiJKV1Qi.token
      api_version: "2024-10-21"
  - model_name: azure-embed
    litellm_params:
      model: azure/text-embedding-3-small
      api_base: {base}
      api_key: az-key-0123
  - model_name: azure-named
    litellm_params:
      model: gpt-4o-west
      custom_llm_provider: azure
      api_base: {base}
      api_key: az-key-0123
      api_version: "2024-10-21"
router_settings:
  num_retries: 0
"#,
        base = mock.base()
    )
}

#[test]
fn azure_api_key_deployment_plain_streaming_and_embeddings() {
    let mock = MockUpstream::start();
    let chat_path = "/openai/deployments/gpt-4o-eu/chat/completions";
    let response = fixture("azure/chat_response.json");
    let stream = fixture("azure/chat_stream.sse");
    mock.script(
        chat_path,
        vec![
            body_reply("application/json", response.clone()),
            Reply::chunked("text/event-stream", &stream, 37),
        ],
    );
    let emb = json!({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":1,"total_tokens":1}});
    mock.script(
        "/openai/deployments/text-embedding-3-small/embeddings",
        vec![Reply::ok(emb.clone())],
    );
    let proxy = Proxy::start(&azure_config(&mock), &[]);

    let res = request(
        "POST",
        &proxy.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        Some(br#"{"model":"azure-gpt","messages":[{"role":"user","content":"Hi"}],"temperature":0.2}"#),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    // Azure's answer, content-filter results and all, reaches the client byte for byte.
    assert_eq!(res.body, response);
    assert_eq!(
        res.header("x-litellm-model-api-base"),
        Some(mock.base().as_str())
    );
    let up = &mock.received_on(chat_path)[0];
    assert_eq!(up.method, "POST");
    assert_eq!(up.target, format!("{chat_path}?api-version=2024-10-21"));
    assert_eq!(up.header("api-key"), Some("az-key-0123"));
    assert_eq!(up.header("authorization"), None);
    assert_eq!(up.header("content-type"), Some("application/json"));
    assert_eq!(
        String::from_utf8_lossy(&up.body),
        r#"{"model":"gpt-4o-eu","messages":[{"role":"user","content":"Hi"}],"temperature":0.2}"#
    );

    let res = chat(&proxy, streamed("azure-gpt", user("Hi")));
    let got = chunks(&res);
    // Passed through as Azure sent them, its empty-choices first chunk included.
    let sent: Vec<Value> = String::from_utf8(stream)
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(got, sent);
    assert_eq!(text_of(&got), "Hello there");
    let up = &mock.received_on(chat_path)[1];
    assert_eq!(up.json()["stream"], true);
    assert_eq!(up.json()["stream_options"], json!({"include_usage": true}));

    let res = post_json(
        &proxy.url("/v1/embeddings"),
        &json!({"model": "azure-embed", "input": "a"}),
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json(), emb);
    let up = &mock.received_on("/openai/deployments/text-embedding-3-small/embeddings")[0];
    // No api_version configured: LiteLLM 1.81's default.
    assert!(
        up.target.ends_with("?api-version=2025-02-01-preview"),
        "{}",
        up.target
    );
    assert_eq!(
        up.json(),
        json!({"model": "text-embedding-3-small", "input": "a"})
    );
}

/// One plain chat to `model` on [`azure_config`], answered from the Azure fixture at `path`:
/// the proxy, and what the upstream received.
fn azure_chat(model: &str, path: &str) -> (Proxy, Recorded) {
    let mock = MockUpstream::start();
    mock.script(
        path,
        vec![body_reply(
            "application/json",
            fixture("azure/chat_response.json"),
        )],
    );
    let proxy = Proxy::start(&azure_config(&mock), &[]);
    let res = chat(&proxy, json!({"model": model, "messages": user("Hi")}));
    assert_eq!(res.status, 200, "{}", res.text());
    let up = mock.received_on(path).remove(0);
    (proxy, up)
}

#[test]
fn azure_ad_token_is_a_bearer_and_no_api_key_is_sent() {
    let path = "/openai/deployments/gpt-4o-ad/chat/completions";
    let (_proxy, up) = azure_chat("azure-ad", path);
    assert_eq!(up.target, format!("{path}?api-version=2024-10-21"));
    assert_eq!(
        up.header("authorization"),
        Some("Bearer eyJ0eXAiOiJKV1Qi.token")
    );
    assert_eq!(up.header("api-key"), None);
    assert_eq!(up.json()["model"], "gpt-4o-ad");
}

#[test]
fn custom_llm_provider_names_the_provider_of_a_bare_model() {
    let path = "/openai/deployments/gpt-4o-west/chat/completions";
    let (proxy, up) = azure_chat("azure-named", path);
    assert_eq!(up.target, format!("{path}?api-version=2024-10-21"));
    assert_eq!(up.header("api-key"), Some("az-key-0123"));
    assert_eq!(
        String::from_utf8_lossy(&up.body),
        r#"{"model":"gpt-4o-west","messages":[{"role":"user","content":"Hi"}]}"#
    );
    let model = get(&proxy.url("/v1/models/azure-named"), &[]).json();
    assert_eq!(model["owned_by"], "azure");
}

// === Anthropic ===

fn anthropic_config(mock: &MockUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: claude-3-5-sonnet
    litellm_params:
      model: anthropic/claude-3-5-sonnet-20241022
      api_base: {base}
      api_key: sk-ant-from-params
  - model_name: "*"
    litellm_params:
      model: "*"
router_settings:
  num_retries: 0
"#,
        base = mock.base()
    )
}

fn anthropic_headers_are_right(up: &Recorded, key: &str) {
    assert_eq!(up.method, "POST");
    assert_eq!(up.header("x-api-key"), Some(key));
    assert_eq!(up.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(up.header("content-type"), Some("application/json"));
    assert_eq!(up.header("authorization"), None);
}

#[test]
fn anthropic_messages_plain_and_tools_go_out_as_recorded() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/messages",
        vec![
            body_reply("application/json", fixture("anthropic/response_text.json")),
            body_reply(
                "application/json",
                fixture("anthropic/response_tool_use.json"),
            ),
        ],
    );
    let proxy = Proxy::start(&anthropic_config(&mock), &[]);

    let res = chat(&proxy, fixture_json("anthropic/plain.openai.json"));
    assert_eq!(res.status, 200, "{}", res.text());
    let up = &mock.received_on("/v1/messages")[0];
    anthropic_headers_are_right(up, "sk-ant-from-params");
    assert_eq!(up.target, "/v1/messages");
    assert_eq!(up.body, fixture_body("anthropic/plain.anthropic.json"));
    let mut expected = fixture_json("anthropic/response_text.openai.json");
    let got = res.json();
    expected["created"] = got["created"].clone();
    assert_eq!(got, expected);

    let res = chat(&proxy, fixture_json("anthropic/tools.openai.json"));
    assert_eq!(res.status, 200, "{}", res.text());
    let up = &mock.received_on("/v1/messages")[1];
    assert_eq!(up.body, fixture_body("anthropic/tools.anthropic.json"));
    let got = res.json();
    assert_eq!(got["object"], "chat.completion");
    assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
    let calls = &got["choices"][0]["message"]["tool_calls"];
    assert_eq!(
        calls[0],
        json!({"id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}})
    );
    assert_eq!(
        calls[1]["function"],
        json!({"name": "get_time", "arguments": "{}"})
    );
    assert_eq!(
        got["usage"],
        json!({"prompt_tokens": 472, "completion_tokens": 91, "total_tokens": 563})
    );
}

#[test]
fn anthropic_streams_text_and_tool_calls_with_usage() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/messages",
        vec![
            Reply::chunked(
                "text/event-stream",
                &fixture("anthropic/stream_text.sse"),
                29,
            ),
            Reply::chunked(
                "text/event-stream",
                &fixture("anthropic/stream_tool.sse"),
                41,
            ),
        ],
    );
    let proxy = Proxy::start(&anthropic_config(&mock), &[]);
    let res = chat(&proxy, streamed("claude-3-5-sonnet", user("Hello, Claude")));
    let got = chunks(&res);
    assert_one_identity(&got);
    assert_eq!(
        got.into_iter().map(without_identity).collect::<Vec<_>>(),
        expected_chunks("anthropic/stream_text.expected")
    );
    let up = &mock.received_on("/v1/messages")[0];
    anthropic_headers_are_right(up, "sk-ant-from-params");
    assert_eq!(
        String::from_utf8_lossy(&up.body),
        r#"{"model":"claude-3-5-sonnet-20241022","messages":[{"role":"user","content":[{"type":"text","text":"Hello, Claude"}]}],"max_tokens":8192,"stream":true}"#
    );

    let mut tools_request = fixture_json("anthropic/tools.openai.json");
    tools_request["stream"] = json!(true);
    tools_request["stream_options"] = json!({"include_usage": true});
    let res = chat(&proxy, tools_request);
    let mut got = chunks(&res);
    assert_one_identity(&got);
    // The decoder fixture was recorded without include_usage; here the usage chunk follows.
    assert_eq!(
        usage_chunk(&got),
        json!({"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561})
    );
    got.pop();
    assert_eq!(
        got.into_iter().map(without_identity).collect::<Vec<_>>(),
        expected_chunks("anthropic/stream_tool.expected")
    );
    assert_eq!(mock.received_on("/v1/messages")[1].json()["stream"], true);
}

#[test]
fn bare_claude_names_under_a_wildcard_use_the_anthropic_environment() {
    let mock = MockUpstream::start();
    mock.script(
        "/env/v1/messages",
        vec![
            body_reply("application/json", fixture("anthropic/response_text.json")),
            Reply::chunked(
                "text/event-stream",
                &fixture("anthropic/stream_text.sse"),
                64,
            ),
        ],
    );
    let base = format!("{}/env", mock.base());
    let proxy = Proxy::start(
        &anthropic_config(&mock),
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-from-env"),
            ("ANTHROPIC_API_BASE", base.as_str()),
        ],
    );
    let res = chat(
        &proxy,
        json!({"model": "claude-3-haiku-20240307", "messages": user("Hi")}),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.json()["choices"][0]["message"]["content"],
        "Hello! How can I help?"
    );
    let up = &mock.received_on("/env/v1/messages")[0];
    anthropic_headers_are_right(up, "sk-ant-from-env");
    assert_eq!(
        up.json(),
        json!({"model": "claude-3-haiku-20240307", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "max_tokens": 4096})
    );
    let got = chunks(&chat(
        &proxy,
        streamed("claude-3-haiku-20240307", user("Hi")),
    ));
    assert_eq!(text_of(&got), "Hello, wörld! \"quoted\"\n");
    assert_eq!(
        usage_chunk(&got),
        json!({"prompt_tokens": 30, "completion_tokens": 15, "total_tokens": 45})
    );
    // The deployment with its own api_base and key is not affected by the environment.
    assert!(mock.received_on("/v1/messages").is_empty());
}

// === AWS Bedrock ===

const AWS_PARAM_KEY: &str = "AKIDPARAMS0000000001";
const AWS_PARAM_SECRET: &str = "secret/from+params";
const AWS_ENV_KEY: &str = "AKIDENVIRONMENT00002";
const AWS_ENV_SECRET: &str = "secret/from+environment";
const AWS_ENV_TOKEN: &str = "session-token/from=env";

fn bedrock_config(mock: &MockUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: bedrock-claude
    litellm_params:
      model: bedrock/anthropic.claude-3-haiku-20240307-v1:0
      aws_access_key_id: {AWS_PARAM_KEY}
      aws_secret_access_key: {AWS_PARAM_SECRET}
      aws_region_name: us-east-1
      aws_bedrock_runtime_endpoint: {base}
  - model_name: bedrock-cohere
    litellm_params:
      model: bedrock/cohere.command-r-v1:0
      aws_bedrock_runtime_endpoint: {base}
  - model_name: bedrock-cohere-converse
    litellm_params:
      model: bedrock/converse/cohere.command-r-v1:0
      aws_bedrock_runtime_endpoint: {base}
  - model_name: bedrock-cohere-invoke
    litellm_params:
      model: bedrock/invoke/cohere.command-r-plus-v1:0
      aws_bedrock_runtime_endpoint: {base}
  - model_name: titan-embed
    litellm_params:
      model: bedrock/amazon.titan-embed-text-v1
      aws_bedrock_runtime_endpoint: {base}
  - model_name: cohere-embed
    litellm_params:
      model: bedrock/cohere.embed-english-v3
      aws_bedrock_runtime_endpoint: {base}
router_settings:
  num_retries: 0
"#,
        base = mock.base()
    )
}

fn bedrock_env() -> [(&'static str, &'static str); 4] {
    [
        ("AWS_ACCESS_KEY_ID", AWS_ENV_KEY),
        ("AWS_SECRET_ACCESS_KEY", AWS_ENV_SECRET),
        ("AWS_SESSION_TOKEN", AWS_ENV_TOKEN),
        ("AWS_REGION_NAME", "eu-west-1"),
    ]
}

/// The request is SigV4-signed for `bedrock` in `region` with these credentials, over the
/// exact body that arrived, signing `content-type;host;x-amz-date` (plus the session token
/// when there is one) and no `x-amz-content-sha256`, dated now.
fn assert_signed(up: &Recorded, key: &str, secret: &str, region: &str, token: Option<&str>) {
    let signed = sigv4::verify(up, secret).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(signed.access_key_id, key);
    assert_eq!(signed.region, region);
    assert_eq!(signed.service, "bedrock");
    let mut names = vec!["content-type", "host", "x-amz-date"];
    if token.is_some() {
        names.push("x-amz-security-token");
    }
    assert_eq!(signed.signed_headers, names);
    assert_eq!(up.header("x-amz-security-token"), token);
    assert_eq!(up.header("x-amz-content-sha256"), None);
    assert_eq!(up.header("content-type"), Some("application/json"));
    // Signed at the time of the call (a loose bound: only a stale or fixed clock fails it).
    let amz_date = up.header("x-amz-date").unwrap();
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let (yy, mm, dd) = civil_from_days(days as i64 - 1);
    let today = format!("{y:04}{m:02}{d:02}");
    let yesterday = format!("{yy:04}{mm:02}{dd:02}");
    assert!(
        signed.date == today || signed.date == yesterday,
        "x-amz-date {amz_date} is not today ({today})"
    );
}

/// Howard Hinnant's days-to-civil: (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            era * 400 + yoe + 1
        } else {
            era * 400 + yoe
        },
        m,
        d,
    )
}

/// The adapter's golden Converse request (`converse_request.body.json`), as a client sends it.
fn converse_chat_request() -> Value {
    json!({
        "model": "bedrock-claude",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "user", "content": [
                {"type": "text", "text": "And this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C and sunny"},
            {"role": "user", "content": "Thanks. Summarise."}
        ],
        "max_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "tools": [{"type": "function", "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }}],
        "tool_choice": "auto",
        "top_k": 40
    })
}

#[test]
fn bedrock_converse_is_signed_for_the_exact_body_plain_and_streaming() {
    let mock = MockUpstream::start();
    let id = "anthropic.claude-3-haiku-20240307-v1%3A0";
    mock.script(
        &format!("/model/{id}/converse"),
        vec![body_reply(
            "application/json",
            fixture("bedrock/converse_response.json"),
        )],
    );
    mock.script(
        &format!("/model/{id}/converse-stream"),
        vec![Reply::chunked(
            "application/vnd.amazon.eventstream",
            &fixture("bedrock/converse_stream.bin"),
            13,
        )],
    );
    let proxy = Proxy::start(&bedrock_config(&mock), &bedrock_env());

    let res = chat(&proxy, converse_chat_request());
    assert_eq!(res.status, 200, "{}", res.text());
    let up = &mock.received_on(&format!("/model/{id}/converse"))[0];
    assert_eq!(up.method, "POST");
    assert_eq!(up.target, format!("/model/{id}/converse"));
    assert_eq!(up.body, fixture_body("bedrock/converse_request.body.json"));
    // Keys from litellm_params: the environment's session token is not theirs and is not sent.
    assert_signed(up, AWS_PARAM_KEY, AWS_PARAM_SECRET, "us-east-1", None);
    let got = res.json();
    let mut expected = fixture_json("bedrock/converse_response.openai.json");
    expected["id"] = got["id"].clone();
    expected["created"] = got["created"].clone();
    assert_eq!(got, expected);
    assert_eq!(
        got["choices"][0]["message"]["content"],
        "Paris is 18C and sunny."
    );

    let mut body = converse_chat_request();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let got = chunks(&chat(&proxy, body));
    assert_one_identity(&got);
    assert_eq!(
        got.into_iter().map(without_identity).collect::<Vec<_>>(),
        expected_chunks("bedrock/converse_stream.chunks.txt")
    );
    let up = &mock.received_on(&format!("/model/{id}/converse-stream"))[0];
    assert_eq!(up.body, fixture_body("bedrock/converse_request.body.json"));
    assert_signed(up, AWS_PARAM_KEY, AWS_PARAM_SECRET, "us-east-1", None);
}

#[test]
fn bedrock_cohere_uses_invoke_model_with_environment_credentials() {
    let mock = MockUpstream::start();
    let id = "cohere.command-r-v1:0";
    mock.script(
        &format!("/model/{id}/invoke"),
        vec![body_reply(
            "application/json",
            fixture("bedrock/cohere_command_r_response.json"),
        )
        .with_header("X-Amzn-Bedrock-Input-Token-Count", "9")
        .with_header("X-Amzn-Bedrock-Output-Token-Count", "5")],
    );
    mock.script(
        &format!("/model/{id}/invoke-with-response-stream"),
        vec![Reply::chunked(
            "application/vnd.amazon.eventstream",
            &fixture("bedrock/cohere_stream.bin"),
            7,
        )],
    );
    let proxy = Proxy::start(&bedrock_config(&mock), &bedrock_env());
    let messages =
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]);

    let res = chat(
        &proxy,
        json!({"model": "bedrock-cohere", "messages": messages, "max_tokens": 50, "temperature": 0.3}),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let up = &mock.received_on(&format!("/model/{id}/invoke"))[0];
    // InvokeModel paths keep the `:` as LiteLLM sends them.
    assert_eq!(up.target, format!("/model/{id}/invoke"));
    assert_eq!(
        up.body,
        fixture_body("bedrock/cohere_command_r_request.body.json")
    );
    assert_signed(
        up,
        AWS_ENV_KEY,
        AWS_ENV_SECRET,
        "eu-west-1",
        Some(AWS_ENV_TOKEN),
    );
    let got = res.json();
    assert_eq!(
        got["choices"][0]["message"]["content"],
        "Hi! How can I help?"
    );
    assert_eq!(got["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        got["usage"],
        json!({"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14})
    );

    let got = chunks(&chat(
        &proxy,
        json!({"model": "bedrock-cohere", "messages": messages, "max_tokens": 50, "temperature": 0.3, "stream": true, "stream_options": {"include_usage": true}}),
    ));
    assert_one_identity(&got);
    assert_eq!(
        got.into_iter().map(without_identity).collect::<Vec<_>>(),
        expected_chunks("bedrock/cohere_stream.chunks.txt")
    );
    let up = &mock.received_on(&format!("/model/{id}/invoke-with-response-stream"))[0];
    assert_eq!(
        up.body,
        fixture_body("bedrock/cohere_command_r_request.body.json")
    );
    assert_signed(
        up,
        AWS_ENV_KEY,
        AWS_ENV_SECRET,
        "eu-west-1",
        Some(AWS_ENV_TOKEN),
    );
}

#[test]
fn bedrock_converse_and_invoke_prefixes_force_the_route() {
    let mock = MockUpstream::start();
    mock.script(
        "/model/cohere.command-r-v1%3A0/converse",
        vec![body_reply(
            "application/json",
            fixture("bedrock/converse_response.json"),
        )],
    );
    mock.script(
        "/model/cohere.command-r-plus-v1:0/invoke",
        vec![body_reply(
            "application/json",
            fixture("bedrock/cohere_command_r_response.json"),
        )],
    );
    let proxy = Proxy::start(&bedrock_config(&mock), &bedrock_env());
    let res = chat(
        &proxy,
        json!({"model": "bedrock-cohere-converse", "messages": user("Hi")}),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let up = &mock.received_on("/model/cohere.command-r-v1%3A0/converse")[0];
    assert_eq!(
        up.json(),
        json!({"messages": [{"role": "user", "content": [{"text": "Hi"}]}], "inferenceConfig": {}})
    );
    assert_signed(
        up,
        AWS_ENV_KEY,
        AWS_ENV_SECRET,
        "eu-west-1",
        Some(AWS_ENV_TOKEN),
    );
    assert_eq!(res.json()["model"], "cohere.command-r-v1:0");

    let res = chat(
        &proxy,
        json!({"model": "bedrock-cohere-invoke", "messages": user("Hi")}),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let up = &mock.received_on("/model/cohere.command-r-plus-v1:0/invoke")[0];
    assert_eq!(up.json(), json!({"message": "Hi", "chat_history": []}));
    assert_signed(
        up,
        AWS_ENV_KEY,
        AWS_ENV_SECRET,
        "eu-west-1",
        Some(AWS_ENV_TOKEN),
    );
    assert_eq!(mock.received().len(), 2);
}

#[test]
fn bedrock_titan_and_cohere_embeddings() {
    let mock = MockUpstream::start();
    mock.script(
        "/model/amazon.titan-embed-text-v1/invoke",
        vec![body_reply(
            "application/json",
            fixture("bedrock/titan_embed_response.json"),
        )],
    );
    mock.script(
        "/model/cohere.embed-english-v3/invoke",
        vec![body_reply(
            "application/json",
            fixture("bedrock/cohere_embed_response.json"),
        )
        .with_header("X-Amzn-Bedrock-Input-Token-Count", "4")],
    );
    let proxy = Proxy::start(&bedrock_config(&mock), &bedrock_env());
    let url = proxy.url("/v1/embeddings");

    let res = post_json(
        &url,
        &json!({"model": "titan-embed", "input": "hello"}),
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let mut expected = fixture_json("bedrock/titan_embed_response.openai.json");
    expected["model"] = json!("amazon.titan-embed-text-v1");
    assert_eq!(res.json(), expected);
    let up = &mock.received_on("/model/amazon.titan-embed-text-v1/invoke")[0];
    assert_eq!(up.json(), json!({"inputText": "hello"}));
    assert_signed(
        up,
        AWS_ENV_KEY,
        AWS_ENV_SECRET,
        "eu-west-1",
        Some(AWS_ENV_TOKEN),
    );

    let res = post_json(
        &url,
        &json!({"model": "cohere-embed", "input": ["a", "b"]}),
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let got = res.json();
    assert_eq!(got["object"], "list");
    assert_eq!(
        got["data"][1],
        json!({"embedding": [0.3, 0.4], "index": 1, "object": "embedding"})
    );
    assert_eq!(got["usage"], json!({"prompt_tokens": 4, "total_tokens": 4}));
    let up = &mock.received_on("/model/cohere.embed-english-v3/invoke")[0];
    assert_eq!(
        up.json(),
        json!({"texts": ["a", "b"], "input_type": "search_document"})
    );
    assert_signed(
        up,
        AWS_ENV_KEY,
        AWS_ENV_SECRET,
        "eu-west-1",
        Some(AWS_ENV_TOKEN),
    );
}

// === Ollama ===

fn ollama_config(mock: &MockUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: ollama-gen
    litellm_params:
      model: ollama/llama3
      api_base: {base}
  - model_name: ollama-template
    litellm_params:
      model: ollama/llama3
      api_base: {base}/tpl
      initial_prompt_value: "<start>"
      roles: {{"system": {{"pre_message": "[S]", "post_message": "[/S]"}}, "user": {{"pre_message": "[U]", "post_message": "[/U]"}}}}
      final_prompt_value: "[A]"
  - model_name: ollama-chat
    litellm_params:
      model: ollama_chat/llama3.1
      api_base: {base}
      api_key: ollama-key
      num_ctx: 8192
  - model_name: ollama-embed
    litellm_params:
      model: ollama/nomic-embed-text
      api_base: {base}
router_settings:
  num_retries: 0
"#,
        base = mock.base()
    )
}

#[test]
fn ollama_generate_builds_the_prompt_and_streams_ndjson() {
    let mock = MockUpstream::start();
    mock.script(
        "/api/generate",
        vec![
            body_reply("application/json", fixture("ollama/generate_response.json")),
            Reply::chunked(
                "application/x-ndjson",
                &fixture("ollama/generate_stream.ndjson"),
                23,
            ),
        ],
    );
    mock.script(
        "/tpl/api/generate",
        vec![body_reply(
            "application/json",
            fixture("ollama/generate_response.json"),
        )],
    );
    let proxy = Proxy::start(&ollama_config(&mock), &[]);
    let messages = json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}]);

    let res = chat(
        &proxy,
        json!({"model": "ollama-gen", "messages": messages, "max_tokens": 20, "temperature": 0.5}),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let up = &mock.received_on("/api/generate")[0];
    assert_eq!(up.method, "POST");
    assert_eq!(up.header("authorization"), None);
    assert_eq!(
        up.json(),
        json!({"model": "llama3", "prompt": "### System:\nBe brief.\n\n### User:\nWhy is the sky blue?\n\n", "options": {"temperature": 0.5, "num_predict": 20}, "stream": false})
    );
    let got = res.json();
    assert_eq!(got["object"], "chat.completion");
    assert_eq!(
        got["choices"][0]["message"]["content"],
        "The sky is blue because of Rayleigh scattering."
    );
    assert_eq!(got["choices"][0]["finish_reason"], "length");
    assert_eq!(
        got["usage"],
        json!({"prompt_tokens": 26, "completion_tokens": 12, "total_tokens": 38})
    );

    let got = chunks(&chat(&proxy, streamed("ollama-gen", messages.clone())));
    assert_one_identity(&got);
    assert_eq!(text_of(&got), "The sky");
    assert_eq!(finish_of(&got), ["length"]);
    assert_eq!(got[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        usage_chunk(&got),
        json!({"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12})
    );
    assert_eq!(mock.received_on("/api/generate")[1].json()["stream"], true);

    let res = chat(
        &proxy,
        json!({"model": "ollama-template", "messages": messages}),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        mock.received_on("/tpl/api/generate")[0].json()["prompt"],
        "<start>[S]Be brief.[/S][U]Why is the sky blue?[/U][A]"
    );
}

#[test]
fn ollama_chat_speaks_api_chat_with_ndjson_streams_and_embeddings() {
    let mock = MockUpstream::start();
    mock.script(
        "/api/chat",
        vec![stream_or_json(
            "application/x-ndjson",
            "ollama/chat_stream.ndjson",
            17,
            "ollama/chat_response.json",
        )],
    );
    mock.script(
        "/api/embed",
        vec![body_reply(
            "application/json",
            fixture("ollama/embed_response.json"),
        )],
    );
    let proxy = Proxy::start(&ollama_config(&mock), &[]);

    let res = chat(
        &proxy,
        json!({"model": "ollama-chat", "messages": user("Capital of France?"), "max_tokens": 16}),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let up = &mock.received_on("/api/chat")[0];
    assert_eq!(up.header("authorization"), Some("Bearer ollama-key"));
    assert_eq!(up.header("content-type"), Some("application/json"));
    // `stream: false` is always written: Ollama streams by default.
    assert_eq!(
        String::from_utf8_lossy(&up.body),
        r#"{"model":"llama3.1","messages":[{"role":"user","content":"Capital of France?"}],"options":{"num_predict":16,"num_ctx":8192},"stream":false}"#
    );
    let got = res.json();
    assert_eq!(
        got["choices"][0]["message"]["content"],
        "Paris is the capital of France."
    );
    assert_eq!(
        got["usage"],
        json!({"prompt_tokens": 26, "completion_tokens": 8, "total_tokens": 34})
    );

    let got = chunks(&chat(
        &proxy,
        streamed("ollama-chat", user("Capital of France?")),
    ));
    assert_one_identity(&got);
    assert_eq!(text_of(&got), "Paris é.");
    assert_eq!(finish_of(&got), ["stop"]);
    assert_eq!(
        usage_chunk(&got),
        json!({"prompt_tokens": 26, "completion_tokens": 3, "total_tokens": 29})
    );

    let res = post_json(
        &proxy.url("/v1/embeddings"),
        &json!({"model": "ollama-embed", "input": ["a", "b"]}),
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        mock.received_on("/api/embed")[0].json(),
        json!({"model": "nomic-embed-text", "input": ["a", "b"]})
    );
    let got = res.json();
    assert_eq!(got["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(got["data"][1]["embedding"], json!([-0.0098, 0.0612, 0.25]));
    assert_eq!(got["usage"], json!({"prompt_tokens": 8, "total_tokens": 8}));
}

// === Hugging Face ===

/// LiteLLM's documented custom-prompt-template deployment, pointed at the mock.
fn hf_config(mock: &MockUpstream) -> String {
    let doc = fixture_text("huggingface/09-custom-prompt-template.yaml")
        .replace("<your-api-base>", &format!("{}/mistral", mock.base()))
        .replace("<your-api-key>", "hf_tgi_key");
    format!(
        r#"{doc}
  - model_name: hf-chat
    litellm_params:
      model: huggingface/meta-llama/Llama-3.1-8B-Instruct
      api_base: {base}/tgi
      api_key: hf_chat_key
router_settings:
  num_retries: 0
"#,
        base = mock.base()
    )
}

#[test]
fn huggingface_tgi_speaks_openai_chat() {
    let mock = MockUpstream::start();
    mock.script(
        "/tgi/v1/chat/completions",
        vec![stream_or_json(
            "text/event-stream",
            "huggingface/chat_stream.sse",
            50,
            "huggingface/chat_response.json",
        )],
    );
    let proxy = Proxy::start(&hf_config(&mock), &[]);
    let res = request(
        "POST",
        &proxy.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        Some(br#"{"model":"hf-chat","messages":[{"role":"user","content":"What is deep learning?"}],"max_tokens":10}"#),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.body, fixture("huggingface/chat_response.json"));
    let up = &mock.received_on("/tgi/v1/chat/completions")[0];
    assert_eq!(up.header("authorization"), Some("Bearer hf_chat_key"));
    // The repo id as `model`, and nothing LiteLLM-internal (LiteLLM leaks `max_retries`).
    assert_eq!(
        String::from_utf8_lossy(&up.body),
        r#"{"model":"meta-llama/Llama-3.1-8B-Instruct","messages":[{"role":"user","content":"What is deep learning?"}],"max_tokens":10}"#
    );

    let got = chunks(&chat(
        &proxy,
        streamed("hf-chat", user("What is deep learning?")),
    ));
    assert_eq!(text_of(&got), "Deep learning");
    assert_eq!(finish_of(&got), ["length"]);
    assert_eq!(
        usage_chunk(&got),
        json!({"prompt_tokens": 15, "completion_tokens": 2, "total_tokens": 17})
    );
}

#[test]
fn huggingface_custom_prompt_template_goes_to_tgi_generate() {
    let mock = MockUpstream::start();
    mock.script(
        "/mistral/generate",
        vec![body_reply(
            "application/json",
            fixture("huggingface/tgi_generate_response.json"),
        )],
    );
    mock.script(
        "/mistral/generate_stream",
        vec![Reply::chunked(
            "text/event-stream",
            &fixture("huggingface/tgi_generate_stream.sse"),
            31,
        )],
    );
    let proxy = Proxy::start(&hf_config(&mock), &[]);
    let messages = json!([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]);
    // §6.6's worked example of this template.
    let prompt = " \n<|im_start|>system\nS<|im_end|><|im_start|>user\nU<|im_end|>\n";

    let res = chat(&proxy, json!({"model": "mistral-7b", "messages": messages}));
    assert_eq!(res.status, 200, "{}", res.text());
    let up = &mock.received_on("/mistral/generate")[0];
    assert_eq!(up.header("authorization"), Some("Bearer hf_tgi_key"));
    assert_eq!(
        up.json(),
        json!({"inputs": prompt, "parameters": {"max_new_tokens": 4096, "details": true, "return_full_text": false}, "stream": false})
    );
    let got = res.json();
    assert_eq!(got["object"], "chat.completion");
    assert_eq!(
        got["choices"][0]["message"]["content"],
        "Hello! How can I help you today?"
    );
    assert_eq!(got["choices"][0]["finish_reason"], "stop");
    assert_eq!(got["usage"]["completion_tokens"], 9);

    let got = chunks(&chat(&proxy, streamed("mistral-7b", messages)));
    assert_one_identity(&got);
    // Chunks name the upstream model (the repo id), not the proxy's model_name.
    let expected: Vec<Value> = expected_chunks("huggingface/tgi_generate_stream.expected.jsonl")
        .into_iter()
        .map(|mut c| {
            c["model"] = json!("mistralai/Mistral-7B-Instruct-v0.1");
            c
        })
        .collect();
    assert_eq!(
        got.into_iter().map(without_identity).collect::<Vec<_>>(),
        expected
    );
    let up = &mock.received_on("/mistral/generate_stream")[0];
    assert_eq!(up.json()["inputs"], prompt);
    assert_eq!(up.json()["stream"], true);
}

// === Errors ===

/// One deployment per provider, all on one mock, no retries.
fn every_provider_config(mock: &MockUpstream, extra: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: azure
    litellm_params: {{model: azure/dep, api_base: "{base}", api_key: k, api_version: "2024-10-21"}}
  - model_name: anthropic
    litellm_params: {{model: anthropic/claude-3-5-sonnet-20241022, api_base: "{base}", api_key: k}}
  - model_name: bedrock
    litellm_params: {{model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, aws_access_key_id: AKID, aws_secret_access_key: s, aws_region_name: us-east-1, aws_bedrock_runtime_endpoint: "{base}"}}
  - model_name: ollama
    litellm_params: {{model: ollama_chat/llama3.1, api_base: "{base}"}}
  - model_name: huggingface
    litellm_params: {{model: huggingface/org/m, api_base: "{base}/tgi", api_key: k}}
  - model_name: huggingface-tgi
    litellm_params: {{model: huggingface/org/m, api_base: "{base}/gen", api_key: k, roles: {{"user": {{"pre_message": "[U]", "post_message": "[/U]"}}}}}}
router_settings:
  num_retries: 0
{extra}"#,
        base = mock.base()
    )
}

/// Each provider's path on the mock, and its error body for a status and text.
fn provider_paths() -> Vec<(&'static str, &'static str)> {
    vec![
        ("azure", "/openai/deployments/dep/chat/completions"),
        ("anthropic", "/v1/messages"),
        (
            "bedrock",
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        ),
        ("ollama", "/api/chat"),
        ("huggingface", "/tgi/v1/chat/completions"),
        ("huggingface-tgi", "/gen/generate"),
    ]
}

#[test]
fn every_providers_rate_limit_is_a_429_throttling_error_with_retry_after() {
    let mock = MockUpstream::start();
    let rate_limited = |body: String, extra: Option<(&str, &str)>| {
        let mut headers = vec![("retry-after".to_string(), "7".to_string())];
        headers.extend(extra.map(|(k, v)| (k.to_string(), v.to_string())));
        Reply::Bytes {
            status: 429,
            content_type: "application/json".into(),
            headers,
            body: body.into_bytes(),
        }
    };
    for (model, path) in provider_paths() {
        let reply = match model {
            "azure" => rate_limited(fixture_text("azure/error_429.json"), None),
            "anthropic" => rate_limited(
                json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}).to_string(),
                None,
            ),
            "bedrock" => rate_limited(
                json!({"message": "Too many tokens, please wait before trying again."}).to_string(),
                Some(("x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")),
            ),
            "ollama" => rate_limited(json!({"error": "too many concurrent requests"}).to_string(), None),
            _ => rate_limited(
                json!({"error": "Model is overloaded", "error_type": "overloaded"}).to_string(),
                None,
            ),
        };
        mock.script(path, vec![reply]);
    }
    let proxy = Proxy::start(&every_provider_config(&mock, ""), &[]);
    for (model, path) in provider_paths() {
        let res = chat(&proxy, json!({"model": model, "messages": user("hi")}));
        assert_eq!(res.status, 429, "{model}: {}", res.text());
        let err = error_of(&res);
        assert_eq!(err["type"], "throttling_error", "{model}: {err}");
        assert!(
            message_of(&err).starts_with("litellm.RateLimitError: RateLimitError: "),
            "{model}: {err}"
        );
        assert_eq!(res.header("retry-after"), Some("7"), "{model}");
        assert_eq!(mock.received_on(path).len(), 1, "{model}: no retry");
    }
}

#[test]
fn auth_failures_are_401s_for_every_provider() {
    let mock = MockUpstream::start();
    for (model, path) in provider_paths() {
        let reply = match model {
            "azure" => error_reply(401, &fixture_text("azure/error_401.json")),
            "anthropic" => error_reply(
                401,
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            ),
            // AWS answers bad credentials with 403 and the exception name in a header.
            "bedrock" => error_reply(
                403,
                r#"{"message":"The security token included in the request is invalid."}"#,
            )
            .with_header("x-amzn-errortype", "UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/"),
            "ollama" => error_reply(401, r#"{"error":"unauthorized"}"#),
            _ => error_reply(401, r#"{"error":"Invalid credentials in Authorization header"}"#),
        };
        mock.script(path, vec![reply]);
    }
    let proxy = Proxy::start(&every_provider_config(&mock, ""), &[]);
    for (model, path) in provider_paths() {
        // Anthropic is asked for a stream: a stream that fails before its first chunk is a plain
        // JSON error too.
        let stream = model == "anthropic";
        let res = chat(
            &proxy,
            json!({"model": model, "messages": user("hi"), "stream": stream}),
        );
        assert_eq!(res.status, 401, "{model}: {}", res.text());
        assert!(res
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"));
        let err = error_of(&res);
        assert!(
            message_of(&err).starts_with("litellm.AuthenticationError: AuthenticationError: "),
            "{model}: {err}"
        );
        assert_eq!(
            mock.received_on(path).len(),
            1,
            "{model}: auth errors are not retried"
        );
    }
}

#[test]
fn anthropic_overloaded_is_retried_then_surfaced_as_a_5xx() {
    let mock = MockUpstream::start();
    let overloaded =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    mock.script(
        "/once/v1/messages",
        vec![
            error_reply(529, overloaded),
            body_reply("application/json", fixture("anthropic/response_text.json")),
        ],
    );
    mock.script("/always/v1/messages", vec![error_reply(529, overloaded)]);
    let cfg = format!(
        r#"
model_list:
  - model_name: claude-once
    litellm_params: {{model: anthropic/claude-3-5-sonnet-20241022, api_base: "{base}/once", api_key: k}}
  - model_name: claude-always
    litellm_params: {{model: anthropic/claude-3-5-sonnet-20241022, api_base: "{base}/always", api_key: k}}
router_settings:
  num_retries: 2
  retry_after: 0
"#,
        base = mock.base()
    );
    let proxy = Proxy::start(&cfg, &[]);
    let res = chat(
        &proxy,
        json!({"model": "claude-once", "messages": user("hi")}),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-litellm-attempted-retries"), Some("1"));
    assert_eq!(mock.received_on("/once/v1/messages").len(), 2);

    let res = chat(
        &proxy,
        json!({"model": "claude-always", "messages": user("hi")}),
    );
    assert!(
        (500..600).contains(&res.status),
        "{} {}",
        res.status,
        res.text()
    );
    let err = error_of(&res);
    assert!(
        message_of(&err).contains("AnthropicException - Overloaded"),
        "{err}"
    );
    assert_eq!(
        mock.received_on("/always/v1/messages").len(),
        3,
        "one call and two retries"
    );
}

#[test]
fn context_window_errors_are_400s_and_use_context_window_fallbacks() {
    let mock = MockUpstream::start();
    mock.script(
        "/small/v1/messages",
        vec![error_reply(
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 215000 tokens > 200000 maximum"}}"#,
        )],
    );
    mock.script(
        "/big/v1/messages",
        vec![body_reply(
            "application/json",
            fixture("anthropic/response_text.json"),
        )],
    );
    mock.script(
        "/tgi/generate",
        vec![error_reply(
            422,
            &fixture_text("huggingface/tgi_error_context.json"),
        )],
    );
    let cfg = format!(
        r#"
model_list:
  - model_name: claude-small
    litellm_params: {{model: anthropic/claude-3-haiku-20240307, api_base: "{base}/small", api_key: k}}
  - model_name: claude-small-alone
    litellm_params: {{model: anthropic/claude-3-haiku-20240307, api_base: "{base}/small", api_key: k}}
  - model_name: claude-big
    litellm_params: {{model: anthropic/claude-3-5-sonnet-20241022, api_base: "{base}/big", api_key: k}}
  - model_name: tgi
    litellm_params: {{model: huggingface/org/m, api_base: "{base}/tgi", initial_prompt_value: "x"}}
  - model_name: azure-small
    litellm_params: {{model: azure/small, api_base: "{base}", api_key: k}}
  - model_name: azure-filtered
    litellm_params: {{model: azure/filtered, api_base: "{base}", api_key: k}}
router_settings:
  num_retries: 2
  context_window_fallbacks: [{{"claude-small": ["claude-big"]}}, {{"azure-small": ["claude-big"]}}]
  content_policy_fallbacks: [{{"azure-filtered": ["claude-big"]}}]
"#,
        base = mock.base()
    );
    let proxy = Proxy::start(&cfg, &[]);
    let res = chat(
        &proxy,
        json!({"model": "claude-small", "messages": user("long")}),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-litellm-attempted-fallbacks"), Some("1"));
    assert_eq!(res.header("x-litellm-model-group"), Some("claude-big"));
    assert_eq!(
        mock.received_on("/small/v1/messages").len(),
        1,
        "not retried"
    );
    assert_eq!(mock.received_on("/big/v1/messages").len(), 1);

    let res = chat(
        &proxy,
        json!({"model": "claude-small-alone", "messages": user("long")}),
    );
    assert_eq!(res.status, 400, "{}", res.text());
    let err = error_of(&res);
    assert!(
        message_of(&err).starts_with("litellm.ContextWindowExceededError: ContextWindowExceededError: AnthropicException - prompt is too long"),
        "{err}"
    );
    assert_eq!(mock.received_on("/small/v1/messages").len(), 2);

    // Only OpenAI's `error.code` says what these are: LiteLLM classifies the whole error
    // string, code included.
    for (model, path, message, code) in [
        (
            "azure-small",
            "/openai/deployments/small/chat/completions",
            "Your input exceeds the context window of this model.",
            "context_length_exceeded",
        ),
        (
            "azure-filtered",
            "/openai/deployments/filtered/chat/completions",
            "Your request was rejected by our safety system.",
            "content_policy_violation",
        ),
    ] {
        let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}});
        mock.script(path, vec![error_reply(400, &body.to_string())]);
        let big_before = mock.received_on("/big/v1/messages").len();
        let res = chat(&proxy, json!({"model": model, "messages": user("long")}));
        assert_eq!(res.status, 200, "{model}: {}", res.text());
        assert_eq!(
            res.header("x-litellm-model-group"),
            Some("claude-big"),
            "{model}"
        );
        assert_eq!(mock.received_on(path).len(), 1, "{model}: not retried");
        assert_eq!(mock.received_on("/big/v1/messages").len(), big_before + 1);
    }

    // TGI says it with a 422.
    let res = chat(&proxy, json!({"model": "tgi", "messages": user("long")}));
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(message_of(&error_of(&res)).contains("ContextWindowExceededError"));
}

// === drop_params ===

/// Models whose provider has no place for `logit_bias`, and the path each would be called on.
fn strict_models() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("anthropic", "/v1/messages", "anthropic"),
        (
            "bedrock",
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
            "bedrock",
        ),
        ("ollama", "/api/chat", "ollama_chat"),
        ("huggingface-tgi", "/gen/generate", "huggingface"),
    ]
}

#[test]
fn unsupported_params_are_refused_without_calling_the_provider() {
    let mock = MockUpstream::start();
    let proxy = Proxy::start(&every_provider_config(&mock, ""), &[]);
    for (model, _, provider) in strict_models() {
        let res = chat(
            &proxy,
            json!({"model": model, "messages": user("hi"), "logit_bias": {"50256": -100}}),
        );
        assert_eq!(res.status, 400, "{model}: {}", res.text());
        let err = error_of(&res);
        let msg = message_of(&err);
        assert!(
            msg.starts_with("litellm.UnsupportedParamsError: ")
                && msg.contains(&format!(
                    "{provider} does not support parameters: ['logit_bias']"
                )),
            "{model}: {msg}"
        );
        assert!(msg.contains("drop_params"), "{msg}");
    }
    assert!(mock.received().is_empty(), "{:?}", mock.received());
}

#[test]
fn drop_params_in_litellm_settings_drops_them() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/messages",
        vec![body_reply(
            "application/json",
            fixture("anthropic/response_text.json"),
        )],
    );
    mock.script(
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        vec![body_reply(
            "application/json",
            fixture("bedrock/converse_response.json"),
        )],
    );
    mock.script(
        "/api/chat",
        vec![body_reply(
            "application/json",
            fixture("ollama/chat_response.json"),
        )],
    );
    mock.script(
        "/gen/generate",
        vec![body_reply(
            "application/json",
            fixture("huggingface/tgi_generate_response.json"),
        )],
    );
    let proxy = Proxy::start(
        &every_provider_config(&mock, "litellm_settings:\n  drop_params: true\n"),
        &[],
    );
    for (model, path, _) in strict_models() {
        let res = chat(
            &proxy,
            json!({"model": model, "messages": user("hi"), "logit_bias": {"50256": -100}, "temperature": 0.5}),
        );
        assert_eq!(res.status, 200, "{model}: {}", res.text());
        let up = &mock.received_on(path)[0];
        let body = String::from_utf8_lossy(&up.body);
        assert!(
            !body.contains("logit_bias") && !body.contains("50256"),
            "{model}: {body}"
        );
        assert!(
            body.contains("0.5"),
            "{model}: the supported temperature stays: {body}"
        );
    }
}

#[test]
fn a_bedrock_stream_that_fails_mid_way_ends_with_an_error_event_and_done() {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let frame = |headers: &[(&str, &str)], payload: &str| {
        let mut message = Message::new(bytes::Bytes::from(payload.to_string()));
        for (k, v) in headers {
            message = message.add_header(Header::new(
                (*k).to_string(),
                HeaderValue::String((*v).to_string().into()),
            ));
        }
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    };
    let mut body = frame(
        &[
            (":event-type", "contentBlockDelta"),
            (":message-type", "event"),
        ],
        r#"{"contentBlockIndex":0,"delta":{"text":"Half"}}"#,
    );
    body.extend(frame(
        &[
            (":exception-type", "modelStreamErrorException"),
            (":message-type", "exception"),
        ],
        r#"{"message":"the model stopped"}"#,
    ));
    let mock = MockUpstream::start();
    mock.script(
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
        vec![Reply::chunked(
            "application/vnd.amazon.eventstream",
            &body,
            1 << 20,
        )],
    );
    let proxy = Proxy::start(&every_provider_config(&mock, ""), &[]);
    let res = chat(&proxy, streamed("bedrock", user("hi")));
    assert_eq!(res.status, 200, "{}", res.text());
    let data = res.sse_data();
    assert_eq!(data.len(), 3, "{data:?}");
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["content"], "Half");
    let error: Value = serde_json::from_str(&data[1]).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("BedrockException - the model stopped"),
        "{error}"
    );
    assert_eq!(data[2], "[DONE]");
}
