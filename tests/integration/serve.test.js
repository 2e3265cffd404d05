// serve.test.js - `spinq-worker serve` as its users meet it: the known story
// from the served stories260K, batched decoding equal to one-at-a-time
// decoding, the official OpenAI client (plain and streaming, completions
// and chat), llama.cpp's endpoints, and bad requests of every kind answered
// with a clear 4xx while the server stays up and frees its slots.
// Runs the sanitizer build (SPINQ_WORKER_BIN overrides it).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { BIN, HF, metrics, post, readSSE, slotsIdle, spinqBin, startServer, waitFor } from "./serve_util.js";

const STORY =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a " +
  "big, red ball. She wanted to play with it, but it was too high.";

let srv, chat, tmp;

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), "spinq-serve-"));
  // an HF copy of stories260K whose tokenizer_config.json has a LLaMA-2 chat template
  const hf = path.join(tmp, "hf-chat");
  cpSync(HF, hf, { recursive: true });
  const cfg = JSON.parse(readFileSync(path.join(hf, "tokenizer_config.json"), "utf8"));
  cfg.chat_template =
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + " +
    "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}";
  writeFileSync(path.join(hf, "tokenizer_config.json"), JSON.stringify(cfg));
  [srv, chat] = await Promise.all([startServer(BIN, "--slots", "4"), startServer(hf, "--slots", "2", "--alias", "tiny-chat")]);
});

after(async () => {
  await Promise.all([srv?.stop(), chat?.stop()]);
  rmSync(tmp, { recursive: true, force: true });
  for (const s of [srv, chat]) assert.doesNotMatch(s.stderr(), /AddressSanitizer|runtime error/);
});

const greedy = (prompt, max_tokens = 200, extra = {}) =>
  post(srv.url, "/v1/completions", { prompt, max_tokens, temperature: 0, ...extra });

test("greedy output of the served model equals `spinq generate`'s, and is the known story", async () => {
  const gen = spawnSync(spinqBin, ["generate", BIN, "-n", "200"], { encoding: "utf8" });
  assert.equal(gen.status, 0, gen.stderr);
  const r = await greedy("");
  assert.equal(r.status, 200, r.text);
  const c = r.json.choices[0];
  assert.ok(c.text.startsWith(STORY), c.text);
  assert.equal(c.text + "\n", gen.stdout);
  assert.equal(r.json.usage.prompt_tokens, 1);
  assert.equal(r.json.usage.completion_tokens, 200);
  assert.equal(c.finish_reason, "length");
  assert.ok(r.json.timings.predicted_per_second > 0);
  // a prompt, echoed: what `spinq generate -p` prints
  const g2 = spawnSync(spinqBin, ["generate", BIN, "-p", "Once upon a time", "-n", "30"], { encoding: "utf8" });
  const r2 = await greedy("Once upon a time", 30, { echo: true });
  assert.equal(r2.json.choices[0].text + "\n", g2.stdout);
});

test("4 different prompts decoded together give exactly what each gives alone", async () => {
  const prompts = ["Once upon a time", "The cat sat", "Tom had a big dog", "One day, Lily went"];
  const alone = [];
  for (const p of prompts) alone.push((await greedy(p, 120, { ignore_eos: true })).json.choices[0].text);
  const m0 = await metrics(srv.url);
  const together = await Promise.all(prompts.map((p) => greedy(p, 120, { ignore_eos: true })));
  const m1 = await metrics(srv.url);
  assert.deepEqual(
    together.map((r) => r.json.choices[0].text),
    alone,
  );
  // they did share steps: more rows than steps while they ran
  const steps = m1.decode_steps_total - m0.decode_steps_total, rows = m1.decode_rows_total - m0.decode_rows_total;
  assert.equal(rows, 4 * 119);
  assert.ok(steps < rows, `steps ${steps}, rows ${rows}`);
  assert.ok(m1.decode_batch_max >= 2);
  // n choices and a list of prompts in one request: the same greedy texts
  const r = await greedy(prompts.slice(0, 2), 120, { ignore_eos: true, n: 2 });
  assert.deepEqual(
    r.json.choices.map((c) => c.text),
    [alone[0], alone[0], alone[1], alone[1]],
  );
  assert.deepEqual(
    r.json.choices.map((c) => c.index),
    [0, 1, 2, 3],
  );
});

test("sampling: seeded runs repeat, stop strings end the text, logprobs have the asked shape", async () => {
  const body = { prompt: "Once upon a time", max_tokens: 40, temperature: 0.9, top_p: 0.9, top_k: 40, min_p: 0.05, seed: 7 };
  const a = await post(srv.url, "/v1/completions", body);
  const b = await post(srv.url, "/v1/completions", body);
  assert.equal(a.status, 200, a.text);
  assert.equal(a.json.choices[0].text, b.json.choices[0].text);
  const s = await greedy("Once upon a time", 100, { stop: ["Lily"] });
  assert.equal(s.json.choices[0].text, ", there was a little girl named ");
  assert.equal(s.json.choices[0].finish_reason, "stop");
  const lp = await greedy("Once upon a time", 5, { logprobs: 3 });
  const l = lp.json.choices[0].logprobs;
  assert.equal(l.tokens.join(""), lp.json.choices[0].text);
  assert.equal(l.top_logprobs[0].length ?? Object.keys(l.top_logprobs[0]).length, 3);
  assert.ok(l.token_logprobs.every((x) => x <= 0));
  const pen = await greedy("Once upon a time", 60, { frequency_penalty: 2, presence_penalty: 2 });
  assert.equal(pen.status, 200);
  assert.notEqual(pen.json.choices[0].text, (await greedy("Once upon a time", 60)).json.choices[0].text);
});

test("the official OpenAI client: completions, plain and streaming", async () => {
  const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused" });
  const models = await client.models.list();
  assert.equal(models.data[0].id, "stories260K.bin");
  assert.equal(models.data[0].meta.parameters > 200000, true);
  const c = await client.completions.create({ model: "stories260K.bin", prompt: "", max_tokens: 200, temperature: 0 });
  assert.ok(c.choices[0].text.startsWith(STORY));
  assert.equal(c.usage.completion_tokens, 200);
  const stream = await client.completions.create({
    model: "stories260K.bin",
    prompt: "",
    max_tokens: 200,
    temperature: 0,
    stream: true,
  });
  let text = "",
    usage = null,
    finish = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      text += ch.text;
      if (ch.finish_reason) finish = ch.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, c.choices[0].text);
  assert.equal(finish, "length");
  assert.deepEqual(usage, c.usage);
  await assert.rejects(
    client.completions.create({ model: "x", prompt: "hi", max_tokens: 100000 }),
    (e) => e.status === 400 && /max_tokens/.test(e.message),
  );
});

test("the official OpenAI client: chat with the model's template, plain and streaming; no template is a 400", async () => {
  const client = new OpenAI({ baseURL: `${chat.url}/v1`, apiKey: "unused" });
  const messages = [{ role: "user", content: "Tell me a story." }];
  const c = await client.chat.completions.create({ model: "tiny-chat", messages, max_tokens: 30, temperature: 0 });
  assert.equal(c.object, "chat.completion");
  assert.equal(c.choices[0].message.role, "assistant");
  assert.ok(c.choices[0].message.content.length > 0);
  assert.ok(c.usage.prompt_tokens > 8);
  // the template's text is what the model saw
  const tk = await post(chat.url, "/tokenize", { content: "[INST] Tell me a story. [/INST]", add_special: true });
  assert.equal(c.usage.prompt_tokens, tk.json.tokens.length);
  const stream = await client.chat.completions.create({ model: "tiny-chat", messages, max_tokens: 30, temperature: 0, stream: true });
  let text = "",
    role = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      if (ch.delta.role) role = ch.delta.role;
      text += ch.delta.content ?? "";
    }
  }
  assert.equal(role, "assistant");
  assert.equal(text, c.choices[0].message.content);
  const plain = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused" });
  await assert.rejects(plain.chat.completions.create({ model: "m", messages }), (e) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /stories260K\.bin has no chat template/);
    return true;
  });
});

test("llama.cpp endpoints: /completion (plain, n_probs, SSE ending in [DONE]), /tokenize, /detokenize, /props, /health", async () => {
  const r = await post(srv.url, "/completion", { prompt: "Once upon a time", n_predict: 8, temperature: 0, n_probs: 2 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.content, (await greedy("Once upon a time", 8)).json.choices[0].text);
  assert.equal(r.json.tokens_predicted, 8);
  assert.equal(r.json.completion_probabilities.length, 8);
  assert.equal(r.json.completion_probabilities[0].probs.length, 2);
  const res = await fetch(`${srv.url}/completion`, {
    method: "POST",
    body: JSON.stringify({ prompt: "Once upon a time", n_predict: 8, temperature: 0, stream: true }),
  });
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const ev = await readSSE(res);
  assert.equal(ev.at(-1), "[DONE]");
  const parts = ev.slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(parts.map((p) => p.content).join(""), r.json.content);
  assert.equal(parts.at(-1).stop, true);
  assert.equal(parts.at(-1).timings.predicted_n, 8);
  const tk = await post(srv.url, "/tokenize", { content: "Once upon a time" });
  const dt = await post(srv.url, "/detokenize", { tokens: tk.json.tokens });
  assert.equal(dt.json.content, "Once upon a time");
  const props = await (await fetch(`${srv.url}/props`)).json();
  assert.equal(props.total_slots, 4);
  assert.equal(props.default_generation_settings.n_ctx, 512);
  assert.equal((await fetch(`${srv.url}/health`)).status, 200);
  assert.equal((await fetch(`${srv.url}/nope`)).status, 404);
  const m = await metrics(srv.url);
  assert.ok(m.tokens_predicted_total > 0 && m.requests_total > 0);
});

test("curl -N gets the stream as Server-Sent Events", () => {
  const r = spawnSync(
    "curl",
    ["-sN", `${srv.url}/v1/completions`, "-d", JSON.stringify({ prompt: "Once", max_tokens: 5, temperature: 0, stream: true })],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0);
  const ev = r.stdout.split("\n\n").filter(Boolean);
  assert.equal(ev.at(-1), "data: [DONE]");
  assert.ok(ev.every((e) => e.startsWith("data: ")));
  assert.equal(ev.length, 5 + 2); // a chunk per token, usage, [DONE]
});

test("bad requests get a clear 4xx in OpenAI's error shape, and the server stays up", async () => {
  const cases = [
    [{ prompt: 5 }, "prompt"],
    [{ prompt: "x", max_tokens: "10" }, "max_tokens"],
    [{ prompt: "x", max_tokens: -1 }, "max_tokens"],
    [{ prompt: "x", max_tokens: 1e12 }, "max_tokens"],
    [{ prompt: "x", n: 1000 }, "n"],
    [{ prompt: "x", temperature: "hot" }, "temperature"],
    [{ prompt: "x", temperature: 5 }, "temperature"],
    [{ prompt: "x", stop: 3 }, "stop"],
    [{ prompt: "x", logprobs: 99 }, "logprobs"],
    [{ prompt: [1, 2, 99999] }, "prompt"],
    [{ prompt: "x", frobnicate: true }, "frobnicate"],
    [{ prompt: "x", seed: 1.5 }, "seed"],
    [{}, "prompt"],
  ];
  for (const [body, param] of cases) {
    const r = await post(srv.url, "/v1/completions", body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.error.param, param, r.text);
    assert.equal(r.json.error.type, "invalid_request_error");
    assert.ok(r.json.error.message.length > 5);
    assert.ok("code" in r.json.error);
  }
  // not JSON, invalid UTF-8, not an object
  for (const body of ["{", new Uint8Array([0x7b, 0x22, 0x70, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), "[1]"]) {
    const r = await post(srv.url, "/v1/completions", body);
    assert.equal(r.status, 400, r.text);
    assert.ok(r.json.error.message);
  }
  // a prompt beyond the context: 400 naming the limit, unless truncation is asked for
  const long = "Once upon a time there was a cat. ".repeat(200);
  let r = await post(srv.url, "/v1/completions", { prompt: long, max_tokens: 4 });
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, /context is 512/);
  r = await post(srv.url, "/v1/completions", { prompt: long, max_tokens: 4, truncate: true });
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.usage.prompt_tokens < 512);
  // 1 MB prompt
  r = await post(srv.url, "/v1/completions", { prompt: "a".repeat(1 << 20), max_tokens: 4 });
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, /context of 512 tokens/);
  // 9 MB body
  r = await post(srv.url, "/v1/completions", JSON.stringify({ prompt: "a".repeat(9 << 20) }));
  assert.equal(r.status, 413);
  r = await post(srv.url, "/v1/models", {});
  assert.equal(r.status, 405);
  assert.equal((await fetch(`${srv.url}/health`)).status, 200);
});

test("100 concurrent clients that disconnect mid-stream leak no slot; a full queue is a 503 with Retry-After", async () => {
  const before = await metrics(srv.url);
  const clients = Array.from({ length: 100 }, async (_, i) => {
    const ac = new AbortController();
    const res = await fetch(`${srv.url}/v1/completions`, {
      method: "POST",
      signal: ac.signal,
      body: JSON.stringify({ prompt: `Client ${i} says`, max_tokens: 400, ignore_eos: true, stream: true }),
    });
    if (res.status === 503) {
      assert.equal(res.headers.get("retry-after"), "1");
      return "busy";
    }
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    await reader.read(); // the first event: it is running
    ac.abort();
    return "aborted";
  });
  const outcome = await Promise.all(clients.map((p) => p.catch((e) => (e.name === "AbortError" ? "aborted" : Promise.reject(e)))));
  assert.ok(outcome.includes("aborted"));
  await slotsIdle(srv.url);
  const m = await waitFor(() => metrics(srv.url), (m) => m.requests_deferred === 0 && m.requests_processing === 0, "an empty queue");
  assert.equal(m.requests_rejected_total - before.requests_rejected_total, outcome.filter((o) => o === "busy").length);
  // disconnected streams stopped early: far fewer than 400 tokens each
  const aborted = outcome.filter((o) => o === "aborted").length;
  assert.ok(m.tokens_predicted_total - before.tokens_predicted_total < aborted * 400);
  // the server still answers right
  assert.ok((await greedy("", 200)).json.choices[0].text.startsWith(STORY));
});

test("a full queue answers 503 with Retry-After, reported by /metrics", async () => {
  const small = await startServer(BIN, "--slots", "1", "--queue", "1", "--ctx", "4096");
  try {
    const open = async () => {
      const ac = new AbortController();
      const res = await fetch(`${small.url}/v1/completions`, {
        method: "POST",
        signal: ac.signal,
        body: JSON.stringify({ prompt: "Once", max_tokens: 4000, ignore_eos: true, stream: true }),
      });
      return { res, ac };
    };
    const a = await open();
    await a.res.body.getReader().read(); // running in the one slot
    const b = await open(); // headers come at once; it waits in the queue
    await waitFor(() => metrics(small.url), (m) => m.requests_deferred === 1, "a queued request");
    const c = await post(small.url, "/v1/completions", { prompt: "Once", max_tokens: 5 });
    assert.equal(c.status, 503);
    assert.equal(c.headers.get("retry-after"), "1");
    assert.equal(c.json.error.type, "server_error");
    assert.match(c.json.error.message, /busy/);
    a.ac.abort();
    b.ac.abort();
    await slotsIdle(small.url);
    await waitFor(() => metrics(small.url), (m) => m.requests_deferred === 0, "an empty queue");
  } finally {
    await small.stop();
  }
});

test("/compare: the served model against its full precision, token by token; against itself KL is 0", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "spinq-cmp-"));
  const packed = path.join(dir, "w4a8kv8.spq");
  const q = spawnSync(spinqBin, ["quantize", BIN, "--out", packed, "--a-bits", "8", "--kv-bits", "8"], { encoding: "utf8" });
  assert.equal(q.status, 0, q.stderr);
  const quant = await startServer(packed, "--reference", BIN, "--slots", "2");
  const same = await startServer(BIN, "--reference", BIN, "--slots", "1");
  try {
    const prompt = "Once upon a time";
    const r = await post(quant.url, "/compare", { prompt, max_tokens: 30 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const toks = r.json.quantized.tokens;
    assert.ok(toks.length > 0 && toks.length <= 30);
    // the quantized side is the served model's greedy text
    const greedy = await post(quant.url, "/v1/completions", { prompt, max_tokens: toks.length, temperature: 0 });
    assert.equal(toks.map((t) => t.text).join(""), greedy.json.choices[0].text);
    for (const t of toks) assert.ok(t.kl >= 0 && Number.isFinite(t.kl), JSON.stringify(t));
    const s = r.json.summary;
    assert.equal(s.positions, toks.length);
    assert.ok(Math.abs(s.kl_mean - toks.reduce((a, t) => a + t.kl, 0) / toks.length) < 1e-6);
    assert.equal(s.top1_agreement, toks.filter((t) => t.top1_agree).length / toks.length);
    assert.ok(s.kl_mean > 0, "4-bit weights move the distributions");
    // the full-precision side is `spinq generate`'s greedy story
    const fp = r.json.full_precision.tokens.map((t) => t.text).join("");
    assert.match(fp, /^, there was a little girl named Lily/);

    // one model against itself: the same distributions, so KL 0 exactly and full agreement
    const self = await post(same.url, "/compare", { prompt, max_tokens: 20 });
    assert.equal(self.status, 200);
    for (const t of self.json.quantized.tokens) assert.equal(t.kl, 0);
    assert.equal(self.json.summary.top1_agreement, 1);

    // bad requests name the field; a server without --reference says how to get one
    for (const [body, param] of [[{ prompt: 5 }, "prompt"], [{ prompt: "x", max_tokens: 0 }, "max_tokens"],
                                 [{ prompt: "x", bogus: 1 }, "bogus"], [{ prompt: "x", max_tokens: 100000 }, "max_tokens"]]) {
      const b = await post(quant.url, "/compare", body);
      assert.equal(b.status, 400, JSON.stringify(body));
      assert.equal(b.json.error.param, param);
    }
    const none = await post(srv.url, "/compare", { prompt });
    assert.equal(none.status, 400);
    assert.match(none.json.error.message, /--reference/);
    // comparisons ran between decode steps: the slots are all idle again
    await slotsIdle(quant.url);
  } finally {
    await quant.stop();
    await same.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
