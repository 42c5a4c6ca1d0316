#!/usr/bin/env bash
# The test command: installs what the end-to-end tests need (the official OpenAI Python SDK in
# .venv), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import openai" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "openai>=1.40,<3"
fi
export LLM_PROXY_PYTHON="$PWD/.venv/bin/python"
cargo test --workspace "$@"
