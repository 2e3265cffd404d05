// llamacpp.mjs - llama.cpp (through npm node-llama-cpp, its prebuilt CPU
// binaries, never built here) as the reference runtime for spinq's GGUF
// files: greedy generation from BOS, perplexity over given token windows,
// and which CPU variant of ggml it loaded. Used by the integration test
// (tests/integration/gguf.test.js), scripts/results_gguf.sh and
// bench/gguf_race.sh.
//
// As a command:
//   node tests/data/llamacpp.mjs ppl MODEL.gguf IDS.json SEQLEN WINDOWS   -> {"ppl", "windows", "scored", ...}
//   node tests/data/llamacpp.mjs generate MODEL.gguf N                    -> {"text", "tokens"}
// IDS.json is a JSON array of token ids (spinq tokenize --file ...), so both
// runtimes score exactly the same windows.
import { getLlama } from "node-llama-cpp";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// The llama.cpp runtime, CPU only, with the ggml CPU variant it picked
// (libggml-cpu-<variant>.so, from its load log).
export async function openLlama() {
  const logs = [];
  const llama = await getLlama({
    gpu: false, build: "never", logLevel: "debug",
    logger: (level, message) => { if (/load_backend|CPU backend/.test(message)) logs.push(message); },
  });
  // the log arrives asynchronously: wait for it (a second at most)
  for (let i = 0; i < 100 && !logs.some((l) => /libggml-cpu-/.test(l)); i++) await new Promise((r) => setTimeout(r, 10));
  const m = logs.join("\n").match(/libggml-cpu-([\w-]+)\.so/);
  return { llama, cpuVariant: m ? m[1] : "unknown", release: llama.llamaCppRelease };
}

export async function loadGguf(llama, file, { contextSize = 512, threads = 2, batchSize } = {}) {
  const model = await llama.loadModel({ modelPath: file });
  const context = await model.createContext({ contextSize, batchSize: batchSize ?? contextSize, threads });
  return { model, context };
}

// n tokens greedily from BOS: the ids and their text
export async function greedy(model, context, n) {
  const seq = context.getSequence();
  const ids = [];
  for await (const t of seq.evaluate([model.tokens.bos], { temperature: 0 })) {
    ids.push(t);
    if (ids.length >= n) break;
  }
  seq.dispose();
  return { ids, text: model.detokenize(ids) };
}

// exp(mean NLL) over the first `windows` windows of seqlen tokens of ids,
// every position but the first predicted, each window from an empty cache
// (spinq ppl's protocol), from llama.cpp's next-token probabilities
export async function perplexity(context, ids, seqlen, windows) {
  const seq = context.getSequence();
  const nw = Math.min(windows, Math.floor(ids.length / seqlen));
  let nll = 0, scored = 0;
  for (let w = 0; w < nw; w++) {
    const win = ids.slice(w * seqlen, (w + 1) * seqlen);
    await seq.clearHistory();
    const res = await seq.controlledEvaluate(
      win.map((t, i) => (i < seqlen - 1 ? [t, { generateNext: { probabilities: true } }] : t)));
    for (let i = 0; i < seqlen - 1; i++) {
      const p = res[i]?.next?.probabilities?.get(win[i + 1]);
      if (!(p > 0)) throw new Error(`window ${w} position ${i}: no probability for token ${win[i + 1]}`);
      nll -= Math.log(p);
      scored++;
    }
  }
  seq.dispose();
  return { ppl: Math.exp(nll / scored), nll: nll / scored, windows: nw, scored };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [cmd, file, ...rest] = process.argv.slice(2);
  const { llama, cpuVariant, release } = await openLlama();
  let out;
  if (cmd === "ppl") {
    const [idsFile, seqlen, windows] = rest;
    const ids = JSON.parse(readFileSync(idsFile, "utf8"));
    const { context } = await loadGguf(llama, file, { contextSize: +seqlen });
    const t0 = Date.now();
    out = { model: file, seqlen: +seqlen, ...(await perplexity(context, ids, +seqlen, +windows)),
            seconds: (Date.now() - t0) / 1000 };
  } else if (cmd === "generate") {
    const { model, context } = await loadGguf(llama, file);
    out = await greedy(model, context, +(rest[0] ?? 60));
  } else {
    console.error("usage: node llamacpp.mjs ppl MODEL IDS.json SEQLEN WINDOWS | generate MODEL N");
    process.exit(2);
  }
  console.log(JSON.stringify({ ...out, llama_cpp: { cpu_variant: cpuVariant, release } }));
  await llama.dispose();
}
