//! Every provider driven through real OpenAI clients: the official Python SDK, LangChain's
//! `ChatOpenAI` and the official Node `openai` SDK, plain and streaming. One loopback mock
//! impersonates every provider (Azure, Anthropic, Bedrock Converse and InvokeModel, Ollama
//! generate and chat, Hugging Face TGI chat and `/generate`) with the adapters' recorded
//! answers; the real binary sits in front of it with a master key.
//!
//! `tests/run.sh` installs the clients (`.venv` with `openai` and `langchain-openai`,
//! `tests/e2e/node/node_modules` with `npm ci`). Without them a test is skipped with a message,
//! except under CI, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-provider-sdks-0123456789abcdef";
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{ROOT}/tests/fixtures/{path}");
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn json_reply(path: &str) -> Reply {
    Reply::Bytes {
        status: 200,
        content_type: "application/json".into(),
        headers: vec![],
        body: fixture(path),
    }
}

/// The plain answer, or the stream when the request body says `"stream": true`.
fn plain_or_stream(plain: &'static str, stream: &'static str, content_type: &'static str) -> Reply {
    Reply::respond(move |req| {
        if req.json()["stream"] == true {
            Reply::chunked(content_type, &fixture(stream), 11)
        } else {
            json_reply(plain)
        }
    })
}

/// The mock, scripted as every provider, and the config that points a model at each.
fn provider_mock() -> (MockUpstream, String) {
    let mock = MockUpstream::start();
    let sse = "text/event-stream";
    let ndjson = "application/x-ndjson";
    let eventstream = "application/vnd.amazon.eventstream";
    mock.script(
        "/openai/deployments/gpt-4o-eu/chat/completions",
        vec![plain_or_stream(
            "azure/chat_response.json",
            "azure/chat_stream.sse",
            sse,
        )],
    );
    mock.script(
        "/v1/messages",
        vec![plain_or_stream(
            "anthropic/response_text.json",
            "anthropic/stream_text.sse",
            sse,
        )],
    );
    mock.script(
        "/tools/v1/messages",
        vec![plain_or_stream(
            "anthropic/response_tool_use.json",
            "anthropic/stream_tool.sse",
            sse,
        )],
    );
    let converse = "/model/anthropic.claude-3-haiku-20240307-v1%3A0";
    mock.script(
        &format!("{converse}/converse"),
        vec![json_reply("bedrock/converse_response.json")],
    );
    mock.script(
        &format!("{converse}/converse-stream"),
        vec![Reply::chunked(
            eventstream,
            &fixture("bedrock/converse_stream.bin"),
            11,
        )],
    );
    let cohere = "/model/cohere.command-r-v1:0";
    mock.script(
        &format!("{cohere}/invoke"),
        vec![json_reply("bedrock/cohere_command_r_response.json")
            .with_header("X-Amzn-Bedrock-Input-Token-Count", "9")
            .with_header("X-Amzn-Bedrock-Output-Token-Count", "5")],
    );
    mock.script(
        &format!("{cohere}/invoke-with-response-stream"),
        vec![Reply::chunked(
            eventstream,
            &fixture("bedrock/cohere_stream.bin"),
            11,
        )],
    );
    mock.script(
        "/api/generate",
        vec![plain_or_stream(
            "ollama/generate_response.json",
            "ollama/generate_stream.ndjson",
            ndjson,
        )],
    );
    mock.script(
        "/api/chat",
        vec![plain_or_stream(
            "ollama/chat_response.json",
            "ollama/chat_stream.ndjson",
            ndjson,
        )],
    );
    mock.script(
        "/tgi/v1/chat/completions",
        vec![plain_or_stream(
            "huggingface/chat_response.json",
            "huggingface/chat_stream.sse",
            sse,
        )],
    );
    mock.script(
        "/mistral/generate",
        vec![json_reply("huggingface/tgi_generate_response.json")],
    );
    mock.script(
        "/mistral/generate_stream",
        vec![Reply::chunked(
            sse,
            &fixture("huggingface/tgi_generate_stream.sse"),
            11,
        )],
    );
    let config = format!(
        r#"
model_list:
  - model_name: azure-gpt
    litellm_params: {{model: azure/gpt-4o-eu, api_base: "{base}", api_key: az-key, api_version: "2024-10-21"}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-3-5-sonnet-20241022, api_base: "{base}", api_key: sk-ant}}
  - model_name: claude-tools
    litellm_params: {{model: anthropic/claude-3-5-sonnet-20241022, api_base: "{base}/tools", api_key: sk-ant}}
  - model_name: bedrock-claude
    litellm_params: {{model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: secret, aws_region_name: us-east-1, aws_bedrock_runtime_endpoint: "{base}"}}
  - model_name: bedrock-cohere
    litellm_params: {{model: bedrock/cohere.command-r-v1:0, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: secret, aws_bedrock_runtime_endpoint: "{base}"}}
  - model_name: ollama-gen
    litellm_params: {{model: ollama/llama3, api_base: "{base}"}}
  - model_name: ollama-chat
    litellm_params: {{model: ollama_chat/llama3.1, api_base: "{base}"}}
  - model_name: hf-chat
    litellm_params: {{model: huggingface/meta-llama/Llama-3.1-8B-Instruct, api_base: "{base}/tgi", api_key: hf_key}}
  - model_name: hf-tgi
    litellm_params:
      model: huggingface/mistralai/Mistral-7B-Instruct-v0.1
      api_base: "{base}/mistral"
      initial_prompt_value: "\n"
      roles: {{"system": {{"pre_message": "<|im_start|>system\n", "post_message": "<|im_end|>"}}, "user": {{"pre_message": "<|im_start|>user\n", "post_message": "<|im_end|>"}}}}
      final_prompt_value: "\n"
router_settings:
  num_retries: 0
general_settings:
  master_key: {KEY}
"#,
        base = mock.base()
    );
    (mock, config)
}

/// What each model answers, plain and streamed, as the clients should see it.
fn spec() -> Value {
    let case = |model: &str,
                text: &str,
                finish: &str,
                stream_text: &str,
                stream_finish: &str,
                stream_usage: Value| {
        json!({"model": model, "text": text, "finish": finish, "stream_text": stream_text,
               "stream_finish": stream_finish, "stream_usage": stream_usage,
               "tools": null, "stream_tools": null, "refuses_logit_bias": false})
    };
    let mut claude = case(
        "claude",
        "Hello! How can I help?",
        "stop",
        "Hello, wörld! \"quoted\"\n",
        "stop",
        json!([30, 15]),
    );
    claude["refuses_logit_bias"] = json!(true);
    let mut claude_tools = case(
        "claude-tools",
        "",
        "tool_calls",
        "Checking.",
        "tool_calls",
        json!([472, 89]),
    );
    claude_tools["tools"] = json!(["get_weather", "get_time"]);
    claude_tools["stream_tools"] = json!(["get_weather", "get_time"]);
    let mut bedrock = case(
        "bedrock-claude",
        "Paris is 18C and sunny.",
        "stop",
        "Checking the weather.",
        "tool_calls",
        json!([25, 17]),
    );
    bedrock["stream_tools"] = json!(["get_weather", "now"]);
    bedrock["refuses_logit_bias"] = json!(true);
    let mut ollama_gen = case(
        "ollama-gen",
        "The sky is blue because of Rayleigh scattering.",
        "length",
        "The sky",
        "length",
        json!([10, 2]),
    );
    ollama_gen["refuses_logit_bias"] = json!(true);
    json!([
        case(
            "azure-gpt",
            "Hello! How can I help you today?",
            "stop",
            "Hello there",
            "stop",
            Value::Null
        ),
        claude,
        claude_tools,
        bedrock,
        case(
            "bedrock-cohere",
            "Hi! How can I help?",
            "stop",
            "Hello there",
            "length",
            json!([7, 2])
        ),
        ollama_gen,
        case(
            "ollama-chat",
            "Paris is the capital of France.",
            "stop",
            "Paris é.",
            "stop",
            json!([26, 3])
        ),
        case(
            "hf-chat",
            "Deep learning is a subset of machine learning.",
            "stop",
            "Deep learning",
            "length",
            json!([15, 2])
        ),
        case(
            "hf-tgi",
            "Hello! How can I help you today?",
            "stop",
            "Hello wörld",
            "stop",
            json!([17, 3])
        ),
    ])
}

/// Fail under CI, skip with a message elsewhere.
fn missing(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have {what} (tests/run.sh installs it)"
    );
    eprintln!("skipped: {what} is not installed; run tests/run.sh to install it");
}

/// The Python that can import `module`, if any.
fn python_with(module: &str) -> Option<String> {
    let candidates = [
        std::env::var("LLM_PROXY_PYTHON").ok(),
        Some(format!("{ROOT}/.venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", &format!("import {module}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// Run a client script against a freshly started mock and proxy, killing it after `limit`;
/// asserts it passed, and that every provider was reached.
fn drive(program: &str, script: &str, limit: Duration) {
    let (mock, config) = provider_mock();
    let proxy = Proxy::start_with_args(&config, &[], &["--host", "127.0.0.1"]);
    let mut child = Command::new(program)
        .arg(script)
        .arg(proxy.url("/v1"))
        .arg(KEY)
        .arg(spec().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} {script}: {e}"));
    let mut pipes = Vec::new();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        pipes.push(thread::spawn(move || {
            let mut out = String::new();
            let mut pipe = pipe;
            let _ = pipe.read_to_string(&mut out);
            out
        }));
    }
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let mut outputs = pipes.into_iter().map(|p| p.join().unwrap_or_default());
    let stdout = outputs.next().unwrap_or_default();
    let stderr = outputs.next().unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "{script} did not finish within {limit:?}:\n{stdout}\n{stderr}\nproxy log:\n{}",
            proxy.log()
        );
    };
    assert!(
        status.success(),
        "{script} failed:\n{stdout}\n{stderr}\nproxy log:\n{}",
        proxy.log()
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    eprintln!("{script}: {}", stdout.lines().last().unwrap_or_default());
    for path in [
        "/openai/deployments/gpt-4o-eu/chat/completions",
        "/v1/messages",
        "/tools/v1/messages",
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
        "/model/cohere.command-r-v1:0/invoke",
        "/model/cohere.command-r-v1:0/invoke-with-response-stream",
        "/api/generate",
        "/api/chat",
        "/tgi/v1/chat/completions",
        "/mistral/generate",
        "/mistral/generate_stream",
    ] {
        assert!(
            !mock.received_on(path).is_empty(),
            "{script} never reached {path}"
        );
    }
}

#[test]
fn the_openai_python_sdk_drives_every_provider() {
    let Some(python) = python_with("openai") else {
        return missing("a Python with the openai package");
    };
    drive(
        &python,
        &format!("{ROOT}/tests/e2e/providers_sdk_check.py"),
        Duration::from_secs(180),
    );
}

#[test]
fn langchain_chat_openai_drives_every_provider() {
    let Some(python) = python_with("langchain_openai") else {
        return missing("a Python with langchain-openai");
    };
    drive(
        &python,
        &format!("{ROOT}/tests/e2e/langchain_check.py"),
        Duration::from_secs(180),
    );
}

#[test]
fn the_node_openai_sdk_drives_every_provider() {
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let dir = format!("{ROOT}/tests/e2e/node");
    if !node_ok || !Path::new(&format!("{dir}/node_modules/openai/package.json")).exists() {
        return missing("node with the openai npm package in tests/e2e/node");
    }
    drive(
        "node",
        &format!("{dir}/providers_check.mjs"),
        Duration::from_secs(180),
    );
}
