//! Routing and resilience over HTTP: retries, fallbacks, cooldowns, rate limits, timeouts,
//! aliases, wildcards and streams that fail, against loopback upstreams scripted to misbehave.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

fn deployment(name: &str, id: &str, base: &str, extra: &str) -> String {
    format!(
        "  - model_name: {name}\n    litellm_params: {{model: openai/m, api_base: \"{base}\", api_key: k{extra}}}\n    model_info: {{id: {id}}}\n"
    )
}

/// A config of one deployment, `a` in group `g` at `mock`'s `/a`, with `extra` appended to its
/// `litellm_params` and, unless empty, these `router_settings` lines.
fn one_deployment(mock: &MockUpstream, extra: &str, router_settings: &str) -> String {
    let mut cfg = format!(
        "model_list:\n{}",
        deployment("g", "a", &format!("{}/a", mock.base()), extra)
    );
    if !router_settings.is_empty() {
        cfg.push_str("router_settings:\n");
        cfg.push_str(router_settings);
    }
    cfg
}

fn rate_limited() -> Reply {
    Reply::openai_error(429, "Rate limit reached for requests", "requests")
}

#[test]
fn a_retry_lands_on_the_other_deployment() {
    let mock = MockUpstream::start();
    mock.script("/a/chat/completions", vec![rate_limited()]);
    mock.script(
        "/b/chat/completions",
        vec![Reply::ok(completion("from b", "m"))],
    );
    let cfg = format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 1\n",
        deployment(
            "g",
            "dep-a",
            &format!("{}/a", mock.base()),
            ", weight: 1000"
        ),
        deployment("g", "dep-b", &format!("{}/b", mock.base()), ", weight: 1"),
    );
    let proxy = Proxy::start(&cfg, &[]);
    // dep-a is nearly always picked first; whichever is picked first, the answer comes from b.
    for _ in 0..5 {
        let res = post_json(&proxy.url("/v1/chat/completions"), &chat("g"), &[]);
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json()["choices"][0]["message"]["content"], "from b");
        assert_eq!(res.header("x-litellm-model-id"), Some("dep-b"));
        mock.clear();
    }
    let log = proxy.log();
    assert!(
        log.contains("dep-a"),
        "the failed attempt is logged by deployment id:\n{log}"
    );
    assert!(!log.contains("api_key: k,"), "{log}");
}

#[test]
fn client_errors_are_not_retried() {
    let mock = MockUpstream::start();
    mock.script(
        "/a/chat/completions",
        vec![Reply::openai_error(
            400,
            "Invalid value for temperature",
            "invalid_request_error",
        )],
    );
    let cfg = format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 3\n",
        deployment("g", "dep-a", &format!("{}/a", mock.base()), ""),
        deployment("g", "dep-a2", &format!("{}/a", mock.base()), ""),
    );
    let proxy = Proxy::start(&cfg, &[]);
    let res = post_json(&proxy.url("/v1/chat/completions"), &chat("g"), &[]);
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(res.text().contains("Invalid value for temperature"));
    assert_eq!(mock.received().len(), 1, "a 400 must not be retried");
}

#[test]
fn fallbacks_run_in_order_and_the_client_sees_the_original_error_when_all_fail() {
    let mock = MockUpstream::start();
    mock.script(
        "/p/chat/completions",
        vec![Reply::openai_error(500, "primary is down", "server_error")],
    );
    mock.script(
        "/f1/chat/completions",
        vec![Reply::openai_error(
            503,
            "first fallback down",
            "server_error",
        )],
    );
    mock.script(
        "/f2/chat/completions",
        vec![Reply::ok(completion("from f2", "m"))],
    );
    let base = mock.base();
    let cfg = format!(
        "model_list:\n{}{}{}router_settings:\n  num_retries: 1\n  fallbacks: [{{\"primary\": [\"fb1\", \"fb2\"]}}]\n",
        deployment("primary", "p", &format!("{base}/p"), ""),
        deployment("fb1", "f1", &format!("{base}/f1"), ""),
        deployment("fb2", "f2", &format!("{base}/f2"), ""),
    );
    let proxy = Proxy::start(&cfg, &[]);
    let res = post_json(&proxy.url("/v1/chat/completions"), &chat("primary"), &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["choices"][0]["message"]["content"], "from f2");
    assert_eq!(res.header("x-litellm-attempted-fallbacks"), Some("2"));
    assert_eq!(res.header("x-litellm-model-id"), Some("f2"));
    let order: Vec<String> = mock
        .received()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(
        order,
        vec![
            "/p/chat/completions",
            "/p/chat/completions",
            "/f1/chat/completions",
            "/f1/chat/completions",
            "/f2/chat/completions"
        ],
        "retries within a group first, then each fallback group with its own retries"
    );

    // Everything down: the original group's error, naming the fallbacks tried.
    mock.script(
        "/f2/chat/completions",
        vec![Reply::openai_error(502, "f2 down too", "server_error")],
    );
    mock.clear();
    let res = post_json(&proxy.url("/v1/chat/completions"), &chat("primary"), &[]);
    assert_eq!(res.status, 500, "{}", res.text());
    let msg = res.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("primary is down"), "{msg}");
    assert!(msg.contains("fb1") && msg.contains("fb2"), "{msg}");
}

#[test]
fn client_side_fallbacks_and_disable_fallbacks() {
    let mock = MockUpstream::start();
    mock.script(
        "/p/chat/completions",
        vec![Reply::openai_error(500, "down", "server_error")],
    );
    mock.script(
        "/o/chat/completions",
        vec![Reply::ok(completion("other", "m"))],
    );
    let base = mock.base();
    let cfg = format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 0\n",
        deployment("primary", "p", &format!("{base}/p"), ""),
        deployment("other", "o", &format!("{base}/o"), ""),
    );
    let proxy = Proxy::start(&cfg, &[]);
    let mut body = chat("primary");
    body["fallbacks"] = json!(["other"]);
    let res = post_json(&proxy.url("/v1/chat/completions"), &body, &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["choices"][0]["message"]["content"], "other");
    // `fallbacks` is the router's, never sent upstream.
    assert!(mock.received_on("/o/chat/completions")[0]
        .json()
        .get("fallbacks")
        .is_none());
    body["disable_fallbacks"] = json!(true);
    let res = post_json(&proxy.url("/v1/chat/completions"), &body, &[]);
    assert_eq!(res.status, 500);
}

#[test]
fn context_window_errors_go_to_context_window_fallbacks_only() {
    let mock = MockUpstream::start();
    mock.script(
        "/small/chat/completions",
        vec![Reply::openai_error(
            400,
            "This model's maximum context length is 4097 tokens. However, your messages resulted in 9000 tokens.",
            "invalid_request_error",
        )],
    );
    mock.script(
        "/big/chat/completions",
        vec![Reply::ok(completion("big context", "m"))],
    );
    mock.script(
        "/generic/chat/completions",
        vec![Reply::ok(completion("generic", "m"))],
    );
    let base = mock.base();
    let cfg = format!(
        "model_list:\n{}{}{}router_settings:\n  num_retries: 2\n  fallbacks: [{{\"small\": [\"generic\"]}}]\n  context_window_fallbacks: [{{\"small\": [\"big\"]}}]\n",
        deployment("small", "s", &format!("{base}/small"), ""),
        deployment("big", "b", &format!("{base}/big"), ""),
        deployment("generic", "g", &format!("{base}/generic"), ""),
    );
    let proxy = Proxy::start(&cfg, &[]);
    let res = post_json(&proxy.url("/v1/chat/completions"), &chat("small"), &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.json()["choices"][0]["message"]["content"],
        "big context"
    );
    assert_eq!(
        mock.received_on("/small/chat/completions").len(),
        1,
        "not retried"
    );
    assert!(mock.received_on("/generic/chat/completions").is_empty());
}

#[test]
fn a_failing_deployment_cools_down_and_comes_back() {
    let mock = MockUpstream::start();
    mock.script(
        "/bad/chat/completions",
        vec![Reply::openai_error(500, "boom", "server_error")],
    );
    mock.script(
        "/good/chat/completions",
        vec![Reply::ok(completion("good", "m"))],
    );
    let base = mock.base();
    let cfg = format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 0\n  allowed_fails: 1\n  cooldown_time: 1\n",
        deployment("g", "bad", &format!("{base}/bad"), ", weight: 1"),
        deployment("g", "good", &format!("{base}/good"), ", weight: 1"),
    );
    let proxy = Proxy::start(&cfg, &[]);
    // Until `bad` fails twice (more than allowed_fails=1) it gets about half the calls.
    let started = Instant::now();
    for _ in 0..60 {
        let _ = post_json(&proxy.url("/v1/chat/completions"), &chat("g"), &[]);
        if mock.received_on("/bad/chat/completions").len() >= 2 {
            break;
        }
    }
    assert_eq!(
        mock.received_on("/bad/chat/completions").len(),
        2,
        "bad was never picked twice"
    );
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "too slow to test the cooldown"
    );
    // Now cooling down: every call goes to `good`.
    mock.clear();
    for _ in 0..20 {
        let res = post_json(&proxy.url("/v1/chat/completions"), &chat("g"), &[]);
        assert_eq!(res.status, 200);
    }
    assert!(
        mock.received_on("/bad/chat/completions").is_empty(),
        "a cooling deployment was called"
    );
    // After cooldown_time it is picked again.
    std::thread::sleep(Duration::from_millis(1200));
    mock.clear();
    for _ in 0..40 {
        let _ = post_json(&proxy.url("/v1/chat/completions"), &chat("g"), &[]);
        if !mock.received_on("/bad/chat/completions").is_empty() {
            break;
        }
    }
    assert!(
        !mock.received_on("/bad/chat/completions").is_empty(),
        "never left cooldown"
    );
}

#[test]
fn rpm_limits_are_enforced_with_a_429_and_retry_after() {
    let mock = MockUpstream::start();
    mock.script("/a/chat/completions", vec![Reply::ok(completion("a", "m"))]);
    let cfg = one_deployment(&mock, ", rpm: 3", "  num_retries: 0\n");
    let proxy = Proxy::start(&cfg, &[]);
    for i in 0..3 {
        let res = post_json(&proxy.url("/v1/chat/completions"), &chat("g"), &[]);
        assert_eq!(res.status, 200, "call {i}: {}", res.text());
    }
    let res = post_json(&proxy.url("/v1/chat/completions"), &chat("g"), &[]);
    assert_eq!(res.status, 429, "{}", res.text());
    let retry: u64 = res
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert!(res.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("No deployments available"));
    assert_eq!(mock.received().len(), 3);
}

#[test]
fn huge_timeouts_and_retry_afters_are_taken_as_long_ones_not_a_crash() {
    let mock = MockUpstream::start();
    mock.script(
        "/a/chat/completions",
        vec![
            Reply::ok(completion("one", "m")),
            Reply::ok(completion("two", "m")),
            Reply::openai_error(429, "slow down", "rate_limit_error")
                .with_header("retry-after", "1e30"),
            Reply::openai_error(429, "slow down", "rate_limit_error")
                .with_header("retry-after-ms", "1e300"),
        ],
    );
    let cfg = one_deployment(
        &mock,
        ", cooldown_time: 1e30",
        "  num_retries: 0\n  cooldown_time: 1e30\n",
    );
    let proxy = Proxy::start(&cfg, &[]);
    // Seconds past what a Duration holds (from_secs_f64 panicked on them).
    let mut body = chat("g");
    body["timeout"] = json!(1e30);
    let res = post_json(&proxy.url("/v1/chat/completions"), &body, &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &chat("g"),
        &[
            ("x-litellm-timeout", "1e30"),
            ("x-litellm-stream-timeout", "1e19"),
        ],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    for _ in 0..2 {
        let res = post_json(&proxy.url("/v1/chat/completions"), &chat("g"), &[]);
        assert_eq!(res.status, 429, "{}", res.text());
    }
    // Both 429s came from the upstream (one deployment: a 429 does not cool it down), and the
    // proxy is still up.
    assert_eq!(mock.received().len(), 4);
    assert_eq!(get(&proxy.url("/health/liveliness"), &[]).status, 200);
}

#[test]
fn a_hanging_upstream_times_out_within_the_bound_and_counts_as_a_failure() {
    let mock = MockUpstream::start();
    mock.script(
        "/hang/chat/completions",
        vec![Reply::Delay(
            Duration::from_secs(10),
            Box::new(Reply::ok(completion("late", "m"))),
        )],
    );
    mock.script(
        "/ok/chat/completions",
        vec![Reply::ok(completion("fallback", "m"))],
    );
    let base = mock.base();
    let cfg = format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 0\n  timeout: 0.4\n  fallbacks: [{{\"slow\": [\"fast\"]}}]\n",
        deployment("slow", "hang", &format!("{base}/hang"), ""),
        deployment("fast", "ok", &format!("{base}/ok"), ""),
    );
    let proxy = Proxy::start(&cfg, &[]);
    let started = Instant::now();
    let res = post_json(&proxy.url("/v1/chat/completions"), &chat("slow"), &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["choices"][0]["message"]["content"], "fallback");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Without the fallback the client gets a 408.
    let mut body = chat("slow");
    body["disable_fallbacks"] = json!(true);
    let started = Instant::now();
    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &body,
        &[("x-litellm-timeout", "0.3")],
    );
    assert_eq!(res.status, 408, "{}", res.text());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn aliases_route_and_hidden_ones_are_not_listed() {
    let mock = MockUpstream::start();
    mock.script("/a/chat/completions", vec![Reply::ok(completion("a", "m"))]);
    let cfg = one_deployment(
        &mock,
        "",
        "  model_group_alias: {\"public-alias\": \"g\", \"secret-alias\": {\"model\": \"g\", \"hidden\": true}}\n",
    );
    let proxy = Proxy::start(&cfg, &[]);
    let ids: Vec<String> = get(&proxy.url("/v1/models"), &[]).json()["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids, vec!["public-alias".to_string(), "g".to_string()]);
    for alias in ["public-alias", "secret-alias"] {
        let res = post_json(&proxy.url("/v1/chat/completions"), &chat(alias), &[]);
        assert_eq!(res.status, 200, "{alias}: {}", res.text());
        assert_eq!(res.header("x-litellm-model-group"), Some(alias));
    }
    assert!(mock.received().iter().all(|r| r.json()["model"] == "m"));
}

#[test]
fn wildcards_pass_the_requested_model_upstream() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/chat/completions",
        vec![Reply::ok(completion("wild", "x"))],
    );
    let cfg = format!(
        "model_list:\n  - model_name: \"*\"\n    litellm_params: {{model: \"openai/*\", api_base: \"{base}/v1\", api_key: k}}\n  - model_name: \"team/*\"\n    litellm_params: {{model: \"openai/*\", api_base: \"{base}/v1\", api_key: k}}\n",
        base = mock.base()
    );
    let proxy = Proxy::start(&cfg, &[]);
    for (requested, upstream) in [("gpt-4o-mini", "gpt-4o-mini"), ("team/llama-3", "llama-3")] {
        let res = post_json(&proxy.url("/v1/chat/completions"), &chat(requested), &[]);
        assert_eq!(res.status, 200, "{requested}: {}", res.text());
        let last = mock.received().pop().map(|r| r.json()["model"].clone());
        assert_eq!(last, Some(json!(upstream)), "{requested}");
    }
}

#[test]
fn a_stream_that_fails_before_its_first_chunk_is_retried() {
    let mock = MockUpstream::start();
    let ok_chunk = json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"fine"},"finish_reason":null}]}).to_string();
    mock.script(
        "/a/chat/completions",
        vec![Reply::openai_error(503, "warming up", "server_error")],
    );
    mock.script(
        "/b/chat/completions",
        vec![Reply::sse(&[&ok_chunk, "[DONE]"], Duration::ZERO)],
    );
    let base = mock.base();
    let cfg = format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 1\n",
        deployment("g", "a", &format!("{base}/a"), ", order: 1"),
        deployment("g", "b", &format!("{base}/b"), ", order: 2"),
    );
    let proxy = Proxy::start(&cfg, &[]);
    let mut body = chat("g");
    body["stream"] = json!(true);
    let res = post_json(&proxy.url("/v1/chat/completions"), &body, &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.sse_data(), vec![ok_chunk, "[DONE]".to_string()]);
    assert_eq!(res.header("x-litellm-model-id"), Some("b"));
}

#[test]
fn a_finished_stream_ends_at_done_and_its_upstream_connection_is_reused_after_a_late_tail() {
    let mock = MockUpstream::start();
    let chunk = json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}).to_string();
    // After `[DONE]` the upstream sends one more event and its body's end only 400 ms later:
    // the client's stream must end at `[DONE]`, and the connection still go back to the pool.
    let tail_gap = Duration::from_millis(400);
    mock.script(
        "/a/chat/completions",
        vec![Reply::sse_timed(&[
            (Duration::ZERO, &chunk),
            (Duration::ZERO, "[DONE]"),
            (tail_gap, "tail"),
        ])],
    );
    let cfg = one_deployment(&mock, "", "");
    let proxy = Proxy::start_with_args(&cfg, &[], &["--num_workers", "1"]);
    let mut body = chat("g");
    body["stream"] = json!(true);
    for call in 0..3 {
        let started = Instant::now();
        let res = post_json(&proxy.url("/v1/chat/completions"), &body, &[]);
        let took = started.elapsed();
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.sse_data(), vec![chunk.clone(), "[DONE]".to_string()]);
        assert!(
            took < Duration::from_millis(300),
            "call {call} waited for the tail: {took:?}"
        );
        // Let the tail arrive and be read before the next call.
        std::thread::sleep(tail_gap + Duration::from_millis(300));
    }
    assert_eq!(mock.received().len(), 3);
    assert_eq!(mock.connections(), 1, "the drained connection was reused");
}

#[test]
fn a_stream_that_dies_midway_ends_with_an_error_event_and_done() {
    let mock = MockUpstream::start();
    let chunk = json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}).to_string();
    mock.script(
        "/a/chat/completions",
        vec![Reply::ChunksThenDrop {
            content_type: "text/event-stream".into(),
            pieces: vec![(Duration::ZERO, format!("data: {chunk}\n\n").into_bytes())],
        }],
    );
    let cfg = one_deployment(&mock, "", "");
    let proxy = Proxy::start(&cfg, &[]);
    let mut body = chat("g");
    body["stream"] = json!(true);
    let res = post_json(&proxy.url("/v1/chat/completions"), &body, &[]);
    assert_eq!(res.status, 200);
    let data = res.sse_data();
    assert_eq!(data.len(), 3, "{data:?}");
    assert_eq!(data[0], chunk);
    let err: Value = serde_json::from_str(&data[1]).unwrap();
    assert!(err["error"]["message"].is_string(), "{err}");
    assert_eq!(data[2], "[DONE]");
    assert_eq!(
        mock.received().len(),
        1,
        "no retry after the first byte reached the client"
    );
}

#[test]
fn a_stream_that_stalls_after_its_first_chunk_times_out_and_keeps_its_chunks() {
    let mock = MockUpstream::start();
    let chunk = |text: &str| {
        json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":text},"finish_reason":null}]}).to_string()
    };
    let (first, second, third, late) = (chunk("one"), chunk("two"), chunk("three"), chunk("late"));
    // Each chunk within the timeout of the chunk before, not of the first: the timer moves on
    // with every chunk.
    let gap = Duration::from_millis(300);
    mock.script(
        "/a/chat/completions",
        vec![Reply::sse_timed(&[
            (Duration::ZERO, &first),
            (gap, &second),
            (gap, &third),
            (Duration::from_secs(5), &late),
        ])],
    );
    let cfg = one_deployment(&mock, "", "  num_retries: 0\n  stream_timeout: 0.5\n");
    let proxy = Proxy::start(&cfg, &[]);
    let mut body = chat("g");
    body["stream"] = json!(true);
    let started = Instant::now();
    let res = post_json(&proxy.url("/v1/chat/completions"), &body, &[]);
    let took = started.elapsed();
    assert_eq!(res.status, 200);
    let data = res.sse_data();
    assert_eq!(data.len(), 5, "{data:?}");
    assert_eq!(data[..3], [first, second, third]);
    let err: Value = serde_json::from_str(&data[3]).unwrap();
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.to_lowercase().contains("timed out"), "{err}");
    assert_eq!(data[4], "[DONE]");
    assert!(
        took >= Duration::from_millis(1050) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn a_client_that_hangs_up_frees_the_in_flight_slot() {
    let mock = MockUpstream::start();
    let chunk = json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}).to_string();
    let slow_stream = Reply::sse(&[chunk.as_str(); 40], Duration::from_millis(100));
    mock.script(
        "/a/chat/completions",
        vec![slow_stream, Reply::ok(completion("second", "m"))],
    );
    let cfg = one_deployment(&mock, ", max_parallel_requests: 1", "  num_retries: 0\n");
    let proxy = Proxy::start(&cfg, &[]);
    let mut body = chat("g");
    body["stream"] = json!(true);
    let payload = body.to_string();
    let mut conn = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    write!(
        conn,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    drop(conn);
    // The slot is freed when the proxy notices the hang-up; the next call then gets through.
    let ok = eventually(Duration::from_secs(5), || {
        post_json(&proxy.url("/v1/chat/completions"), &chat("g"), &[]).status == 200
    });
    assert!(
        ok,
        "the in-flight slot of the abandoned stream was never freed:\n{}",
        proxy.log()
    );
}

#[test]
fn mock_testing_flags_fail_the_requested_group_and_its_fallbacks_answer() {
    let mock = MockUpstream::start();
    mock.script(
        "/a/chat/completions",
        vec![Reply::ok(completion("real", "m"))],
    );
    let config = format!(
        r#"model_list:
{}  - model_name: backup
    litellm_params: {{model: openai/m, mock_response: "from backup"}}
  - model_name: big
    litellm_params: {{model: openai/m, mock_response: "from big"}}
router_settings:
  num_retries: 2
  allowed_fails: 0
  fallbacks: [{{"g": ["backup"]}}]
  context_window_fallbacks: [{{"g": ["big"]}}]
"#,
        deployment("g", "a", &format!("{}/a", mock.base()), "")
    );
    let proxy = Proxy::start(&config, &[]);
    let call = |flags: Value, model: &str| {
        let mut body = chat(model);
        body.as_object_mut()
            .unwrap()
            .extend(flags.as_object().unwrap().clone());
        post_json(&proxy.url("/v1/chat/completions"), &body, &[])
    };
    for (flags, answer, group) in [
        (
            json!({"mock_testing_fallbacks": true}),
            "from backup",
            "backup",
        ),
        (
            json!({"mock_testing_fallbacks": "True"}),
            "from backup",
            "backup",
        ),
        (
            json!({"mock_testing_context_fallbacks": true}),
            "from big",
            "big",
        ),
        (
            json!({"mock_testing_rate_limit_error": true}),
            "from backup",
            "backup",
        ),
    ] {
        let res = call(flags.clone(), "g");
        assert_eq!(res.status, 200, "{flags}: {}", res.text());
        assert_eq!(
            res.json()["choices"][0]["message"]["content"],
            answer,
            "{flags}"
        );
        assert_eq!(res.header("x-litellm-model-group"), Some(group), "{flags}");
        assert_eq!(
            res.header("x-litellm-attempted-fallbacks"),
            Some("1"),
            "{flags}"
        );
        assert_eq!(
            res.header("x-litellm-attempted-retries"),
            Some("0"),
            "{flags}"
        );
    }
    // The request's own fallbacks replace the configured ones.
    let res = call(
        json!({"mock_testing_fallbacks": true, "fallbacks": ["big"]}),
        "g",
    );
    assert_eq!(res.json()["choices"][0]["message"]["content"], "from big");
    // With nowhere to fall back to, the client gets the mocked error.
    let res = call(json!({"mock_testing_fallbacks": true}), "backup");
    assert_eq!(res.status, 500, "{}", res.text());
    assert!(res.json()["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("litellm.InternalServerError: This is a mock exception for model=backup, to trigger a fallback. Fallbacks=None"));
    let res = call(json!({"mock_testing_rate_limit_error": true}), "backup");
    assert_eq!(res.status, 429, "{}", res.text());
    // No call was made for the mocked failures, and nothing cooled down: the group still answers.
    assert!(mock.received().is_empty());
    let res = post_json(&proxy.url("/v1/chat/completions"), &chat("g"), &[]);
    assert_eq!(res.json()["choices"][0]["message"]["content"], "real");
}

#[test]
fn mock_timeout_waits_out_the_timeout_then_times_out() {
    let mock = MockUpstream::start();
    mock.script(
        "/a/chat/completions",
        vec![Reply::ok(completion("real", "m"))],
    );
    let proxy = Proxy::start(&one_deployment(&mock, "", "  num_retries: 0\n"), &[]);
    let mut body = chat("g");
    body["mock_timeout"] = json!(true);
    body["timeout"] = json!(0.3);
    let started = Instant::now();
    let res = post_json(&proxy.url("/v1/chat/completions"), &body, &[]);
    assert_eq!(res.status, 408, "{}", res.text());
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(res.json()["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with(
        "litellm.Timeout: Timeout Error: OpenAIException - Request timed out. Timeout passed=0.3"
    ));
    assert!(mock.received().is_empty());
}
