// gguf_race.mjs - llama.cpp's speed on spinq's GGUF exports (run by
// bench/gguf_race.sh): per file, prefill of PREFILL tokens from an empty
// cache (one batch) and decode of DECODE tokens after it (greedy, batch 1),
// medians of REPS runs, with the ggml CPU variant llama.cpp loaded; once per
// thread count (THREADS: a comma-separated list, e.g. 2,1: llama.cpp's
// threads wait for each other by spinning, which a shared, loaded machine
// punishes, so one thread is measured too).
//   node bench/gguf_race.mjs THREADS FILE...   -> one JSON object
import { statSync } from "node:fs";
import { openLlama, loadGguf } from "../tests/data/llamacpp.mjs";

const PREFILL = 512, DECODE = 64, REPS = 3;
const [threads, ...files] = process.argv.slice(2);
const median = (x) => { const s = [...x].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

const { llama, cpuVariant, release } = await openLlama();
const out = { bench: "gguf_race_llamacpp", cpu_variant: cpuVariant, llama_cpp: release,
              prefill_tokens: PREFILL, decode_tokens: DECODE, threads: {} };
for (const th of threads.split(",").map(Number))
for (const file of files) {
  const { model, context } = await loadGguf(llama, file, { contextSize: PREFILL + DECODE + 8, batchSize: PREFILL,
                                                           threads: th });
  const prompt = Array.from({ length: PREFILL }, (_, i) => (i * 7919 + 13) % 32000); /* ordinary tokens */
  const seq = context.getSequence();
  const pre = [], dec = [];
  for (let r = 0; r < REPS; r++) {
    await seq.clearHistory();
    let t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, PREFILL - 1));
    pre.push((performance.now() - t0) / 1000);
    t0 = performance.now();
    let n = 0;
    for await (const t of seq.evaluate([prompt[PREFILL - 1]], { temperature: 0 })) {
      if (++n >= DECODE) break;
    }
    dec.push((performance.now() - t0) / 1000);
  }
  (out.threads[th] ??= {})[file.split("/").pop()] = {
    bytes: statSync(file).size,
    prefill_tokens_per_s: +((PREFILL - 1) / median(pre)).toFixed(1),
    decode_tokens_per_s: +(DECODE / median(dec)).toFixed(2),
    prefill_seconds: pre.map((x) => +x.toFixed(3)), decode_seconds: dec.map((x) => +x.toFixed(3)),
  };
  seq.dispose();
  await context.dispose();
  await model.dispose();
}
console.log(JSON.stringify(out));
await llama.dispose();
