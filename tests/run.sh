#!/usr/bin/env bash
# The test command: installs what the end-to-end tests need (the official OpenAI Python SDK and
# LangChain's langchain-openai in .venv, the Node openai SDK in tests/e2e/node), then runs every
# test of the workspace. Installs only what is missing, so re-runs go straight to the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import openai, langchain_openai" 2>/dev/null; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "openai>=1.40,<3" "langchain-openai>=0.3,<2"
fi
if command -v npm >/dev/null 2>&1; then
  if [ ! -f tests/e2e/node/node_modules/openai/package.json ]; then
    (cd tests/e2e/node && npm ci --no-audit --no-fund --loglevel=error)
  fi
else
  echo "tests/run.sh: npm is not installed; the Node SDK test skips (and fails under CI)" >&2
fi
export LLM_PROXY_PYTHON="$PWD/.venv/bin/python"
cargo test --workspace "$@"
