#!/usr/bin/env python3
"""A loopback OpenAI upstream that streams chat completions with spaced chunks.

Every chunk carries the upstream's send time (CLOCK_MONOTONIC, ns) in its content as
`t<ns>;`, so a client on the same machine can tell how long each chunk took to reach it
through whatever sits in between. Standard library only; HTTP/1.1 keep-alive; one asyncio
loop. It answers every POST with a stream (or a plain JSON completion when the body does not
ask for `"stream": true`) and `GET /health` with 200.

    python3 sse_mock.py --port 18081 --chunks 20 --interval-ms 10
"""

import argparse
import asyncio
import json
import time

CREATED = 1_700_000_000


def chunk(delta, finish=None):
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "gpt-4o",
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def http_chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def sse(obj) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


PLAIN = json.dumps(
    {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the mock."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
).encode()


async def read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    return method, path, headers, body


async def handle(reader, writer, args):
    try:
        while True:
            try:
                method, path, headers, body = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                return
            close = headers.get("connection", "").lower() == "close"
            try:
                wants_stream = bool(json.loads(body or b"{}").get("stream"))
            except (ValueError, AttributeError):
                wants_stream = False
            if method != "POST" or not wants_stream:
                payload = PLAIN if method == "POST" else b'{"status":"ok"}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(payload), payload)
                )
                await writer.drain()
                if close:
                    return
                continue
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            interval = args.interval_ms / 1000.0
            for i in range(args.chunks):
                if i > 0:
                    await asyncio.sleep(interval)
                delta = {"content": "t%d; " % time.monotonic_ns()}
                if i == 0:
                    delta["role"] = "assistant"
                writer.write(http_chunk(sse(chunk(delta))))
                await writer.drain()
            tail = sse(chunk({}, "stop")) + b"data: [DONE]\n\n"
            writer.write(http_chunk(tail) + b"0\r\n\r\n")
            await writer.drain()
            if close:
                return
    except ConnectionError:
        # The client (or the proxy in front) went away mid-answer: nothing to report.
        return
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    args = parser.parse_args()
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args), args.host, args.port, backlog=1024
    )
    # Small writes must leave at once: asyncio sets TCP_NODELAY on its stream sockets.
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
