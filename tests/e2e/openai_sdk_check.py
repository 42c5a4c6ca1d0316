"""Drive llm-proxy with the official OpenAI Python SDK (run by tests/openai_sdk.rs).

Usage: openai_sdk_check.py BASE_URL API_KEY
Exits non-zero on the first failed check; prints one line per check.
"""
import sys

import openai

base_url, api_key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=20)
checks = 0


def check(name, cond, detail=""):
    global checks
    if not cond:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    checks += 1
    print(f"ok {name}")


models = [m.id for m in client.models.list()]
check("models.list", "gpt-4o" in models and "gpt-3.5-turbo" in models, models)

m = client.models.retrieve("claude-3-haiku")
check("models.retrieve", m.id == "claude-3-haiku" and m.owned_by == "anthropic", m)

r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
check("chat.completions.create", r.choices[0].message.content == "This is a mock answer from gpt-4o.", r)
check("usage", r.usage.total_tokens == 30, r.usage)

raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
check("x-litellm-model-group header", raw.headers.get("x-litellm-model-group") == "gpt-4", dict(raw.headers))

stream = client.chat.completions.create(
    model="gpt-3.5-turbo",
    messages=[{"role": "user", "content": "hi"}],
    stream=True,
    stream_options={"include_usage": True},
)
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
check("streamed text", text.startswith("Hello from the"), text)
check("streamed finish_reason", finish == "stop", finish)
check("streamed usage", usage is not None and usage.total_tokens == 30, usage)

e = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
check("embeddings", len(e.data) == 2 and len(e.data[0].embedding) > 0, e)

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    check("unknown model raises", False, "no error")
except openai.BadRequestError as err:
    check("unknown model is a 400", err.status_code == 400 and "no-such-model" in str(err), err)

# Azure's client calls /openai/deployments/{model}/... with an `api-key` header.
azure = openai.AzureOpenAI(
    azure_endpoint=base_url.removesuffix("/v1"), api_key=api_key, api_version="2024-06-01",
    max_retries=0, timeout=20,
)
r = azure.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
check("AzureOpenAI chat", r.choices[0].message.content == "This is a mock answer from gpt-4o.", r)
e = azure.embeddings.create(model="text-embedding-3-small", input="a")
check("AzureOpenAI embeddings", len(e.data) == 1, e)

bad = openai.OpenAI(base_url=base_url, api_key="sk-wrong-key", max_retries=0, timeout=20)
try:
    bad.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    check("wrong key raises", False, "no error")
except openai.AuthenticationError as err:
    check("wrong key is a 401", err.status_code == 401, err)

print(f"{checks} passed, 0 failed")
