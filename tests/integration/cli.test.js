// cli.test.js - the spinq tool as a user meets it: the known story and
// perplexity from both model formats, and bad input of every kind getting a
// clear message that names the file or flag, a non-zero exit and no crash.
// Runs the sanitizer build, so a memory error on any of these paths fails.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const shared = path.resolve(process.env.SPINQ_SHARED ?? path.join(root, "../shared"));
const spinq = process.env.SPINQ_BIN ?? path.join(root, "build/asan/spinq");
const BIN = path.join(shared, "models/stories260K/stories260K.bin");
const HF = path.join(shared, "models/stories260K-hf");

function run(...args) {
  const r = spawnSync(spinq, args, { encoding: "utf8", maxBuffer: 1 << 26 });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

// a failure that is reported, not a crash: exit code 1 or 2, no sanitizer report
function assertCleanFailure(r, mustMention) {
  assert.equal(r.signal, null, `killed by ${r.signal}: ${r.err}`);
  assert.ok(r.code === 1 || r.code === 2, `exit ${r.code}: ${r.err}`);
  assert.doesNotMatch(r.err, /AddressSanitizer|runtime error|LeakSanitizer/);
  for (const m of mustMention) assert.ok(r.err.includes(m), `stderr should mention ${JSON.stringify(m)}:\n${r.err}`);
}

const STORY =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a " +
  "big, red ball. She wanted to play with it, but it was too high.";

test("greedy generation from BOS prints the known story, for 200 tokens, from both formats", () => {
  const a = run("generate", BIN, "-n", "200");
  const b = run("generate", HF, "-n", "200");
  assert.equal(a.code, 0, a.err);
  assert.ok(a.out.startsWith(STORY), a.out);
  assert.equal(a.out, b.out);
});

test("a prompt is echoed and continued", () => {
  const r = run("generate", BIN, "-p", "Once upon a time", "-n", "20");
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.startsWith("Once upon a time"), r.out);
});

test("perplexity of stories260K on the TinyStories test text, both formats agree", () => {
  // 20k characters keep the sanitizer build quick; the full figure is in the README
  const dir = mkdtempSync(path.join(tmpdir(), "spinq-cli-"));
  const text = readFileSync(path.join(shared, "data/tinystories/test.txt"), "utf8").slice(0, 20000);
  writeFileSync(path.join(dir, "t.txt"), text);
  const a = JSON.parse(run("ppl", BIN, "--data", path.join(dir, "t.txt"), "--seqlen", "512").out);
  const b = JSON.parse(run("ppl", HF, "--data", path.join(dir, "t.txt"), "--seqlen", "512").out);
  assert.ok(a.ppl > 3 && a.ppl < 10, `ppl ${a.ppl}`);
  assert.equal(a.ppl, b.ppl);
  rmSync(dir, { recursive: true });
});

test("bad prompts: empty and not UTF-8", () => {
  assertCleanFailure(run("generate", BIN, "-p", ""), ["-p", "empty"]);
  // node's argv strings are always UTF-8: let the shell pass the raw bytes
  const r = spawnSync("/bin/sh", ["-c", `"$0" generate "$1" -p "$(printf 'O\\377\\376k')"`, spinq, BIN],
    { encoding: "utf8" });
  assertCleanFailure({ code: r.status, signal: r.signal, err: r.stderr }, ["-p", "UTF-8"]);
});

test("bad flags name the flag", () => {
  assertCleanFailure(run("generate", BIN, "-n", "many"), ["-n"]);
  assertCleanFailure(run("generate", BIN, "--top-p", "2"), ["--top-p"]);
  assertCleanFailure(run("ppl", BIN, "--data"), ["--data"]);
  assertCleanFailure(run("ppl", BIN, "--data", "/nonexistent/file.txt"), ["/nonexistent/file.txt"]);
  assertCleanFailure(run("ppl", BIN, "--data", path.join(shared, "data/tinystories/test.txt"), "--seqlen", "100000"),
    ["--seqlen"]);
  assertCleanFailure(run("ppl", BIN, "--data", path.join(shared, "data/tinystories/test.txt"), "--w-bits", "5", "--a-bits", "17"),
    ["--a-bits"]);
  assertCleanFailure(run("frobnicate"), ["frobnicate"]);
});

test("bad model files: missing, truncated llama2.c, tokenizer missing, unsupported architecture", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "spinq-cli-"));
  assertCleanFailure(run("info", path.join(dir, "nope.bin")), ["nope.bin"]);
  const bin = readFileSync(BIN);
  for (const cut of [10, 28, 1000, bin.length - 4]) {
    writeFileSync(path.join(dir, "t.bin"), bin.subarray(0, cut));
    copyFileSync(path.join(shared, "models/stories260K/tok512.bin"), path.join(dir, "tok512.bin"));
    assertCleanFailure(run("generate", path.join(dir, "t.bin"), "-n", "3"), ["t.bin", "truncated"]);
  }
  // a complete checkpoint whose tokenizer is missing
  const d2 = path.join(dir, "notok");
  mkdirSync(d2);
  writeFileSync(path.join(d2, "m.bin"), bin);
  assertCleanFailure(run("generate", path.join(d2, "m.bin"), "-n", "3"), ["tokenizer"]);
  // an HF directory of another architecture
  const d3 = path.join(dir, "gpt2");
  mkdirSync(d3);
  for (const f of ["model.safetensors", "tokenizer.json", "tokenizer_config.json"]) copyFileSync(path.join(HF, f), path.join(d3, f));
  const cfg = JSON.parse(readFileSync(path.join(HF, "config.json"), "utf8"));
  cfg.architectures = ["GPT2LMHeadModel"];
  cfg.model_type = "gpt2";
  writeFileSync(path.join(d3, "config.json"), JSON.stringify(cfg));
  assertCleanFailure(run("info", d3), ["config.json", "architectures"]);
  rmSync(dir, { recursive: true });
});

test("rotation files: garbage and a rotation for another shape are refused by name", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "spinq-cli-"));
  writeFileSync(path.join(dir, "r.safetensors"), "not a safetensors file at all");
  const data = path.join(shared, "data/tinystories/test.txt");
  assertCleanFailure(run("ppl", BIN, "--data", data, "--rotation", path.join(dir, "r.safetensors")), ["r.safetensors"]);
  rmSync(dir, { recursive: true });
});
