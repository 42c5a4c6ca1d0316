//! Golden tests for the Bedrock adapter. Fixtures live in `tests/fixtures/bedrock/`; run with
//! `BEDROCK_BLESS=1` to rewrite them after an intended change (then review the diff).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::HeaderMap;
use aws_smithy_types::base64;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::eventstream::tests::{event_frame, exception_frame};
use super::*;
use crate::providers::params::prepare;
use crate::providers::{testing, Usage};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bedrock/");
const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Compare with a fixture file (or write it with `BEDROCK_BLESS=1`).
fn golden(name: &str, actual: &[u8]) {
    let path = format!("{FIXTURES}{name}");
    if std::env::var_os("BEDROCK_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(&expected),
        "fixture {name} differs"
    );
    assert_eq!(actual, expected.as_slice(), "fixture {name} differs");
}

fn fixture(name: &str) -> Bytes {
    let path = format!("{FIXTURES}{name}");
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

use crate::providers::testing::obj;

fn params(extra: Value) -> Map<String, Value> {
    let mut p = obj(json!({
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
        "aws_region_name": "us-east-1",
    }));
    p.extend(obj(extra));
    p
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn adapter(model: &str, extra: Value) -> BedrockAdapter {
    BedrockAdapter::with_env(model, &params(extra), no_env).unwrap()
}

/// 2024-05-01T12:00:00Z.
fn fixed_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_714_564_800)
}

fn ctx(drop_params: bool) -> RequestContext {
    RequestContext {
        now: fixed_now(),
        drop_params,
    }
}

fn stream_ctx(include_usage: bool) -> StreamContext {
    StreamContext {
        id: "chatcmpl-test".into(),
        created: 1_714_564_800,
        model: "bedrock-claude".into(),
        include_usage,
    }
}

fn header<'a>(req: &'a UpstreamRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.to_str().unwrap())
}

fn chat_request(body: Value) -> PreparedRequest {
    prepare(obj(body), &Map::new())
}

// === Independent SigV4 (AWS's published algorithm), to check the crate's output ===

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.iter().map(|b| b ^ 0x36).collect::<Vec<_>>());
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(block.iter().map(|b| b ^ 0x5c).collect::<Vec<_>>());
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature over `canonical_request` for `amz_date` (`YYYYMMDDTHHMMSSZ`).
fn reference_signature(
    secret: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()))
}

#[test]
fn the_reference_signer_matches_the_aws_get_vanilla_vector() {
    let canonical = "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(
        reference_signature(
            SECRET,
            "20150830T123600Z",
            "us-east-1",
            "service",
            canonical
        ),
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

#[test]
fn converse_requests_are_signed_as_recorded_and_the_signature_verifies() {
    let a = adapter("anthropic.claude-3-haiku-20240307-v1:0", json!({}));
    let req = a
        .build_request(
            Endpoint::ChatCompletions,
            &chat_request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10})),
            &ctx(false),
        )
        .unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.url.to_string(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    let names: Vec<&str> = req.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, vec!["content-type", "x-amz-date", "authorization"]);
    assert_eq!(header(&req, "x-amz-date"), Some("20240501T120000Z"));
    assert!(header(&req, "x-amz-content-sha256").is_none());

    // The canonical request, written out from the SigV4 spec: the path is URI-encoded once more
    // (`%3A` -> `%253A`), the host comes from the URL, the payload hash is over the exact body.
    let canonical = format!(
        "POST\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n\ncontent-type:application/json\nhost:bedrock-runtime.us-east-1.amazonaws.com\nx-amz-date:20240501T120000Z\n\ncontent-type;host;x-amz-date\n{}",
        hex(&Sha256::digest(&req.body))
    );
    let signature = reference_signature(
        SECRET,
        "20240501T120000Z",
        "us-east-1",
        "bedrock",
        &canonical,
    );
    assert_eq!(
        header(&req, "authorization").unwrap(),
        format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/20240501/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={signature}"
        )
    );
}

#[test]
fn a_session_token_is_sent_and_signed() {
    let a = adapter(
        "cohere.command-r-v1:0",
        json!({"aws_session_token": "TOKEN/1"}),
    );
    let req = a
        .build_request(
            Endpoint::ChatCompletions,
            &chat_request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})),
            &ctx(false),
        )
        .unwrap();
    assert_eq!(
        req.url.to_string(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/cohere.command-r-v1:0/invoke"
    );
    assert_eq!(header(&req, "x-amz-security-token"), Some("TOKEN/1"));
    let canonical = format!(
        "POST\n/model/cohere.command-r-v1%3A0/invoke\n\ncontent-type:application/json\nhost:bedrock-runtime.us-east-1.amazonaws.com\nx-amz-date:20240501T120000Z\nx-amz-security-token:TOKEN/1\n\ncontent-type;host;x-amz-date;x-amz-security-token\n{}",
        hex(&Sha256::digest(&req.body))
    );
    let signature = reference_signature(
        SECRET,
        "20240501T120000Z",
        "us-east-1",
        "bedrock",
        &canonical,
    );
    assert!(
        header(&req, "authorization").unwrap().ends_with(&format!(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature={signature}"
        )),
        "{:?}",
        header(&req, "authorization")
    );
}

#[test]
fn missing_credentials_fail_before_any_upstream_call_and_debug_hides_secrets() {
    let a = BedrockAdapter::with_env(
        "anthropic.claude-3-haiku-20240307-v1:0",
        &Map::new(),
        no_env,
    )
    .unwrap();
    let e = a
        .build_request(
            Endpoint::ChatCompletions,
            &chat_request(json!({"messages": [{"role": "user", "content": "hi"}]})),
            &ctx(false),
        )
        .unwrap_err();
    assert_eq!((e.class, e.status), (ErrorClass::Auth, 401));
    assert!(
        e.message.starts_with("litellm.AuthenticationError: "),
        "{}",
        e.message
    );

    let a = adapter(
        "anthropic.claude-3-haiku-20240307-v1:0",
        json!({"aws_session_token": "SESSION-SECRET"}),
    );
    let debug = format!("{a:?}");
    for secret in [KEY_ID, SECRET, "SESSION-SECRET"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn a_key_pair_and_its_session_token_come_from_one_place() {
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some("ENVKEY".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
        "AWS_SESSION_TOKEN" => Some("ENVTOKEN".to_string()),
        _ => None,
    };
    let body = chat_request(json!({"messages": [{"role": "user", "content": "hi"}]}));
    // Keys in litellm_params: the environment's session token is not theirs.
    let a = BedrockAdapter::with_env("anthropic.claude-v2", &params(json!({})), env).unwrap();
    let req = a
        .build_request(Endpoint::ChatCompletions, &body, &ctx(false))
        .unwrap();
    assert!(header(&req, "authorization")
        .unwrap()
        .contains(&format!("Credential={KEY_ID}/")));
    assert_eq!(header(&req, "x-amz-security-token"), None);
    // Only half a pair in the params: the environment's pair and token are used together.
    let half = obj(json!({"aws_access_key_id": "HALF", "aws_region_name": "us-east-1"}));
    let a = BedrockAdapter::with_env("anthropic.claude-v2", &half, env).unwrap();
    let req = a
        .build_request(Endpoint::ChatCompletions, &body, &ctx(false))
        .unwrap();
    assert!(header(&req, "authorization")
        .unwrap()
        .contains("Credential=ENVKEY/"));
    assert_eq!(header(&req, "x-amz-security-token"), Some("ENVTOKEN"));
}

#[test]
fn credentials_region_and_endpoint_come_from_the_environment_when_params_omit_them() {
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some("ENVKEY".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
        "AWS_REGION" => Some("eu-west-1".to_string()),
        _ => None,
    };
    let a = BedrockAdapter::with_env("converse/meta.llama3-1-8b-instruct-v1:0", &Map::new(), env)
        .unwrap();
    assert_eq!(a.region, "eu-west-1");
    assert_eq!(
        a.api_base(),
        Some("https://bedrock-runtime.eu-west-1.amazonaws.com")
    );
    let req = a
        .build_request(
            Endpoint::ChatCompletions,
            &chat_request(json!({"messages": [{"role": "user", "content": "hi"}]})),
            &ctx(false),
        )
        .unwrap();
    assert!(header(&req, "authorization")
        .unwrap()
        .contains("Credential=ENVKEY/20240501/eu-west-1/bedrock/"));

    let env = |name: &str| match name {
        "AWS_REGION_NAME" => Some("us-east-2".to_string()),
        "AWS_REGION" => Some("eu-west-1".to_string()),
        "AWS_BEDROCK_RUNTIME_ENDPOINT" => Some("http://127.0.0.1:9000/".to_string()),
        _ => None,
    };
    let a = BedrockAdapter::with_env("anthropic.claude-v2", &Map::new(), env).unwrap();
    assert_eq!(
        (a.region.as_str(), a.endpoint.as_str()),
        ("us-east-2", "http://127.0.0.1:9000")
    );
    let a = BedrockAdapter::with_env("anthropic.claude-v2", &Map::new(), no_env).unwrap();
    assert_eq!(a.region, "us-west-2");
    let a = adapter(
        "anthropic.claude-v2",
        json!({"aws_bedrock_runtime_endpoint": "https://vpce.example.com", "api_base": "http://mock:8080/"}),
    );
    assert_eq!(
        a.url.as_str(),
        "http://mock:8080/model/anthropic.claude-v2/converse"
    );
    let a = adapter(
        "anthropic.claude-v2",
        json!({"aws_bedrock_runtime_endpoint": "https://vpce.example.com"}),
    );
    assert_eq!(
        a.stream_url.as_str(),
        "https://vpce.example.com/model/anthropic.claude-v2/converse-stream"
    );
}

#[test]
fn routes_follow_the_model_family_and_explicit_prefixes() {
    for (model, route, id) in [
        (
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            Route::Converse,
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "anthropic.claude-instant-v1",
            Route::Converse,
            "anthropic.claude-instant-v1",
        ),
        (
            "us.anthropic.claude-3-haiku-20240307-v1:0",
            Route::Converse,
            "us.anthropic.claude-3-haiku-20240307-v1:0",
        ),
        (
            "meta.llama3-1-70b-instruct-v1:0",
            Route::Converse,
            "meta.llama3-1-70b-instruct-v1:0",
        ),
        (
            "amazon.nova-pro-v1:0",
            Route::Converse,
            "amazon.nova-pro-v1:0",
        ),
        (
            "cohere.command-r-plus-v1:0",
            Route::Cohere(CohereApi::Chat),
            "cohere.command-r-plus-v1:0",
        ),
        (
            "cohere.command-text-v14",
            Route::Cohere(CohereApi::Generate),
            "cohere.command-text-v14",
        ),
        (
            "cohere.command-light-text-v14",
            Route::Cohere(CohereApi::Generate),
            "cohere.command-light-text-v14",
        ),
        (
            "converse/cohere.command-r-v1:0",
            Route::Converse,
            "cohere.command-r-v1:0",
        ),
        (
            "invoke/cohere.command-r-v1:0",
            Route::Cohere(CohereApi::Chat),
            "cohere.command-r-v1:0",
        ),
        (
            "amazon.titan-embed-text-v1",
            Route::Embed(EmbedModel::TitanV1),
            "amazon.titan-embed-text-v1",
        ),
        (
            "amazon.titan-embed-text-v2:0",
            Route::Embed(EmbedModel::TitanV2),
            "amazon.titan-embed-text-v2:0",
        ),
        (
            "cohere.embed-english-v3",
            Route::Embed(EmbedModel::Cohere),
            "cohere.embed-english-v3",
        ),
    ] {
        let a = adapter(model, json!({}));
        assert_eq!((a.route, a.model_id.as_str()), (route, id), "{model}");
    }
    let e = BedrockAdapter::with_env("invoke/anthropic.claude-v2", &params(json!({})), no_env)
        .unwrap_err();
    assert_eq!(e.status, 400);
    assert!(
        e.message
            .contains("use bedrock/converse/anthropic.claude-v2"),
        "{}",
        e.message
    );

    let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc";
    let a = adapter(&format!("converse/{arn}"), json!({}));
    assert_eq!(
        a.url.as_str(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc/converse"
    );

    let chat = adapter("amazon.titan-embed-text-v1", json!({}));
    let e = chat
        .build_request(
            Endpoint::ChatCompletions,
            &chat_request(json!({"messages": []})),
            &ctx(false),
        )
        .unwrap_err();
    assert!(
        e.message.contains("does not serve /chat/completions"),
        "{}",
        e.message
    );
    let mut out = Vec::new();
    chat.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(false))
        .finish(&mut out);
    assert!(matches!(out.as_slice(), [StreamEvent::Error(e)] if e.status == 400));
}

#[test]
fn the_adapter_is_reachable_through_adapter_for() {
    let a = crate::providers::adapter_for("bedrock/cohere.command-text-v14", &params(json!({})))
        .unwrap();
    assert_eq!(a.name(), "bedrock");
    assert_eq!(
        a.api_base(),
        Some("https://bedrock-runtime.us-east-1.amazonaws.com")
    );
}

fn converse_chat_request() -> PreparedRequest {
    chat_request(json!({
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
        "top_k": 40,
        "stream": false
    }))
}

#[test]
fn converse_body_maps_openai_messages_params_and_tools() {
    let a = adapter("anthropic.claude-3-haiku-20240307-v1:0", json!({}));
    let req = a
        .build_request(
            Endpoint::ChatCompletions,
            &converse_chat_request(),
            &ctx(false),
        )
        .unwrap();
    golden("converse_request.body.json", &req.body);
}

#[test]
fn user_and_n_1_pass_unsent_as_in_litellm() {
    let neutral = |body: Value| chat_request(body);
    let a = adapter("anthropic.claude-3-haiku-20240307-v1:0", json!({}));
    let req = a
        .build_request(
            Endpoint::ChatCompletions,
            &neutral(
                json!({"messages": [{"role": "user", "content": "hi"}], "n": 1, "user": "u-1"}),
            ),
            &ctx(false),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&req.body),
        r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{}}"#
    );
    let e = a
        .build_request(
            Endpoint::ChatCompletions,
            &neutral(json!({"messages": [{"role": "user", "content": "hi"}], "n": 2})),
            &ctx(false),
        )
        .unwrap_err();
    assert!(e.message.contains("['n']"), "{}", e.message);
    let a = adapter("cohere.command-r-v1:0", json!({}));
    let req = a
        .build_request(
            Endpoint::ChatCompletions,
            &neutral(json!({"messages": [{"role": "user", "content": "hi"}], "user": "u-1"})),
            &ctx(false),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&req.body),
        r#"{"message":"hi","chat_history":[]}"#
    );
    let a = adapter("amazon.titan-embed-text-v1", json!({}));
    let req = a
        .build_request(
            Endpoint::Embeddings,
            &neutral(json!({"input": "hi", "user": "u-1"})),
            &ctx(false),
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&req.body), r#"{"inputText":"hi"}"#);
}

#[test]
fn converse_unsupported_params_are_refused_or_dropped() {
    let a = adapter("anthropic.claude-3-haiku-20240307-v1:0", json!({}));
    let request = chat_request(json!({
        "messages": [{"role": "user", "content": "hi"}],
        "logit_bias": {"1": 2}, "n": 2, "tool_choice": "none"
    }));
    let e = a
        .build_request(Endpoint::ChatCompletions, &request, &ctx(false))
        .unwrap_err();
    assert_eq!((e.class, e.status), (ErrorClass::BadRequest, 400));
    assert!(
        e.message
            .contains("bedrock does not support parameters: ['logit_bias', 'n', 'tool_choice']"),
        "{}",
        e.message
    );
    let req = a
        .build_request(Endpoint::ChatCompletions, &request, &ctx(true))
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&req.body),
        r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{}}"#
    );
    let remote = chat_request(json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    ]}]}));
    let e = a
        .build_request(Endpoint::ChatCompletions, &remote, &ctx(true))
        .unwrap_err();
    assert!(e.message.contains("data: URL"), "{}", e.message);
}

#[test]
fn converse_response_becomes_a_chat_completion() {
    let a = adapter("anthropic.claude-3-haiku-20240307-v1:0", json!({}));
    for name in ["converse_response", "converse_tool_response"] {
        let body = fixture(&format!("{name}.json"));
        let parsed = a
            .parse_response(
                Endpoint::ChatCompletions,
                &UpstreamResponse {
                    status: 200,
                    headers: &HeaderMap::new(),
                    body: &body,
                },
                &stream_ctx(false),
            )
            .unwrap();
        golden(&format!("{name}.openai.json"), &parsed.body);
        assert!(parsed.usage.is_some());
    }
    let body = fixture("converse_response.json");
    let parsed = a
        .parse_response(
            Endpoint::ChatCompletions,
            &UpstreamResponse {
                status: 200,
                headers: &HeaderMap::new(),
                body: &body,
            },
            &stream_ctx(false),
        )
        .unwrap();
    assert_eq!(
        parsed.usage,
        Some(Usage {
            prompt_tokens: 12,
            completion_tokens: 6
        })
    );
}

/// The Converse stream of the fixture: text with reasoning, then a tool call, then usage.
fn converse_stream_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    for (event, payload) in [
        ("messageStart", r#"{"p":"abcd","role":"assistant"}"#),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Think."}},"p":"ab"}"#,
        ),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Checking "},"p":"abc"}"#,
        ),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"the weather."},"p":"a"}"#,
        ),
        (
            "contentBlockStop",
            r#"{"contentBlockIndex":0,"p":"abcdef"}"#,
        ),
        (
            "contentBlockStart",
            r#"{"contentBlockIndex":1,"start":{"toolUse":{"name":"get_weather","toolUseId":"tooluse_abc"}},"p":"ab"}"#,
        ),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}},"p":"a"}"#,
        ),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"Paris\"}"}},"p":"abcd"}"#,
        ),
        ("contentBlockStop", r#"{"contentBlockIndex":1,"p":"abc"}"#),
        (
            "contentBlockStart",
            r#"{"contentBlockIndex":2,"start":{"toolUse":{"name":"now","toolUseId":"tooluse_def"}},"p":"a"}"#,
        ),
        ("contentBlockStop", r#"{"contentBlockIndex":2,"p":"abc"}"#),
        ("messageStop", r#"{"p":"abcdefgh","stopReason":"tool_use"}"#),
        (
            "metadata",
            r#"{"metrics":{"latencyMs":412},"p":"abc","usage":{"inputTokens":25,"outputTokens":17,"totalTokens":42}}"#,
        ),
    ] {
        out.extend(event_frame(event, payload));
    }
    out
}

fn render(events: &[StreamEvent]) -> String {
    events
        .iter()
        .map(|e| match e {
            StreamEvent::Chunk(b) => format!("chunk {}\n", String::from_utf8_lossy(b)),
            StreamEvent::Usage(u) => format!("usage {} {}\n", u.prompt_tokens, u.completion_tokens),
            StreamEvent::Error(e) => format!("error {} {}\n", e.status, e.message),
            StreamEvent::Done => "done\n".to_string(),
        })
        .collect()
}

fn decode_split(decoder: &mut dyn StreamDecoder, bytes: &[u8], cut: usize) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    decoder.feed(&bytes[..cut], &mut out);
    decoder.feed(&bytes[cut..], &mut out);
    decoder.finish(&mut out);
    out
}

#[test]
fn converse_stream_decodes_the_recorded_frames_split_anywhere() {
    let bytes = converse_stream_bytes();
    golden("converse_stream.bin", &bytes);
    let a = adapter("anthropic.claude-3-haiku-20240307-v1:0", json!({}));
    let expected = render(&decode_split(
        a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(true))
            .as_mut(),
        &bytes,
        0,
    ));
    golden("converse_stream.chunks.txt", expected.as_bytes());
    for cut in 1..=bytes.len() {
        let mut decoder = a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(true));
        assert_eq!(
            render(&decode_split(decoder.as_mut(), &bytes, cut)),
            expected,
            "cut at {cut}"
        );
    }
    let mut decoder = a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(true));
    let mut out = Vec::new();
    for b in &bytes {
        decoder.feed(std::slice::from_ref(b), &mut out);
    }
    decoder.finish(&mut out);
    assert_eq!(render(&out), expected);
}

#[test]
fn converse_stream_without_include_usage_sends_no_usage_chunk() {
    let a = adapter("anthropic.claude-3-haiku-20240307-v1:0", json!({}));
    let out = decode_split(
        a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(false))
            .as_mut(),
        &converse_stream_bytes(),
        0,
    );
    assert!(out.contains(&StreamEvent::Usage(Usage {
        prompt_tokens: 25,
        completion_tokens: 17
    })));
    assert!(!render(&out).contains(r#""choices":[]"#));
    assert_eq!(out.last(), Some(&StreamEvent::Done));
}

#[test]
fn converse_stream_exceptions_and_early_ends_are_errors() {
    let a = adapter("anthropic.claude-3-haiku-20240307-v1:0", json!({}));
    let mut bytes = event_frame("messageStart", r#"{"role":"assistant"}"#);
    bytes.extend(event_frame(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
    ));
    bytes.extend(exception_frame(
        "throttlingException",
        "Too many tokens per minute, please wait.",
    ));
    bytes.extend(event_frame(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":"ignored"}}"#,
    ));
    let out = decode_split(
        a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(false))
            .as_mut(),
        &bytes,
        0,
    );
    assert_eq!(out.len(), 2, "{}", render(&out));
    match &out[1] {
        StreamEvent::Error(e) => {
            assert_eq!((e.class, e.status), (ErrorClass::RateLimit, 429));
            assert_eq!(e.error_type.as_deref(), Some("throttling_error"));
        }
        other => panic!("{other:?}"),
    }

    let bytes = exception_frame(
        "validationException",
        "Input is too long for requested model.",
    );
    let out = decode_split(
        a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(false))
            .as_mut(),
        &bytes,
        3,
    );
    assert!(
        matches!(out.as_slice(), [StreamEvent::Error(e)] if e.class == ErrorClass::ContextWindowExceeded)
    );

    let bytes = event_frame(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
    );
    let out = decode_split(
        a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(false))
            .as_mut(),
        &bytes,
        0,
    );
    assert!(
        matches!(out.last(), Some(StreamEvent::Error(e)) if e.class == ErrorClass::ServerError),
        "{}",
        render(&out)
    );

    let truncated = &converse_stream_bytes()[..40];
    let out = decode_split(
        a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(false))
            .as_mut(),
        truncated,
        0,
    );
    assert!(
        matches!(out.as_slice(), [StreamEvent::Error(_)]),
        "{}",
        render(&out)
    );
}

#[test]
fn cohere_invoke_bodies_follow_each_cohere_api() {
    let request = chat_request(json!({
        "model": "bedrock-cohere",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"}
        ],
        "max_tokens": 50,
        "temperature": 0.3,
        "stream": true
    }));
    let a = adapter("cohere.command-r-v1:0", json!({}));
    let req = a
        .build_request(Endpoint::ChatCompletions, &request, &ctx(false))
        .unwrap();
    assert_eq!(
        req.url.to_string(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/cohere.command-r-v1:0/invoke-with-response-stream"
    );
    golden("cohere_command_r_request.body.json", &req.body);

    let a = adapter("cohere.command-text-v14", json!({}));
    let req = a
        .build_request(Endpoint::ChatCompletions, &request, &ctx(false))
        .unwrap();
    assert_eq!(
        req.url.to_string(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/cohere.command-text-v14/invoke-with-response-stream"
    );
    golden("cohere_command_text_request.body.json", &req.body);

    let e = a
        .build_request(
            Endpoint::ChatCompletions,
            &chat_request(json!({"messages": [{"role": "user", "content": "x"}], "tools": []})),
            &ctx(false),
        )
        .unwrap_err();
    assert!(e.message.contains("['tools']"), "{}", e.message);
}

#[test]
fn cohere_invoke_answers_take_usage_from_the_headers() {
    let headers = testing::headers(&[
        ("x-amzn-bedrock-input-token-count", "9"),
        ("x-amzn-bedrock-output-token-count", "4"),
    ]);
    for (model, name) in [
        ("cohere.command-r-v1:0", "cohere_command_r_response"),
        ("cohere.command-text-v14", "cohere_command_text_response"),
    ] {
        let a = adapter(model, json!({}));
        let body = fixture(&format!("{name}.json"));
        let parsed = a
            .parse_response(
                Endpoint::ChatCompletions,
                &UpstreamResponse {
                    status: 200,
                    headers: &headers,
                    body: &body,
                },
                &stream_ctx(false),
            )
            .unwrap();
        assert_eq!(
            parsed.usage,
            Some(Usage {
                prompt_tokens: 9,
                completion_tokens: 4
            })
        );
        golden(&format!("{name}.openai.json"), &parsed.body);
    }
}

fn cohere_chunk(inner: Value) -> Vec<u8> {
    event_frame(
        "chunk",
        &json!({ "bytes": base64::encode(inner.to_string()) }).to_string(),
    )
}

#[test]
fn cohere_invoke_stream_decodes_base64_chunks_split_anywhere() {
    let mut bytes = Vec::new();
    for inner in [
        json!({"event_type": "stream-start", "generation_id": "g1", "is_finished": false}),
        json!({"event_type": "text-generation", "is_finished": false, "text": "Hello"}),
        json!({"event_type": "text-generation", "is_finished": false, "text": " there"}),
        json!({
            "event_type": "stream-end", "finish_reason": "MAX_TOKENS", "is_finished": true,
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 7, "outputTokenCount": 2, "invocationLatency": 300, "firstByteLatency": 100}
        }),
    ] {
        bytes.extend(cohere_chunk(inner));
    }
    golden("cohere_stream.bin", &bytes);
    let a = adapter("cohere.command-r-v1:0", json!({}));
    let expected = render(&decode_split(
        a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(true))
            .as_mut(),
        &bytes,
        0,
    ));
    golden("cohere_stream.chunks.txt", expected.as_bytes());
    for cut in 1..=bytes.len() {
        let mut decoder = a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(true));
        assert_eq!(
            render(&decode_split(decoder.as_mut(), &bytes, cut)),
            expected,
            "cut at {cut}"
        );
    }

    // command-text streams `{"text", "is_finished"}` without event types.
    let mut bytes = cohere_chunk(json!({"text": "Hi", "is_finished": false, "index": 0}));
    bytes.extend(cohere_chunk(
        json!({"is_finished": true, "finish_reason": "COMPLETE"}),
    ));
    let out = decode_split(
        a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(false))
            .as_mut(),
        &bytes,
        0,
    );
    let text = render(&out);
    assert!(
        text.contains(r#""delta":{"role":"assistant","content":"Hi"}"#),
        "{text}"
    );
    assert!(text.contains(r#""finish_reason":"stop""#), "{text}");
    assert_eq!(out.last(), Some(&StreamEvent::Done));

    let mut bytes = cohere_chunk(json!({"event_type": "text-generation", "text": "Hi"}));
    bytes.extend(exception_frame(
        "modelStreamErrorException",
        "The model failed",
    ));
    let out = decode_split(
        a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx(false))
            .as_mut(),
        &bytes,
        0,
    );
    assert!(
        matches!(out.last(), Some(StreamEvent::Error(e)) if e.class == ErrorClass::ServerError)
    );
}

#[test]
fn titan_and_cohere_embeddings_round_trip() {
    let titan = adapter("amazon.titan-embed-text-v2:0", json!({}));
    let req = titan
        .build_request(
            Endpoint::Embeddings,
            &prepare(
                obj(json!({"model": "e", "input": ["hello world"], "dimensions": 256})),
                &Map::new(),
            ),
            &ctx(false),
        )
        .unwrap();
    assert_eq!(
        req.url.to_string(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2:0/invoke"
    );
    assert_eq!(
        String::from_utf8_lossy(&req.body),
        r#"{"inputText":"hello world","dimensions":256}"#
    );
    let e = titan
        .build_request(
            Endpoint::Embeddings,
            &prepare(obj(json!({"input": ["a", "b"]})), &Map::new()),
            &ctx(false),
        )
        .unwrap_err();
    assert!(e.message.contains("one input per request"), "{}", e.message);
    let v1 = adapter("amazon.titan-embed-text-v1", json!({}));
    let e = v1
        .build_request(
            Endpoint::Embeddings,
            &prepare(obj(json!({"input": "a", "dimensions": 256})), &Map::new()),
            &ctx(false),
        )
        .unwrap_err();
    assert!(e.message.contains("['dimensions']"), "{}", e.message);

    let body = fixture("titan_embed_response.json");
    let parsed = titan
        .parse_response(
            Endpoint::Embeddings,
            &UpstreamResponse {
                status: 200,
                headers: &HeaderMap::new(),
                body: &body,
            },
            &stream_ctx(false),
        )
        .unwrap();
    assert_eq!(
        parsed.usage,
        Some(Usage {
            prompt_tokens: 3,
            completion_tokens: 0
        })
    );
    golden("titan_embed_response.openai.json", &parsed.body);

    let cohere = adapter("cohere.embed-english-v3", json!({}));
    let req = cohere
        .build_request(
            Endpoint::Embeddings,
            &prepare(
                obj(json!({"model": "e", "input": ["a", "b"], "encoding_format": "float"})),
                &Map::new(),
            ),
            &ctx(false),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&req.body),
        r#"{"texts":["a","b"],"input_type":"search_document","embedding_types":["float"]}"#
    );
    let headers = testing::headers(&[("x-amzn-bedrock-input-token-count", "2")]);
    let body = fixture("cohere_embed_response.json");
    let parsed = cohere
        .parse_response(
            Endpoint::Embeddings,
            &UpstreamResponse {
                status: 200,
                headers: &headers,
                body: &body,
            },
            &stream_ctx(false),
        )
        .unwrap();
    assert_eq!(
        parsed.usage,
        Some(Usage {
            prompt_tokens: 2,
            completion_tokens: 0
        })
    );
    golden("cohere_embed_response.openai.json", &parsed.body);
}

#[test]
fn error_answers_are_classified() {
    let a = adapter("anthropic.claude-3-haiku-20240307-v1:0", json!({}));
    for (status, kind, message, class, client_status, name) in [
        (
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
            ErrorClass::RateLimit,
            429,
            "RateLimitError",
        ),
        (
            429,
            "ThrottlingException",
            "Too many tokens, please wait before trying again.",
            ErrorClass::RateLimit,
            429,
            "RateLimitError",
        ),
        (
            400,
            "ValidationException",
            "Input is too long for requested model.",
            ErrorClass::ContextWindowExceeded,
            400,
            "ContextWindowExceededError",
        ),
        (
            400,
            "ValidationException",
            "prompt is too long: 250000 tokens > 200000 maximum",
            ErrorClass::ContextWindowExceeded,
            400,
            "ContextWindowExceededError",
        ),
        (
            400,
            "ValidationException",
            "The model returned the following errors: too many tokens",
            ErrorClass::ContextWindowExceeded,
            400,
            "ContextWindowExceededError",
        ),
        (
            400,
            "ValidationException",
            "Malformed input request: extraneous key [foo]",
            ErrorClass::BadRequest,
            400,
            "BadRequestError",
        ),
        (
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
            ErrorClass::PermissionDenied,
            403,
            "PermissionDeniedError",
        ),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            ErrorClass::Auth,
            401,
            "AuthenticationError",
        ),
        (
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
            ErrorClass::Auth,
            401,
            "AuthenticationError",
        ),
        (
            404,
            "ResourceNotFoundException",
            "Could not resolve the foundation model.",
            ErrorClass::NotFound,
            404,
            "NotFoundError",
        ),
        (
            408,
            "ModelTimeoutException",
            "Model has timed out in processing the request.",
            ErrorClass::Timeout,
            408,
            "Timeout",
        ),
        (
            500,
            "InternalServerException",
            "internal error",
            ErrorClass::ServerError,
            500,
            "InternalServerError",
        ),
        (
            503,
            "ServiceUnavailableException",
            "Service unavailable",
            ErrorClass::ServerError,
            503,
            "ServiceUnavailableError",
        ),
    ] {
        let body = Bytes::from(json!({ "message": message }).to_string());
        let errortype = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/");
        let headers = testing::headers(&[("x-amzn-errortype", &errortype), ("retry-after", "3")]);
        let e = a.parse_error(&UpstreamResponse {
            status,
            headers: &headers,
            body: &body,
        });
        assert_eq!(
            (e.class, e.status),
            (class, client_status),
            "{kind}: {}",
            e.message
        );
        assert!(
            e.message.contains(name)
                && e.message.contains(&format!("BedrockException - {message}")),
            "{}",
            e.message
        );
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    }
    let e = a.parse_error(&UpstreamResponse {
        status: 502,
        headers: &HeaderMap::new(),
        body: &Bytes::from_static(b"Bad Gateway"),
    });
    assert_eq!((e.class, e.status), (ErrorClass::ServerError, 502));
    assert!(
        e.message.ends_with("BedrockException - Bad Gateway"),
        "{}",
        e.message
    );
}
