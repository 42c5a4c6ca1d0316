#!/usr/bin/env python3
"""Chat throughput of several llm-proxy builds, taking turns cell by cell (Findings 17 and 18).

    bench/ab.py [--rounds 6] [--seconds 4] [--conns 64] [--nginx] [--bare PATH] BIN [BIN ...]

Starts bench/harness.py's nginx JSON mock and wrk on the client's core, and every target on the
target's core with one worker: each BIN with the bench's generated config, and optionally
nginx's `proxy_pass` hop (--nginx) and examples/bare_hop (--bare target/.../bare_hop). Then, in
each round, one wrk cell per target, the first target of the round rotating, and the target's
CPU time over the cell. Prints each cell, then per target the medians and the ratio of req/s to
the first target's, round by round. One VM drifts by 10-15 % over minutes; cells seconds apart
resolve ~1 % with 6-8 rounds. Standard library only; needs nginx and wrk (bench/run.sh installs
them)."""

import argparse
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bins", nargs="+", help="llm-proxy binaries to compare")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=int, default=4)
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--nginx", action="store_true", help="add nginx's proxy_pass hop")
    p.add_argument("--bare", help="add examples/bare_hop, the floor of an actix-web hop")
    p.add_argument("--client-cpu", type=int, default=0)
    p.add_argument("--target-cpu", type=int, default=1)
    args = p.parse_args()

    run = Path(tempfile.mkdtemp(prefix="llm-proxy-ab-"))
    procs = harness.Procs(run / "pids")
    key = "sk-ab-" + secrets.token_hex(8)
    try:
        mock_port = harness.free_port()
        (run / "mock-tmp").mkdir()
        (run / "mock.conf").write_text(harness.mock_nginx_conf(run, mock_port))
        mock = procs.start("mock", ["nginx", "-p", str(run), "-e", str(run / "mock-error.log"),
                                    "-c", str(run / "mock.conf")], run / "mock.log", cpu=args.client_cpu)
        if harness.wait_healthy(mock_port, "/", mock, 10) is None:
            sys.exit("the nginx mock did not start")
        config = run / "config.yaml"
        config.write_text(harness.litellm_config(mock_port, harness.free_port(), key))

        targets = []  # (name, port, process)
        for i, bin_ in enumerate(args.bins):
            port = harness.free_port()
            proc = procs.start(f"llm-proxy-{i}", [bin_, "--config", str(config), "--port", str(port),
                                                  "--host", "127.0.0.1", "--num_workers", "1"],
                               run / f"proxy-{i}.log", cpu=args.target_cpu,
                               env=dict(os.environ, RUST_LOG="warn"))
            targets.append((f"{chr(65 + i)} {bin_}", port, proc))
        if args.bare:
            port = harness.free_port()
            proc = procs.start("bare_hop", [args.bare, str(port),
                                            f"http://127.0.0.1:{mock_port}/v1/chat/completions"],
                               run / "bare.log", cpu=args.target_cpu)
            targets.append(("bare_hop", port, proc))
        if args.nginx:
            port = harness.free_port()
            (run / "hop-tmp").mkdir()
            (run / "hop.conf").write_text(
                harness.hop_nginx_conf(run, port, harness.free_port(), mock_port, harness.free_port()))
            proc = procs.start("nginx", ["nginx", "-p", str(run), "-e", str(run / "hop-error.log"),
                                         "-c", str(run / "hop.conf")], run / "hop.log", cpu=args.target_cpu)
            targets.append(("nginx proxy_pass", port, proc))
        for name, port, proc in targets:
            if harness.wait_healthy(port, "/health/readiness", proc, 30) is None:
                sys.exit(f"{name} did not start; logs in {run}")

        body = harness.chat_request(harness.CHAT_MODEL)
        url = "http://127.0.0.1:{}/v1/chat/completions"
        for _, port, _ in targets:
            harness.run_wrk(run, url.format(port), body, key, args.conns, 2, args.client_cpu)
        cells = {name: [] for name, _, _ in targets}
        for r in range(args.rounds):
            k = r % len(targets)
            for name, port, proc in targets[k:] + targets[:k]:
                pids = harness.tree(proc.pid)
                before = harness.cpu_ns(pids)
                w = harness.run_wrk(run, url.format(port), body, key, args.conns, args.seconds,
                                    args.client_cpu)
                cpu_us = (harness.cpu_ns(pids) - before) / 1e3 / max(w["requests"], 1)
                rps = w["requests"] / (w["duration_us"] / 1e6)
                errors = w["status"] + w["read"] + w["write"] + w["timeout"] + w["connect"]
                cells[name].append((rps, cpu_us))
                print(f"round {r + 1} {name}: {rps:,.0f} req/s, {cpu_us:.2f} µs CPU a request, "
                      f"p50 {w['p50']} µs, p99 {w['p99']} µs, errors {errors}", flush=True)
        first = targets[0][0]
        print(f"\n| target | median req/s | median CPU µs/req | ÷ {first.split()[0]}, by round |")
        print("|---|---:|---:|---|")
        for name, _, _ in targets:
            ratios = [c[0] / f[0] for c, f in zip(cells[name], cells[first])]
            print(f"| {name} | {statistics.median(c[0] for c in cells[name]):,.0f} | "
                  f"{statistics.median(c[1] for c in cells[name]):.2f} | "
                  f"{' '.join(f'{x:.1%}' for x in ratios)} |")
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
