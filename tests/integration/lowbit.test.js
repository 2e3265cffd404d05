// lowbit.test.js - the low-bit commands end to end on stories260K, through
// the sanitizer build (build/asan/spinq; SPINQ_BIN overrides it): spinq
// quantize (RTN and GPTQ) writes a packed file that spinq generate and
// spinq ppl run on its own; bad input (a short calibration text, a corrupt
// packed file, quantization flags on a packed model, a "had" rotation for
// export-hf) ends with a clear message and exit status, never a crash;
// export-hf in no-had mode writes a directory spinq can run.
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
const spinq = process.env.SPINQ_BIN ?? path.join(root, "build/asan/spinq");
const model = path.join(shared, "models/stories260K/stories260K.bin");
const calib = path.join(shared, "data/tinystories/calib.txt");

const work = mkdtempSync(path.join(tmpdir(), "spinq-lowbit-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
// a small evaluation text: a few windows of 512 tokens
const data = path.join(work, "eval.txt");
writeFileSync(data, readFileSync(path.join(shared, "data/tinystories/test.txt"), "utf8").slice(0, 12000));

function run(args) {
  const r = spawnSync(spinq, args, { encoding: "utf8", maxBuffer: 1 << 26 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function noCrash(r) {
  assert.doesNotMatch(r.err, /AddressSanitizer|runtime error|Segmentation/, r.err);
}

const rtn = path.join(work, "rtn.spq");

test("quantize (RTN, W4A8KV8) writes a packed model that generate and ppl run alone", () => {
  let r = run(["quantize", model, "--rotation", "hadamard", "--a-bits", "8", "--kv-bits", "8", "--out", rtn]);
  assert.equal(r.code, 0, r.err);
  const info = JSON.parse(r.out);
  assert.equal(info.method, "rtn");
  assert.equal(info.quant.a_bits, 8);
  assert.ok(info.bytes > 100000);
  assert.match(r.err, /quantize 5\/5 \(100%\)/, "a progress line per layer rounded, up to the last");
  r = run(["generate", rtn, "-p", "Once upon a time", "-n", "30"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^Once upon a time/);
  assert.ok(r.out.length > 40, r.out);
  r = run(["ppl", rtn, "--data", data]);
  assert.equal(r.code, 0, r.err);
  const p = JSON.parse(r.out);
  assert.equal(p.rotation, "packed");
  assert.match(p.quant, /^W4A8KV8/);
  assert.ok(p.ppl > 1 && p.ppl < 50, r.out);
});

test("quantize with GPTQ reports every layer and beats RTN on the layer outputs", () => {
  const out = path.join(work, "gptq.spq");
  const r = run(["quantize", model, "--rotation", "hadamard", "--method", "gptq", "--calib", calib,
    "--nsamples", "8", "--seqlen", "128", "--out", out]);
  assert.equal(r.code, 0, r.err);
  for (let l = 1; l <= 5; l++) assert.match(r.err, new RegExp(`gptq layer ${l}/5`));
  assert.match(r.err, /lower on 35 of 35 linears/);
  const g = run(["generate", out, "-n", "10"]);
  assert.equal(g.code, 0, g.err);
});

test("GPTQ streams a Hugging Face model a layer at a time: the same packed file as the fp32 load and the .bin", () => {
  // stories260K-hf holds the weights of stories260K.bin: quantized a layer at
  // a time from the mapped file (quant/qpack.h), with Hadamard R1/R2 and
  // W4A8KV8, it must give the bytes of the model quantized in fp32; with a
  // BF16 embedding in the file, both round the rotated tables before GPTQ
  // (the streamed one keeps them in BF16), and still agree
  const hf = path.join(shared, "models/stories260K-hf");
  for (const edt of ["f32", "bf16"]) {
    const flags = ["--method", "gptq", "--rotation", "hadamard", "--a-bits", "8", "--kv-bits", "8", "--calib", calib,
                   "--nsamples", "8", "--seqlen", "128", "--embedding-dtype", edt];
    const outs = [];
    for (const [name, src, extra] of [["stream", hf, []], ["f32", hf, ["--load-f32"]], ["bin", model, []]]) {
      const out = path.join(work, `gptq-${name}-${edt}.spq`);
      const r = run(["quantize", src, "--out", out, ...flags, ...extra]);
      noCrash(r);
      assert.equal(r.code, 0, r.err);
      if (name === "stream") assert.match(r.err, /quantizing a layer at a time/);
      else assert.doesNotMatch(r.err, /quantizing a layer at a time/);
      outs.push({ bytes: readFileSync(out) });
    }
    assert.ok(outs[0].bytes.equals(outs[1].bytes), `streamed vs fp32 load (${edt})`);
    // the .bin's packed file differs only where it names its source (info)
    const a = run(["ppl", path.join(work, `gptq-stream-${edt}.spq`), "--data", data]);
    const b = run(["ppl", path.join(work, `gptq-bin-${edt}.spq`), "--data", data]);
    assert.equal(a.code, 0, a.err);
    assert.equal(JSON.parse(a.out).ppl, JSON.parse(b.out).ppl);
  }
});

test("bad input: short calibration, wrong flags, corrupt packed file", () => {
  const short = path.join(work, "short.txt");
  writeFileSync(short, "Once upon a time there was a cat.");
  let r = run(["quantize", model, "--method", "gptq", "--calib", short, "--seqlen", "256", "--out",
    path.join(work, "x.spq")]);
  assert.equal(r.code, 1);
  assert.match(r.err, /short\.txt: the calibration text has \d+ tokens, fewer than one window of seqlen 256/);
  noCrash(r);

  r = run(["quantize", model, "--calib", calib, "--out", path.join(work, "x.spq")]);
  assert.equal(r.code, 2);
  assert.match(r.err, /GPTQ settings/);

  r = run(["quantize", model, "--w-bits", "8", "--out", path.join(work, "x.spq")]);
  assert.equal(r.code, 2);
  assert.match(r.err, /2\.\.4 bits/);

  r = run(["ppl", rtn, "--data", data, "--w-bits", "4"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /is a packed model/);

  const bytes = readFileSync(rtn);
  const cut = path.join(work, "cut.spq");
  writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  r = run(["generate", cut, "-n", "5"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /cut\.spq/);
  noCrash(r);

  // a header that promises more data than the file holds
  const lied = Buffer.from(bytes);
  const hlen = Number(lied.readBigUInt64LE(0));
  const header = lied.subarray(8, 8 + hlen).toString("utf8").replace(/"layers\.0\.q_proj\.codes":\{"dtype":"U8","shape":\[(\d+),/,
    (m, rows) => m.replace(`[${rows},`, `[${rows.replace(/./g, "9")},`));  // same length, more rows than stored
  assert.equal(Buffer.byteLength(header), hlen);
  lied.write(header, 8, "utf8");
  const liar = path.join(work, "liar.spq");
  writeFileSync(liar, lied);
  r = run(["generate", liar, "-n", "5"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /liar\.spq/);
  noCrash(r);
});

test("export-hf: no-had writes a runnable HF directory; had mode is refused", () => {
  let r = run(["export-hf", model, "--rotation", "hadamard", "--mode", "had", "--out", path.join(work, "had")]);
  assert.equal(r.code, 1);
  assert.match(r.err, /cannot be expressed in a plain LLaMA/);
  const dir = path.join(work, "nohad");
  r = run(["export-hf", path.join(shared, "models/stories260K-hf"), "--rotation", "random", "--seed", "3",
    "--mode", "no-had", "--dtype", "f32", "--out", dir]);
  assert.equal(r.code, 0, r.err);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
    assert.ok(existsSync(path.join(dir, f)), f);
  const a = run(["generate", dir, "-p", "Once upon a time", "-n", "20"]);
  const b = run(["generate", path.join(shared, "models/stories260K-hf"), "-p", "Once upon a time", "-n", "20"]);
  assert.equal(a.code, 0, a.err);
  assert.equal(a.out, b.out);  // greedy: the rotation leaves the model's predictions unchanged
});
