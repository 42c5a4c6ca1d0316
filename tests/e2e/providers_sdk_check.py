"""Drive every provider through llm-proxy with the official OpenAI Python SDK, plain and
streaming (run by tests/provider_sdks.rs, which starts the provider-impersonating mocks and the
proxy).

Usage: providers_sdk_check.py BASE_URL API_KEY SPEC_JSON
SPEC_JSON is a list of {"model", "text", "stream_text", "finish", "stream_finish",
"stream_usage": [prompt, completion] | null, "tools": [names] | null, "stream_tools": [names] | null,
"refuses_logit_bias": bool}.
Prints one line per check and "N passed, 0 failed" at the end; exits non-zero on the first failure.
"""
import json
import sys

import openai

base_url, api_key, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=20)
checks = 0


def check(name, cond, detail=""):
    global checks
    if not cond:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    checks += 1
    print(f"ok {name}")


messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]

for case in spec:
    model = case["model"]

    r = client.chat.completions.create(model=model, messages=messages)
    check(f"{model} object", r.object == "chat.completion", r)
    choice = r.choices[0]
    check(f"{model} role", choice.message.role == "assistant", choice)
    if case["tools"]:
        names = [t.function.name for t in choice.message.tool_calls or []]
        check(f"{model} tool calls", names == case["tools"], choice.message)
        for t in choice.message.tool_calls:
            check(f"{model} tool arguments are JSON", isinstance(json.loads(t.function.arguments), dict), t)
    else:
        check(f"{model} content", choice.message.content == case["text"], choice.message)
    check(f"{model} finish_reason", choice.finish_reason == case["finish"], choice)
    check(f"{model} usage", r.usage is not None and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage)

    # `n=1` (LangChain's old default) and `user` pass for every provider, as in LiteLLM.
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, n=1, user="user-1")
    check(f"{model} x-litellm-model-group", raw.headers.get("x-litellm-model-group") == model, dict(raw.headers))

    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, ids, tools = "", None, None, set(), {}
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
            for t in c.delta.tool_calls or []:
                entry = tools.setdefault(t.index, {"name": "", "arguments": ""})
                if t.function and t.function.name:
                    entry["name"] += t.function.name
                if t.function and t.function.arguments:
                    entry["arguments"] += t.function.arguments
    check(f"{model} streamed text", text == case["stream_text"], repr(text))
    check(f"{model} streamed finish_reason", finish == case["stream_finish"], finish)
    if case["stream_tools"]:
        names = [tools[i]["name"] for i in sorted(tools)]
        check(f"{model} streamed tool calls", names == case["stream_tools"], tools)
        for t in tools.values():
            check(f"{model} streamed tool arguments are JSON", isinstance(json.loads(t["arguments"]), dict), t)
    if case["stream_usage"]:
        prompt, completion = case["stream_usage"]
        check(
            f"{model} streamed usage",
            usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (prompt, completion),
            usage,
        )

    if case.get("refuses_logit_bias"):
        try:
            client.chat.completions.create(model=model, messages=messages, logit_bias={"50256": -100})
            check(f"{model} unsupported param raises", False, "no error")
        except openai.BadRequestError as err:
            check(f"{model} unsupported param is a 400 naming it", err.status_code == 400 and "logit_bias" in str(err), err)

print(f"{checks} passed, 0 failed")
