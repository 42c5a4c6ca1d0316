//! The real binary on the bundled config and on small configs: start-up, auth, mock answers,
//! health and info routes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

const STRONG_KEY: &str = "sk-test-0123456789abcdef";

fn bundled_config() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"))
        .expect("config.yaml")
}

#[test]
fn the_bundled_config_answers_with_no_keys() {
    let proxy = Proxy::start(&bundled_config(), &[]);
    let log = proxy.log();
    assert!(
        log.contains("LiteLLM: Proxy initialized with Config, Set models:"),
        "{log}"
    );
    assert!(log.contains("    gpt-4o"), "{log}");

    let models = get(&proxy.url("/v1/models"), &[]).json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        ids.first(),
        Some(&"gpt-4"),
        "aliases are listed first: {ids:?}"
    );
    for name in [
        "gpt-3.5-turbo",
        "gpt-4o",
        "claude-3-haiku",
        "text-embedding-3-small",
    ] {
        assert!(ids.contains(&name), "{name} missing from {ids:?}");
    }

    let res = post_json(
        &proxy.url("/chat/completions"),
        &json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let body = res.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "This is a mock answer from gpt-4o."
    );
    assert_eq!(body["usage"]["total_tokens"], 30);
    assert!(res.header("x-litellm-model-id").is_some());

    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &json!({"model": "gpt-3.5-turbo", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(res.status, 200);
    let data = res.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.starts_with("Hello from the"), "{text}");
    assert!(
        chunks.iter().any(|c| c["usage"]["total_tokens"] == 30),
        "usage chunk missing"
    );

    let res = post_json(
        &proxy.url("/embeddings"),
        &json!({"model": "text-embedding-3-small", "input": "hi"}),
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["object"], "list");
}

#[test]
fn weights_follow_rpm_in_the_bundled_config() {
    let proxy = Proxy::start(&bundled_config(), &[]);
    let mut eu = 0;
    let n = 150;
    for _ in 0..n {
        let res = post_json(
            &proxy.url("/chat/completions"),
            &json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        );
        if res.header("x-litellm-model-id") == Some("gpt-35-turbo-eu") {
            eu += 1;
        }
    }
    // rpm 600 vs 300: two thirds expected (100 of 150); 4 standard deviations is about ±23.
    assert!((77..=123).contains(&eu), "eu picked {eu} of {n}");
}

#[test]
fn the_master_key_guards_everything_but_the_probes() {
    let cfg = format!(
        "{}general_settings:\n  master_key: {STRONG_KEY}\n",
        bundled_config()
    );
    let proxy = Proxy::start_with_args(&cfg, &[], &["--host", "127.0.0.1"]);
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let res = post_json(&proxy.url("/v1/chat/completions"), &chat, &[]);
    assert_eq!(res.status, 401);
    assert_eq!(res.json()["error"]["type"], "auth_error");
    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &chat,
        &[("authorization", "Bearer sk-wrong")],
    );
    assert_eq!(
        res.status, 401,
        "a wrong key is a 401, not LiteLLM's 400 'No connected db.'"
    );
    assert_eq!(get(&proxy.url("/v1/models"), &[]).status, 401);
    assert_eq!(get(&proxy.url("/model/info"), &[]).status, 401);
    let bearer = format!("Bearer {STRONG_KEY}");
    assert_eq!(
        post_json(
            &proxy.url("/v1/chat/completions"),
            &chat,
            &[("authorization", &bearer)]
        )
        .status,
        200
    );
    assert_eq!(
        post_json(
            &proxy.url("/v1/chat/completions"),
            &chat,
            &[("x-litellm-api-key", STRONG_KEY)]
        )
        .status,
        200
    );
    assert_eq!(get(&proxy.url("/health/liveliness"), &[]).status, 200);
    let ready = get(&proxy.url("/health/readiness"), &[]);
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "healthy");
    assert!(
        !proxy.log().contains(STRONG_KEY),
        "the master key leaked into the log"
    );
}

#[test]
fn a_weak_or_missing_key_never_faces_the_network() {
    for (extra, env) in [
        ("", vec![]),
        ("general_settings:\n  master_key: sk-1234\n", vec![]),
        ("", vec![("LITELLM_MASTER_KEY", "short")]),
    ] {
        let dir = TempDir::new("weak");
        let path = dir.0.join("c.yaml");
        std::fs::write(&path, format!("{}{extra}", bundled_config())).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-proxy"));
        cmd.args(["--host", "0.0.0.0", "--port", "0", "--config"])
            .arg(&path);
        cmd.env_remove("LITELLM_MASTER_KEY");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        assert!(
            !out.status.success(),
            "started on 0.0.0.0 with {extra:?} {env:?}"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refusing to listen on 0.0.0.0") && err.contains("master_key"),
            "{err}"
        );
    }
    // Explicit permission starts it.
    let proxy = Proxy::start_with_args(
        &bundled_config(),
        &[(
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY",
            "true",
        )],
        &["--host", "0.0.0.0"],
    );
    assert_eq!(get(&proxy.url("/health/readiness"), &[]).status, 200);
}

#[test]
fn help_version_and_a_missing_config_file() {
    let bin = env!("CARGO_BIN_EXE_llm-proxy");
    let out = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--host",
        "--port",
        "--num_workers",
        "--detailed_debug",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(bin)
        .args(["--config", "/nonexistent/config.yaml", "--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Config file not found"));
}

#[test]
fn no_config_still_starts_with_no_models() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-proxy"));
    cmd.args(["--port", "0"])
        .env_remove("CONFIG_FILE_PATH")
        .env_remove("LITELLM_MASTER_KEY");
    let (port, mut child, log) = spawn_and_find_port(cmd);
    let res = get(&format!("http://127.0.0.1:{port}/v1/models"), &[]);
    assert_eq!(res.json()["data"], json!([]));
    assert!(log.lock().unwrap().contains("no models"));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn config_file_path_env_and_env_vars_in_the_config() {
    let mock = MockUpstream::start();
    mock.script(
        "/v1/chat/completions",
        vec![Reply::ok(completion("ok", "m"))],
    );
    let cfg = format!(
        r#"
environment_variables:
  LLMPROXY_TEST_UPSTREAM_KEY: sk-from-environment-variables
model_list:
  - model_name: ok
    litellm_params:
      model: openai/m
      api_base: {base}/v1
      api_key: os.environ/LLMPROXY_TEST_UPSTREAM_KEY
  - model_name: broken
    litellm_params:
      model: openai/m
      api_base: {base}/v1
      api_key: os.environ/LLMPROXY_TEST_UNSET_VARIABLE
"#,
        base = mock.base()
    );
    let dir = TempDir::new("env");
    let path = dir.0.join("c.yaml");
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-proxy"));
    cmd.args(["--port", "0"])
        .env("CONFIG_FILE_PATH", &path)
        .env_remove("LITELLM_MASTER_KEY");
    let (port, mut child, log) = spawn_and_find_port(cmd);
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let msg = json!([{"role": "user", "content": "x"}]);
    let res = post_json(&url, &json!({"model": "ok", "messages": msg}), &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        mock.received()[0].header("authorization"),
        Some("Bearer sk-from-environment-variables")
    );
    let res = post_json(&url, &json!({"model": "broken", "messages": msg}), &[]);
    assert_eq!(res.status, 401, "{}", res.text());
    assert!(res.text().contains("LLMPROXY_TEST_UNSET_VARIABLE"));
    assert_eq!(
        mock.received().len(),
        1,
        "the broken deployment must not be called"
    );
    assert!(eventually(Duration::from_secs(2), || log
        .lock()
        .unwrap()
        .contains("LLMPROXY_TEST_UNSET_VARIABLE")));
    let _ = child.kill();
    let _ = child.wait();
}

/// An `https://` upstream goes through the TLS client (built at start for such a config): what
/// reaches the upstream is a TLS handshake, and an upstream that hangs up on it is an
/// OpenAI-shaped connection error.
#[test]
fn an_https_upstream_is_called_over_tls() {
    use std::io::Read;
    use std::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut socket, _)) = listener.accept() {
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut first = [0u8; 3];
            let read = socket.read_exact(&mut first).map(|()| first);
            let _ = tx.send(read.ok());
        }
    });
    let proxy = Proxy::start(
        &format!(
            "model_list:\n  - model_name: secure\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: sk-test\n      api_base: https://127.0.0.1:{port}/v1\n"
        ),
        &[],
    );
    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &json!({"model": "secure", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    let hello = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    // A TLS record of type handshake (22), version 3.x.
    assert_eq!(hello.map(|b| (b[0], b[1])), Some((22, 3)));
    assert!(res.status >= 500, "{} {}", res.status, res.text());
    let error = &res.json()["error"];
    for field in ["message", "type", "param", "code"] {
        assert!(error.get(field).is_some(), "{field} missing: {error}");
    }
}

#[test]
fn health_calls_each_deployment_with_a_tiny_request_outside_the_router() {
    let mock = MockUpstream::start();
    mock.script(
        "/up/chat/completions",
        vec![Reply::ok(completion("2", "gpt-4o"))],
    );
    mock.script(
        "/down/chat/completions",
        vec![Reply::openai_error(503, "overloaded", "server_error")],
    );
    mock.script(
        "/up/embeddings",
        vec![Reply::ok(json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}], "model": "e", "usage": {"prompt_tokens": 1, "total_tokens": 1}}))],
    );
    let config = format!(
        r#"
model_list:
  - model_name: mocked
    litellm_params:
      model: openai/gpt-4o
      mock_response: "hi"
  - model_name: up
    litellm_params:
      model: openai/gpt-4o
      api_base: {base}/up
      api_key: sk-upstream-secret
      rpm: 1
    model_info:
      id: up-1
  - model_name: down
    litellm_params:
      model: openai/gpt-4o
      api_base: {base}/down
      api_key: sk-upstream-secret
  - model_name: embed
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: {base}/up
      api_key: sk-upstream-secret
    model_info:
      mode: embedding
  - model_name: "*"
    litellm_params:
      model: "openai/*"
      api_base: {base}/up
      api_key: sk-upstream-secret
  - model_name: "openai/*"
    litellm_params:
      model: "openai/*"
      api_base: {base}/up
      api_key: sk-upstream-secret
    model_info:
      health_check_model: openai/gpt-4o-mini
router_settings:
  num_retries: 0
general_settings:
  master_key: {STRONG_KEY}
"#,
        base = mock.base()
    );
    let proxy = Proxy::start(&config, &[]);
    let key = format!("Bearer {STRONG_KEY}");
    let auth = [("authorization", key.as_str())];
    assert_eq!(get(&proxy.url("/health"), &[]).status, 401);

    let res = get(&proxy.url("/health"), &auth);
    assert_eq!(res.status, 200, "{}", res.text());
    let report = res.json();
    assert_eq!(report["healthy_count"], 4, "{report}");
    assert_eq!(report["unhealthy_count"], 2, "{report}");
    let healthy: Vec<&str> = report["healthy_endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        healthy,
        [
            "openai/gpt-4o",
            "openai/gpt-4o",
            "openai/text-embedding-3-small",
            "openai/*"
        ]
    );
    assert_eq!(report["healthy_endpoints"][1]["model_id"], "up-1");
    assert_eq!(report["healthy_endpoints"][1]["rpm"], 1);
    assert_eq!(
        report["healthy_endpoints"][1]["api_base"],
        format!("{}/up", mock.base())
    );
    let down = &report["unhealthy_endpoints"][0];
    assert_eq!(down["exception_status"], 503, "{down}");
    assert!(
        down["error"].as_str().unwrap().contains("overloaded"),
        "{down}"
    );
    // A wildcard has no model to call without `model_info.health_check_model`.
    let wildcard = &report["unhealthy_endpoints"][1];
    assert_eq!(wildcard["model"], "openai/*");
    assert!(
        wildcard["error"]
            .as_str()
            .unwrap()
            .contains("health_check_model"),
        "{wildcard}"
    );
    assert!(!res.text().contains("sk-upstream-secret"));

    // The upstream got LiteLLM's tiny requests.
    // The checks run at once: the wildcard's may come first on this path.
    let checks = mock.received_on("/up/chat/completions");
    let chat = checks
        .iter()
        .find(|r| r.json()["model"] == "gpt-4o")
        .expect("the up deployment's check");
    assert_eq!(
        String::from_utf8_lossy(&chat.body),
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"What's 1 + 1?"}],"max_tokens":16}"#
    );
    assert_eq!(
        chat.header("authorization"),
        Some("Bearer sk-upstream-secret")
    );
    assert!(
        mock.received_on("/up/chat/completions")
            .iter()
            .any(|r| r.json()["model"] == "gpt-4o-mini"),
        "the wildcard is checked with its health_check_model"
    );
    let embed = &mock.received_on("/up/embeddings")[0];
    assert_eq!(
        String::from_utf8_lossy(&embed.body),
        r#"{"model":"text-embedding-3-small","input":["test"]}"#
    );

    // Checks are outside the router: the rpm: 1 deployment still takes its one request, and
    // the failed one is not cooling down.
    let call = |model: &str| {
        post_json(
            &proxy.url("/v1/chat/completions"),
            &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
            &auth,
        )
    };
    assert_eq!(call("up").status, 200);
    assert_eq!(call("down").status, 503);

    // One group or one deployment.
    // A targeted check with nothing healthy is a 503 (LiteLLM's monitors go by the status).
    let res = get(&proxy.url("/health?model=down"), &auth);
    assert_eq!(res.status, 503);
    let res = res.json();
    assert_eq!(
        (res["healthy_count"].clone(), res["unhealthy_count"].clone()),
        (json!(0), json!(1))
    );
    let res = get(&proxy.url("/health?model_id=up-1"), &auth).json();
    assert_eq!(res["healthy_endpoints"][0]["model_id"], "up-1", "{res}");
    let res = get(&proxy.url("/health?model=nope"), &auth);
    assert_eq!(
        (res.status, res.json()["healthy_count"].clone()),
        (503, json!(0))
    );
}

#[test]
fn completion_model_forces_the_model_and_health_details_can_be_turned_off() {
    let config = format!(
        "{}general_settings:\n  completion_model: claude-3-haiku\n  health_check_details: false\n",
        bundled_config()
    );
    let proxy = Proxy::start(&config, &[]);
    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-litellm-model-group"), Some("claude-3-haiku"));
    assert_eq!(
        res.json()["choices"][0]["message"]["content"],
        "This is a mock answer from claude-3-haiku."
    );
    let report = get(&proxy.url("/health"), &[]).json();
    assert_eq!(report["healthy_count"], 5, "{report}");
    assert_eq!(
        report["healthy_endpoints"][0],
        json!({"model": "openai/gpt-3.5-turbo"})
    );
}

#[test]
fn background_health_checks_run_at_start_and_health_answers_from_them() {
    let mock = MockUpstream::start();
    mock.script(
        "/up/chat/completions",
        vec![Reply::ok(completion("2", "gpt-4o"))],
    );
    let config = format!(
        r#"
model_list:
  - model_name: up
    litellm_params:
      model: openai/gpt-4o
      api_base: {base}/up
      api_key: sk-upstream-secret
    model_info:
      id: up-1
  - model_name: mocked
    litellm_params:
      model: openai/gpt-4o
      mock_response: "hi"
general_settings:
  background_health_checks: true
  health_check_interval: 600
"#,
        base = mock.base()
    );
    let proxy = Proxy::start_with_args(&config, &[], &["--num_workers", "2"]);
    assert!(
        !proxy.log().contains("background_health_checks"),
        "{}",
        proxy.log()
    );
    // One round at start, from one worker only, with no /health call.
    assert!(
        eventually(Duration::from_secs(10), || proxy
            .log()
            .contains("background health check: 2 healthy, 0 unhealthy")),
        "{}",
        proxy.log()
    );
    assert_eq!(mock.received_on("/up/chat/completions").len(), 1);
    let report = get(&proxy.url("/health"), &[]).json();
    assert_eq!(report["healthy_count"], 2, "{report}");
    let one = get(&proxy.url("/health?model_id=up-1"), &[]).json();
    assert_eq!(one["healthy_endpoints"][0]["model_id"], "up-1", "{one}");
    assert_eq!(one["healthy_count"], 1);
    // Answered from the latest round: the upstream was not called again.
    assert_eq!(mock.received_on("/up/chat/completions").len(), 1);
}

#[test]
fn set_verbose_in_the_config_turns_debug_logs_on_unless_rust_log_decides() {
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    for (settings, env, debug) in [
        ("litellm_settings:\n  set_verbose: true\n", "", true),
        ("router_settings:\n  debug_level: DEBUG\n", "", true),
        ("litellm_settings:\n  set_verbose: false\n", "", false),
        ("litellm_settings:\n  set_verbose: true\n", "info", false),
    ] {
        let config = format!(
            "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n      mock_response: hi\n{settings}"
        );
        let proxy = Proxy::start(&config, &[("RUST_LOG", env)]);
        assert_eq!(
            post_json(&proxy.url("/v1/chat/completions"), &chat, &[]).status,
            200
        );
        let logged = eventually(Duration::from_secs(2), || proxy.log().contains("DEBUG"));
        assert_eq!(
            logged,
            debug,
            "{settings} RUST_LOG={env:?}:\n{}",
            proxy.log()
        );
        assert!(
            !proxy.log().contains("not supported yet"),
            "{}",
            proxy.log()
        );
    }
}

#[test]
fn model_alias_map_renames_the_requested_model_before_routing() {
    let config = format!(
        "{}litellm_settings:\n  model_alias_map: {{\"my-gpt\": \"gpt-4o\"}}\n",
        bundled_config().replace("litellm_settings:\n  drop_params: true\n", "")
    );
    let proxy = Proxy::start(&config, &[]);
    assert!(!proxy.log().contains("model_alias_map"), "{}", proxy.log());
    let res = post_json(
        &proxy.url("/v1/chat/completions"),
        &json!({"model": "my-gpt", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-litellm-model-group"), Some("gpt-4o"));
    assert_eq!(
        res.json()["choices"][0]["message"]["content"],
        "This is a mock answer from gpt-4o."
    );
}

#[test]
fn custom_pricing_gives_the_response_cost_header() {
    let config = r#"
model_list:
  - model_name: priced
    litellm_params:
      model: openai/my-model
      mock_response: "hi"
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: priced-in-info
    litellm_params:
      model: openai/my-model
      mock_response: "hi"
    model_info:
      input_cost_per_token: 0.5
  - model_name: unpriced
    litellm_params:
      model: openai/my-model
      mock_response: "hi"
"#;
    let proxy = Proxy::start(config, &[]);
    let cost = |model: &str| {
        let res = post_json(
            &proxy.url("/v1/chat/completions"),
            &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        );
        assert_eq!(res.status, 200, "{}", res.text());
        let usage = res.json()["usage"].clone();
        let cost = res
            .header("x-litellm-response-cost")
            .map(|c| c.parse::<f64>().unwrap());
        (usage, cost)
    };
    let (usage, priced) = cost("priced");
    let (prompt, completion) = (
        usage["prompt_tokens"].as_f64().unwrap(),
        usage["completion_tokens"].as_f64().unwrap(),
    );
    assert_eq!(priced, Some(prompt * 0.000001 + completion * 0.000002));
    assert_eq!(cost("priced-in-info").1, Some(prompt * 0.5));
    assert_eq!(cost("unpriced").1, None);
}
