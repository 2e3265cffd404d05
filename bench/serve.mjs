// bench/serve.mjs - `spinq-worker serve` under 1, 4 and 16 concurrent
// streams: time to first token and decode tokens/s, per stream and in
// aggregate (one JSON object on stdout).
// Usage: node bench/serve.mjs MODEL [LABEL [TOKENS]]  (200 tokens per stream)
// aggregate_tokens_per_s is every token over the wall time (prefills
// included); aggregate_decode_tokens_per_s sums the streams' decode rates
// (first token to last), what one batched step per token is for.
// Figures only, never pass/fail.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const model = process.argv[2];
const label = process.argv[3] ?? path.basename(model);
const TOKENS = Number(process.argv[4] ?? 200);
const proc = spawn(path.join(root, "build/rel/spinq-worker"), ["serve", model, "--listen", "127.0.0.1:0", "--slots", "16", "--ctx", "512"], {
  stdio: ["ignore", "pipe", "inherit"],
});
const url = await new Promise((res) => {
  let out = "";
  proc.stdout.on("data", (d) => {
    out += d;
    const m = out.match(/listening on (\S+)/);
    if (m) res(m[1]);
  });
});
while ((await fetch(`${url}/health`)).status !== 200) await new Promise((r) => setTimeout(r, 50));

async function stream(i) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    body: JSON.stringify({ prompt: `Once upon a time ${i}`, max_tokens: TOKENS, ignore_eos: true, temperature: 0, stream: true }),
  });
  let first = 0, n = 0, buf = "";
  const dec = new TextDecoder();
  for await (const c of res.body) {
    buf += dec.decode(c, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (ev === "data: [DONE]") continue;
      const j = JSON.parse(ev.slice(6));
      if (j.choices?.length && j.choices[0].logprobs === null) {
        if (!n) first = performance.now();
        n++;
      }
    }
  }
  const t1 = performance.now();
  return { ttft_ms: first - t0, tokens_per_s: ((n - 1) * 1000) / (t1 - first), n, t0, t1 };
}

const results = {};
for (const streams of [1, 4, 16]) {
  await stream(0); // warm
  const t0 = performance.now();
  const r = await Promise.all(Array.from({ length: streams }, (_, i) => stream(i)));
  const wall = (performance.now() - t0) / 1000;
  const sum = (k) => r.reduce((a, x) => a + x[k], 0);
  const median = (k) => {
    const v = r.map((x) => x[k]).sort((a, b) => a - b);
    return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  results[`streams_${streams}`] = {
    ttft_ms_mean: +(sum("ttft_ms") / r.length).toFixed(2),
    ttft_ms_median: +median("ttft_ms").toFixed(2),
    ttft_ms_max: +Math.max(...r.map((x) => x.ttft_ms)).toFixed(2),
    decode_tokens_per_s_per_stream: +(sum("tokens_per_s") / r.length).toFixed(2),
    decode_tokens_per_s_per_stream_median: +median("tokens_per_s").toFixed(2),
    aggregate_tokens_per_s: +(sum("n") / wall).toFixed(2),
    aggregate_decode_tokens_per_s: +sum("tokens_per_s").toFixed(2),
  };
}
const m = await (await fetch(`${url}/metrics`)).text();
proc.kill("SIGTERM");
const ratio = (k) => +(results.streams_16[k] / results.streams_1[k]).toFixed(2);
results.speedup_16_vs_1 = ratio("aggregate_tokens_per_s");
results.decode_speedup_16_vs_1 = ratio("aggregate_decode_tokens_per_s");
const metric = (name) => Number(m.match(new RegExp(`^${name} (\\d+)`, "m"))?.[1]);
console.log(JSON.stringify({ bench: "serve", model: label, tokens_per_stream: TOKENS, ...results,
  decode_batch_max: metric("spinq_decode_batch_max") }, null, 2));
