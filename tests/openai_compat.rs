//! The proxy in front of OpenAI-compatible upstreams: what the upstream receives, byte for byte,
//! and what the client gets back, plain and streaming.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn config(mock: &MockUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: vllm
    litellm_params:
      model: openai/facebook/opt-125m
      api_base: {base}/v1
      api_key: sk-upstream-secret-1
      organization: org-42
      temperature: 0.9
      max_tokens: 64
      extra_headers: {{"X-Team": "blue"}}
    model_info:
      id: vllm-one
  - model_name: hosted
    litellm_params:
      model: hosted_vllm/meta/llama
      api_base: {base}/hosted
  - model_name: deepseek-chat
    litellm_params:
      model: deepseek/deepseek-chat
      api_base: {base}/ds
      api_key: sk-ds
"#,
        base = mock.base()
    )
}

#[test]
fn the_upstream_receives_the_client_body_with_model_and_defaults_applied() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/chat/completions",
        vec![Reply::ok(completion("hi there", "opt-125m"))],
    );
    let proxy = Proxy::start(&config(&mock), &[]);
    let body = r#"{"model":"vllm","messages":[{"role":"user","content":"Hello"}],"temperature":0.1,"zz_vendor":{"k":[1,2]},"metadata":{"tag":"x"},"user":"u1"}"#;
    let res = request(
        "POST",
        &proxy.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        Some(body.as_bytes()),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["choices"][0]["message"]["content"], "hi there");
    assert_eq!(res.header("x-litellm-model-id"), Some("vllm-one"));
    assert_eq!(res.header("x-litellm-model-group"), Some("vllm"));
    assert_eq!(res.header("x-litellm-attempted-retries"), Some("0"));

    let got = mock.received_on("/v1/chat/completions");
    assert_eq!(got.len(), 1);
    let up = &got[0];
    assert_eq!(up.method, "POST");
    // Field order and every unknown field kept; `metadata` is LiteLLM's own and stays home;
    // the deployment's max_tokens fills the gap, its temperature does not override the client's.
    assert_eq!(
        String::from_utf8_lossy(&up.body),
        r#"{"model":"facebook/opt-125m","messages":[{"role":"user","content":"Hello"}],"temperature":0.1,"zz_vendor":{"k":[1,2]},"user":"u1","max_tokens":64}"#
    );
    assert_eq!(
        up.header("authorization"),
        Some("Bearer sk-upstream-secret-1")
    );
    assert_eq!(up.header("openai-organization"), Some("org-42"));
    assert_eq!(up.header("x-team"), Some("blue"));
    assert_eq!(up.header("content-type"), Some("application/json"));
}

#[test]
fn client_headers_are_forwarded_only_when_the_settings_ask() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/chat/completions",
        vec![Reply::ok(completion("hi", "opt-125m"))],
    );
    mock.script(
        "/ds/chat/completions",
        vec![Reply::ok(completion("hi", "deepseek-chat"))],
    );
    let headers = [
        ("content-type", "application/json"),
        ("x-trace-id", "t-1"),
        ("x-team", "red"),
        ("x-stainless-os", "Linux"),
        ("anthropic-beta", "tools-2024"),
        ("openai-organization", "org-client"),
        ("x-litellm-api-key", "sk-proxy-key-not-for-upstream"),
        ("x-api-key", "sk-proxy-key-not-for-upstream"),
    ];
    let body = br#"{"model":"vllm","messages":[{"role":"user","content":"Hello"}]}"#;
    let send = |proxy: &Proxy, model: &str| {
        let body = String::from_utf8_lossy(body).replace("vllm", model);
        let res = request(
            "POST",
            &proxy.url("/v1/chat/completions"),
            &headers,
            Some(body.as_bytes()),
        );
        assert_eq!(res.status, 200, "{}", res.text());
    };

    // By default nothing of the client's goes upstream.
    let proxy = Proxy::start(&config(&mock), &[]);
    send(&proxy, "vllm");
    let up = mock.received_on("/v1/chat/completions").pop().unwrap();
    assert_eq!(up.header("x-trace-id"), None);
    assert_eq!(up.header("anthropic-beta"), None);
    assert_eq!(up.header("openai-organization"), Some("org-42"));
    drop(proxy);

    let forwarding = format!(
        "{}general_settings:\n  forward_client_headers_to_llm_api: true\n  forward_openai_org_id: true\n",
        config(&mock)
    );
    let proxy = Proxy::start(&forwarding, &[]);
    assert!(!proxy.log().contains("forward_"), "{}", proxy.log());
    send(&proxy, "vllm");
    let up = mock.received_on("/v1/chat/completions").pop().unwrap();
    assert_eq!(up.header("x-trace-id"), Some("t-1"));
    assert_eq!(up.header("anthropic-beta"), Some("tools-2024"));
    assert_eq!(up.header("x-stainless-os"), None);
    assert_eq!(up.header("x-litellm-api-key"), None);
    assert_eq!(up.header("x-api-key"), None);
    // The client's organization wins over the deployment's; its extra_headers over the client's.
    assert_eq!(up.header("openai-organization"), Some("org-client"));
    assert_eq!(up.header("x-team"), Some("blue"));
    assert_eq!(
        up.header("authorization"),
        Some("Bearer sk-upstream-secret-1")
    );
    // DeepSeek takes no organization.
    send(&proxy, "deepseek-chat");
    let up = mock.received_on("/ds/chat/completions").pop().unwrap();
    assert_eq!(up.header("x-trace-id"), Some("t-1"));
    assert_eq!(up.header("openai-organization"), None);
}

#[test]
fn a_body_that_retargets_the_call_is_refused() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/chat/completions",
        vec![Reply::ok(completion("hi", "opt-125m"))],
    );
    let proxy = Proxy::start(&config(&mock), &[]);
    let call = |extra: Value| {
        let mut body = json!({"model": "vllm", "messages": [{"role": "user", "content": "Hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        post_json(&proxy.url("/v1/chat/completions"), &body, &[])
    };
    for extra in [
        json!({"api_base": "http://attacker.example/v1"}),
        json!({"base_url": "http://attacker.example/v1", "api_key": "sk-mine"}),
        json!({"extra_body": {"aws_web_identity_token": "t"}}),
    ] {
        let res = call(extra.clone());
        assert_eq!(res.status, 401, "{extra}: {}", res.text());
        let body = res.json();
        assert_eq!(body["error"]["type"], "auth_error");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Authentication Error, Rejected Request: "),
            "{body}"
        );
    }
    assert!(mock.received().is_empty());
    // A null one asks for nothing.
    assert_eq!(call(json!({"api_base": null})).status, 200);
    drop(proxy);

    let allowing = format!(
        "{}general_settings:\n  allow_client_side_credentials: true\n",
        config(&mock)
    );
    let proxy = Proxy::start(&allowing, &[]);
    assert!(proxy
        .log()
        .contains("general_settings.allow_client_side_credentials is not supported yet"));
    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &json!({"model": "vllm", "messages": [{"role": "user", "content": "Hi"}], "api_base": "http://x"}),
        &[],
    );
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(res.text().contains("not supported yet by llm-proxy"));
}

#[test]
fn upstream_connections_are_kept_alive_and_reused() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/chat/completions",
        vec![Reply::ok(completion("hi", "m"))],
    );
    let proxy = Proxy::start_with_args(&config(&mock), &[], &["--num_workers", "1"]);
    for _ in 0..5 {
        let res = post_json(
            &proxy.url("/v1/chat/completions"),
            &json!({"model": "vllm", "messages": [{"role": "user", "content": "x"}]}),
            &[],
        );
        assert_eq!(res.status, 200);
    }
    assert_eq!(mock.received().len(), 5);
    assert_eq!(
        mock.connections(),
        1,
        "one pooled keep-alive connection for five calls"
    );
}

#[test]
fn hosted_vllm_and_deepseek_speak_openai_on_their_bases() {
    let mock = MockUpstream::start();
    mock.script(
        "/hosted/chat/completions",
        vec![Reply::ok(completion("v", "llama"))],
    );
    mock.script(
        "/ds/chat/completions",
        vec![Reply::ok(completion("d", "deepseek-chat"))],
    );
    let proxy = Proxy::start(&config(&mock), &[]);
    for (model, path, upstream_model, content) in [
        ("hosted", "/hosted/chat/completions", "meta/llama", "v"),
        (
            "deepseek-chat",
            "/ds/chat/completions",
            "deepseek-chat",
            "d",
        ),
    ] {
        let res = post_json(
            &proxy.url("/chat/completions"),
            &json!({"model": model, "messages": [{"role": "user", "content": "x"}]}),
            &[],
        );
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json()["choices"][0]["message"]["content"], content);
        let up = mock.received_on(path);
        assert_eq!(up.len(), 1, "{path}");
        assert_eq!(up[0].json()["model"], upstream_model);
    }
}

/// A streamed chat completion from the `vllm` group, through a proxy in front of `mock`: a 200.
fn stream_from_vllm(mock: &MockUpstream) -> Response {
    let proxy = Proxy::start(&config(mock), &[]);
    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &json!({"model": "vllm", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    res
}

#[test]
fn streams_are_relayed_chunk_by_chunk_and_end_with_done() {
    let mock = MockUpstream::start();
    let chunk = |c: &str| {
        json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"opt","choices":[{"index":0,"delta":{"content":c},"finish_reason":null}]})
            .to_string()
    };
    let (a, b, c) = (chunk("Hel"), chunk("lo "), chunk("world"));
    mock.script(
        "/v1/chat/completions",
        vec![Reply::sse(
            &[&a, &b, &c, "[DONE]"],
            Duration::from_millis(300),
        )],
    );
    let res = stream_from_vllm(&mock);
    assert!(res
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    assert_eq!(
        res.sse_data(),
        vec![a.clone(), b.clone(), c.clone(), "[DONE]".to_string()]
    );
    // Written as the upstream sent it, not buffered: the first chunk reached the client long
    // before the last one left the upstream (chunks are 300 ms apart).
    let first = res.chunk_times.first().map(|(t, _)| *t).unwrap_or_default();
    let last = res.chunk_times.last().map(|(t, _)| *t).unwrap_or_default();
    assert!(
        last - first >= Duration::from_millis(600),
        "first {first:?} last {last:?}"
    );
    assert_eq!(
        mock.received_on("/v1/chat/completions")[0].json()["stream"],
        true
    );
}

#[test]
fn a_stream_whose_first_read_holds_more_frames_than_the_buffer_arrives_whole() {
    // 150 events in one piece: the proxy's first read decodes them all at once, more than its
    // 64-frame channel to the client holds before the client starts reading.
    let mock = MockUpstream::start();
    let events: Vec<String> = (0..150)
        .map(|i| {
            json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"opt","choices":[{"index":0,"delta":{"content":format!("{i} ")},"finish_reason":null}]})
                .to_string()
        })
        .collect();
    let mut body = String::new();
    for e in &events {
        body.push_str(&format!("data: {e}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    mock.script(
        "/v1/chat/completions",
        vec![Reply::chunked(
            "text/event-stream",
            body.as_bytes(),
            body.len(),
        )],
    );
    let res = stream_from_vllm(&mock);
    let mut expected = events.clone();
    expected.push("[DONE]".to_string());
    assert_eq!(res.sse_data(), expected);
}

#[test]
fn embeddings_and_text_completions_pass_through() {
    let mock = MockUpstream::start();
    let emb = json!({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"opt","usage":{"prompt_tokens":2,"total_tokens":2}});
    mock.script("/v1/embeddings", vec![Reply::ok(emb.clone())]);
    let text = json!({"id":"cmpl-1","object":"text_completion","created":1,"model":"opt","choices":[{"text":"ok","index":0,"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}});
    mock.script("/v1/completions", vec![Reply::ok(text.clone())]);
    let proxy = Proxy::start(&config(&mock), &[]);
    let res = post_json(
        &proxy.url("/v1/embeddings"),
        &json!({"model": "vllm", "input": ["a"]}),
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json(), emb);
    let res = post_json(
        &proxy.url("/completions"),
        &json!({"model": "vllm", "prompt": "a"}),
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json(), text);
    assert_eq!(mock.received_on("/v1/completions")[0].json()["prompt"], "a");
}

#[test]
fn upstream_errors_keep_their_status_and_message() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/chat/completions",
        vec![Reply::openai_error(
            401,
            "Incorrect API key provided: sk-up***",
            "invalid_request_error",
        )],
    );
    let proxy = Proxy::start(&config(&mock), &[]);
    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &json!({"model": "vllm", "messages": [{"role": "user", "content": "x"}]}),
        &[],
    );
    assert_eq!(res.status, 401, "{}", res.text());
    let err = &res.json()["error"];
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Incorrect API key provided"),
        "{err}"
    );
    assert_eq!(err["code"], "401");
    assert_eq!(res.header("x-litellm-model-id"), Some("vllm-one"));
    // Auth errors are not retried.
    assert_eq!(mock.received_on("/v1/chat/completions").len(), 1);
}

#[test]
fn unreachable_and_hanging_upstreams_give_clear_errors() {
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mock = MockUpstream::start();
    mock.script(
        "/slow/chat/completions",
        vec![Reply::Delay(
            Duration::from_secs(5),
            Box::new(Reply::ok(completion("late", "m"))),
        )],
    );
    let cfg = format!(
        r#"
model_list:
  - model_name: dead
    litellm_params: {{model: openai/m, api_base: "http://127.0.0.1:{dead_port}", api_key: k, num_retries: 0}}
  - model_name: slow
    litellm_params: {{model: openai/m, api_base: "{base}/slow", api_key: k, timeout: 0.5}}
router_settings:
  num_retries: 0
"#,
        base = mock.base()
    );
    let proxy = Proxy::start(&cfg, &[]);
    let msg = json!({"role": "user", "content": "x"});
    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &json!({"model": "dead", "messages": [msg]}),
        &[],
    );
    assert!(res.status >= 500, "{} {}", res.status, res.text());
    assert!(res.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("APIConnectionError"));
    let started = std::time::Instant::now();
    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &json!({"model": "slow", "messages": [msg]}),
        &[],
    );
    assert_eq!(res.status, 408, "{}", res.text());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn bad_requests_get_openai_shaped_errors() {
    let mock = MockUpstream::start();
    let proxy = Proxy::start(
        &format!(
            "{}general_settings:\n  max_request_size_mb: 0.001\n",
            config(&mock)
        ),
        &[],
    );
    let url = proxy.url("/v1/chat/completions");
    let json_h = [("content-type", "application/json")];
    let cases: Vec<(&[u8], u16)> = vec![
        (b"{not json", 400),
        (b"[1,2]", 400),
        (br#"{"model":"vllm"}"#, 400),
        (br#"{"model":"vllm","messages":"hi"}"#, 400),
        (
            br#"{"model":12,"messages":[{"role":"user","content":"x"}]}"#,
            400,
        ),
        (
            br#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#,
            400,
        ),
    ];
    for (body, status) in cases {
        let res = request("POST", &url, &json_h, Some(body));
        assert_eq!(
            res.status,
            status,
            "{}: {}",
            String::from_utf8_lossy(body),
            res.text()
        );
        let err = &res.json()["error"];
        for key in ["message", "type", "param", "code"] {
            assert!(err.get(key).is_some(), "missing {key} in {err}");
        }
        assert_eq!(err["code"], status.to_string());
    }
    let res = post_json(
        &url,
        &json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
        &[],
    );
    let msg = res.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("model=nope") && msg.contains("vllm") && msg.contains("deepseek-chat"),
        "{msg}"
    );
    let big = format!(
        r#"{{"model":"vllm","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(4096)
    );
    let res = request("POST", &url, &json_h, Some(big.as_bytes()));
    assert_eq!(res.status, 413, "{}", res.text());
    assert_eq!(res.json()["error"]["code"], "413");
    let res = get(&proxy.url("/v1/nothing-here"), &[]);
    assert_eq!(res.status, 404);
    assert!(res.json()["error"]["message"].is_string());
    // The proxy is still healthy after all that.
    assert_eq!(get(&proxy.url("/health/liveliness"), &[]).status, 200);
    assert!(mock.received().is_empty());
}

#[test]
fn provider_specific_params_of_a_deployment_reach_the_upstream() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/chat/completions",
        vec![Reply::ok(completion("hi", "qwen"))],
    );
    let config = format!(
        r#"
model_list:
  - model_name: qwen
    litellm_params:
      model: hosted_vllm/Qwen/Qwen3-8B
      api_base: {}/v1
      rpm: 100
      ssl_verify: false
      top_k: 20
      extra_body: {{"chat_template_kwargs": {{"enable_thinking": false}}}}
"#,
        mock.base()
    );
    let proxy = Proxy::start(&config, &[]);
    assert!(
        proxy
            .log()
            .contains("litellm_params.ssl_verify is not supported yet by llm-proxy; ignored"),
        "{}",
        proxy.log()
    );
    let body =
        r#"{"model":"qwen","messages":[{"role":"user","content":"Hi"}],"extra_body":{"top_k":5}}"#;
    // The deployment's params follow the client's fields; the request's own `extra_body` comes
    // last and wins.
    let thinking = r#""chat_template_kwargs":{"enable_thinking":false}"#;
    for (sent, tail) in [
        (
            r#"{"model":"qwen","messages":[{"role":"user","content":"Hi"}]}"#,
            format!(r#""top_k":20,{thinking}"#),
        ),
        (body, format!(r#"{thinking},"top_k":5"#)),
    ] {
        let res = request(
            "POST",
            &proxy.url("/v1/chat/completions"),
            &[("content-type", "application/json")],
            Some(sent.as_bytes()),
        );
        assert_eq!(res.status, 200, "{}", res.text());
        let got = mock.received_on("/v1/chat/completions");
        assert_eq!(
            String::from_utf8_lossy(&got.last().unwrap().body),
            format!(
                r#"{{"model":"Qwen/Qwen3-8B","messages":[{{"role":"user","content":"Hi"}}],{tail}}}"#
            )
        );
    }
}

#[test]
fn the_path_forms_name_the_model_and_the_upstream_gets_the_same_bytes() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/chat/completions",
        vec![Reply::ok(completion("hi", "opt-125m"))],
    );
    let config = format!(
        "{}  - model_name: acme/chat\n    litellm_params:\n      model: openai/acme-7b\n      api_base: {}/v1\n      api_key: sk-acme\n",
        config(&mock),
        mock.base()
    );
    let proxy = Proxy::start(&config, &[]);
    let body = r#"{"model":"ignored","messages":[{"role":"user","content":"Hello"}],"user":"u1"}"#;
    for (path, group, upstream_model) in [
        (
            "/openai/deployments/vllm/chat/completions?api-version=2024-06-01",
            "vllm",
            "facebook/opt-125m",
        ),
        (
            "/engines/vllm/chat/completions",
            "vllm",
            "facebook/opt-125m",
        ),
        (
            "/openai/deployments/acme%2Fchat/chat/completions",
            "acme/chat",
            "acme-7b",
        ),
        (
            "/engines/acme/chat/chat/completions",
            "acme/chat",
            "acme-7b",
        ),
    ] {
        let res = request(
            "POST",
            &proxy.url(path),
            &[("content-type", "application/json")],
            Some(body.as_bytes()),
        );
        assert_eq!(res.status, 200, "{path}: {}", res.text());
        assert_eq!(res.header("x-litellm-model-group"), Some(group), "{path}");
        let got = mock.received_on("/v1/chat/completions");
        let sent = String::from_utf8_lossy(&got.last().unwrap().body).into_owned();
        let want = format!(
            r#"{{"model":"{upstream_model}","messages":[{{"role":"user","content":"Hello"}}],"user":"u1"{}}}"#,
            if group == "vllm" {
                r#","temperature":0.9,"max_tokens":64"#
            } else {
                ""
            }
        );
        assert_eq!(sent, want, "{path}");
    }
    let res = get(&proxy.url("/v1/models/acme%2Fchat"), &[]);
    assert_eq!(res.json()["id"], "acme/chat", "{}", res.text());
    assert_eq!(
        get(&proxy.url("/models/vllm"), &[]).json()["owned_by"],
        "openai"
    );
    let res = get(&proxy.url("/v1/models/nope"), &[]);
    assert_eq!(res.status, 404);
    assert_eq!(
        res.json()["error"]["message"],
        "The model `nope` does not exist or is not accessible"
    );
}

#[test]
fn model_info_masks_secrets_and_models_lists_groups() {
    let mock = MockUpstream::start();
    let proxy = Proxy::start(&config(&mock), &[]);
    let res = get(&proxy.url("/v1/models"), &[]);
    let ids: Vec<Value> = res.json()["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!("vllm"), json!("hosted"), json!("deepseek-chat")]
    );
    let info = get(&proxy.url("/model/info"), &[]);
    assert_eq!(info.status, 200);
    let text = info.text();
    assert!(!text.contains("sk-upstream-secret-1"), "{text}");
    assert!(!text.contains("sk-ds"), "{text}");
    assert_eq!(info.json()["data"][0]["model_info"]["id"], "vllm-one");
    assert!(!proxy.log().contains("sk-upstream-secret-1"));
}
