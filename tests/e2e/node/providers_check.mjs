// Drive every provider through llm-proxy with the official Node `openai` SDK, plain and
// streaming (run by tests/provider_sdks.rs; tests/run.sh installs the SDK here with `npm ci`).
//
// Usage: node providers_check.mjs BASE_URL API_KEY SPEC_JSON (the spec of
// ../providers_sdk_check.py). Prints one line per check and "N passed, 0 failed" at the end;
// exits non-zero on the first failure.
import OpenAI from "openai";

const [baseURL, apiKey, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20_000 });
let checks = 0;

function check(name, cond, detail) {
  if (!cond) {
    console.log(`FAIL ${name}: ${JSON.stringify(detail)}`);
    process.exit(1);
  }
  checks += 1;
  console.log(`ok ${name}`);
}

const messages = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hello" },
];
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

for (const c of spec) {
  const model = c.model;

  const r = await client.chat.completions.create({ model, messages });
  const choice = r.choices[0];
  check(`${model} object`, r.object === "chat.completion", r);
  if (c.tools) {
    const names = (choice.message.tool_calls ?? []).map((t) => t.function.name);
    check(`${model} tool calls`, same(names, c.tools), choice.message);
  } else {
    check(`${model} content`, choice.message.content === c.text, choice.message);
  }
  check(`${model} finish_reason`, choice.finish_reason === c.finish, choice);
  check(`${model} usage`, r.usage && r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, r.usage);

  const stream = await client.chat.completions.create({
    model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let finish = null;
  let usage = null;
  const tools = new Map();
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices) {
      text += ch.delta?.content ?? "";
      finish = ch.finish_reason ?? finish;
      for (const t of ch.delta?.tool_calls ?? []) {
        const entry = tools.get(t.index) ?? { name: "", arguments: "" };
        entry.name += t.function?.name ?? "";
        entry.arguments += t.function?.arguments ?? "";
        tools.set(t.index, entry);
      }
    }
  }
  check(`${model} streamed text`, text === c.stream_text, text);
  check(`${model} streamed finish_reason`, finish === c.stream_finish, finish);
  if (c.stream_tools) {
    const names = [...tools.keys()].sort((a, b) => a - b).map((i) => tools.get(i).name);
    check(`${model} streamed tool calls`, same(names, c.stream_tools), [...tools.values()]);
    for (const t of tools.values()) JSON.parse(t.arguments);
  }
  if (c.stream_usage) {
    check(
      `${model} streamed usage`,
      usage && usage.prompt_tokens === c.stream_usage[0] && usage.completion_tokens === c.stream_usage[1],
      usage,
    );
  }

  if (c.refuses_logit_bias) {
    try {
      await client.chat.completions.create({ model, messages, logit_bias: { 50256: -100 } });
      check(`${model} unsupported param raises`, false, "no error");
    } catch (err) {
      check(
        `${model} unsupported param is a 400 naming it`,
        err instanceof OpenAI.BadRequestError && err.status === 400 && String(err.message).includes("logit_bias"),
        String(err),
      );
    }
  }
}

console.log(`${checks} passed, 0 failed`);
