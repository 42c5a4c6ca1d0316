#!/usr/bin/env bash
# One command for the whole benchmark: direct vs nginx proxy_pass vs llm-proxy vs LiteLLM's
# proxy against the same loopback mock, on this machine, in one run. See bench/README.md.
#
#   bench/run.sh [--quick] [--skip-litellm] [--seconds N] [...]   (bench/harness.py --help)
#
# Installs what it needs when absent: nginx, wrk (Debian), a release build of llm-proxy in
# target/bench, LiteLLM's proxy in bench/.venv (PyPI). Network: loopback only. Everything it
# starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SKIP_LITELLM=0
for arg in "$@"; do
  [[ $arg == --skip-litellm ]] && SKIP_LITELLM=1
  [[ $arg == -h || $arg == --help ]] && exec python3 bench/harness.py --help
done

PIDFILE=bench/.run/pids
mkdir -p bench/.run
: >"$PIDFILE"
cleanup() {
  # The harness stops what it started; this is the backstop if it was killed.
  if [[ -s $PIDFILE ]]; then
    while read -r pid; do
      [[ -n $pid ]] && kill -TERM -- "-$pid" 2>/dev/null || true
    done <"$PIDFILE"
    sleep 0.5
    while read -r pid; do
      [[ -n $pid ]] && kill -KILL -- "-$pid" 2>/dev/null || true
    done <"$PIDFILE"
  fi
  : >"$PIDFILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '[bench] %s\n' "$*" >&2; }

# --- tools ------------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  say "installing ${missing[*]} (apt-get)"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- llm-proxy, release build in its own target dir -------------------------------------------
# LLM_PROXY_BIN=path skips the build. BENCH_FROM_HEAD=1 builds the committed HEAD (exported to
# target/bench-head/src) instead of the working tree, which others may be editing mid-change.
# The two get target dirs of their own: sharing one, cargo took the other copy's build of
# llm-proxy-actors as fresh (it keys that build by name and version, not by where the source
# is), so edits to actors/ were not compiled in and the old code was measured.
if [[ ${BENCH_FROM_HEAD:-0} == 1 ]]; then
  export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$ROOT/target/bench-head}
else
  export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$ROOT/target/bench}
fi
if [[ -z ${LLM_PROXY_BIN:-} ]]; then
  SRC=$ROOT
  if [[ ${BENCH_FROM_HEAD:-0} == 1 ]]; then
    SRC=$CARGO_TARGET_DIR/src
    rm -rf "$SRC" && mkdir -p "$SRC"
    git archive HEAD | tar -x -C "$SRC"
    say "building llm-proxy $(git rev-parse --short HEAD) (release) in $CARGO_TARGET_DIR"
  else
    say "building llm-proxy from the working tree (release) in $CARGO_TARGET_DIR"
  fi
  # Line tables only: the same binary can be profiled (perf, callgrind); codegen is unchanged.
  (cd "$SRC" && CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --quiet --bin llm-proxy)
  LLM_PROXY_BIN=$CARGO_TARGET_DIR/release/llm-proxy
fi

# --- LiteLLM's proxy in bench/.venv -----------------------------------------------------------
if ((SKIP_LITELLM == 0)); then
  if [[ ! -x bench/.venv/bin/litellm ]]; then
    say "installing LiteLLM's proxy into bench/.venv (pip, a few minutes)"
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install -q --upgrade pip
    bench/.venv/bin/pip install -q "${LITELLM_SPEC:-litellm[proxy]}"
  fi
  say "LiteLLM $(bench/.venv/bin/pip show litellm 2>/dev/null | sed -n 's/^Version: //p')"
fi

# --- run: the driver, the load generator and the mocks on one core, the target on another -----
CLIENT_CPU=${BENCH_CLIENT_CPU:-0}
say "running bench/harness.py $*"
taskset -c "$CLIENT_CPU" python3 bench/harness.py \
  --llm-proxy-bin "$LLM_PROXY_BIN" \
  --client-cpu "$CLIENT_CPU" \
  --command "bench/run.sh $*" "$@"
