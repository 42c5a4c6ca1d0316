"""Drive every provider through llm-proxy with LangChain's ChatOpenAI, `invoke` and `stream`
(run by tests/provider_sdks.rs).

Usage: langchain_check.py BASE_URL API_KEY SPEC_JSON (the spec of providers_sdk_check.py).
Prints one line per check and "N passed, 0 failed" at the end; exits non-zero on the first failure.
"""
import json
import sys

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

base_url, api_key, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
checks = 0


def check(name, cond, detail=""):
    global checks
    if not cond:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    checks += 1
    print(f"ok {name}")


messages = [SystemMessage("Be brief."), HumanMessage("Hello")]

for case in spec:
    model = case["model"]
    llm = ChatOpenAI(model=model, base_url=base_url, api_key=api_key, max_retries=0, timeout=20)

    answer = llm.invoke(messages)
    if case["tools"]:
        names = [t["name"] for t in answer.tool_calls]
        check(f"{model} invoke tool calls", names == case["tools"], answer)
        check(f"{model} invoke tool args", all(isinstance(t["args"], dict) for t in answer.tool_calls), answer)
    else:
        check(f"{model} invoke", answer.content == case["text"], repr(answer.content))
    check(
        f"{model} invoke finish_reason",
        answer.response_metadata.get("finish_reason") == case["finish"],
        answer.response_metadata,
    )
    check(f"{model} invoke usage", answer.usage_metadata is not None, answer)

    text, merged = "", None
    for chunk in llm.stream(messages):
        text += chunk.content if isinstance(chunk.content, str) else ""
        merged = chunk if merged is None else merged + chunk
    check(f"{model} stream", text == case["stream_text"], repr(text))
    check(
        f"{model} stream finish_reason",
        merged is not None and merged.response_metadata.get("finish_reason") == case["stream_finish"],
        merged and merged.response_metadata,
    )
    if case["stream_tools"]:
        names = [t["name"] for t in merged.tool_calls]
        check(f"{model} stream tool calls", names == case["stream_tools"], merged.tool_call_chunks)

print(f"{checks} passed, 0 failed")
