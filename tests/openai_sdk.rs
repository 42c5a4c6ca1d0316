//! End to end with the official OpenAI Python SDK against the bundled config.
//! `tests/run.sh` installs the SDK into `.venv` and points `LLM_PROXY_PYTHON` at it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;

const KEY: &str = "sk-sdk-test-0123456789abcdef";

/// The Python that has the `openai` package, if any.
fn python() -> Option<String> {
    let candidates = [
        std::env::var("LLM_PROXY_PYTHON").ok(),
        Some(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").to_string()),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import openai"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

#[test]
fn the_openai_python_sdk_works_against_the_bundled_config() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the OpenAI SDK (tests/run.sh does)"
        );
        eprintln!(
            "skipped: no Python with the openai package; run tests/run.sh to install it into .venv"
        );
        return;
    };
    let config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml")).unwrap();
    let config = format!("{config}\ngeneral_settings:\n  master_key: {KEY}\n");
    let proxy = Proxy::start_with_args(&config, &[], &["--host", "127.0.0.1"]);
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/e2e/openai_sdk_check.py"
        ))
        .arg(proxy.url("/v1"))
        .arg(KEY)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK checks failed:\n{stdout}\n{stderr}\nproxy log:\n{}",
        proxy.log()
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
