// eval.test.js - `spinq eval` end to end on stories260K: its perplexity is
// `spinq ppl`'s figure, the model against itself (llama2.c vs Hugging Face
// files) has KLD 0 and 100 % top-1 agreement, saved logits give the same
// comparison as the base run in process, tasks report accuracies, and bad
// task files are rejected or skipped with file:line messages.
//
// The sanitizer build (build/asan/spinq) runs it so memory errors fail the
// test; SPINQ_BIN overrides. A 60 KB slice of the TinyStories test text
// keeps it short.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const shared = path.resolve(process.env.SPINQ_SHARED ?? path.join(root, "../shared"));
const spinq = process.env.SPINQ_BIN ?? path.join(root, "build/asan/spinq");
const MODEL = path.join(shared, "models/stories260K/stories260K.bin");
const MODEL_HF = path.join(shared, "models/stories260K-hf");

const work = mkdtempSync(path.join(tmpdir(), "spinq-eval-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

const text = path.join(work, "slice.txt");
writeFileSync(text, readFileSync(path.join(shared, "data/tinystories/test.txt")).subarray(0, 60000));

function run(args) {
  const r = spawnSync(spinq, args, { encoding: "utf8", maxBuffer: 1 << 28 });
  assert.doesNotMatch(r.stderr, /ERROR: (Address|Leak)Sanitizer|runtime error/, r.stderr);
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function evalJson(args) {
  const r = run(["eval", ...args, "--json", "-"]);
  assert.equal(r.code, 0, `spinq eval ${args.join(" ")}:\n${r.err}`);
  return JSON.parse(r.out);
}

test("perplexity equals spinq ppl's", () => {
  const p = run(["ppl", MODEL, "--data", text, "--seqlen", "256"]);
  assert.equal(p.code, 0, p.err);
  const ref = JSON.parse(p.out);
  const e = evalJson([MODEL, "--ppl", text, "--seqlen", "256"]);
  const got = e.ppl[0];
  assert.equal(got.tokens, ref.tokens);
  assert.equal(got.windows, ref.windows);
  assert.equal(got.scored, ref.scored);
  assert.equal(got.ppl.toFixed(4), ref.ppl.toFixed(4));
  assert.ok(Math.abs(got.nll - ref.nll) < 1e-6, `${got.nll} vs ${ref.nll}`);
  // rolling: every token but none of BOS scored once; word/byte measures consistent
  const r = got.rolling;
  assert.equal(r.tokens, ref.tokens - 1);
  assert.equal(r.bytes, 60000);
  assert.ok(Math.abs(r.byte_perplexity - Math.exp(-r.ll / r.bytes)) < 1e-9 * r.byte_perplexity);
  assert.ok(Math.abs(r.bits_per_byte - -r.ll / r.bytes / Math.LN2) < 1e-9);
  assert.ok(r.word_perplexity > r.token_perplexity);
});

test("the model against itself: KLD 0, top-1 100 %, in process and through a logits file", () => {
  const e = evalJson([MODEL, "--ppl", text, "--seqlen", "256", "--kld-base", MODEL_HF, "--no-rolling"]);
  const k = e.ppl[0].kld;
  assert.equal(k.kld, 0);
  assert.equal(k.kld_pct.max, 0);
  assert.equal(k.same_top, 1);
  assert.equal(k.dp, 0);
  assert.equal(k.ppl_ratio, 1);
  assert.equal(k.positions, e.ppl[0].scored);
  const logits = path.join(work, "base.logits");
  const s = evalJson([MODEL_HF, "--ppl", text, "--seqlen", "256", "--save-logits", logits, "--save-topk", "512",
    "--no-rolling"]);
  assert.equal(s.ppl[0].saved_logits.positions, e.ppl[0].scored);
  const f = evalJson([MODEL, "--ppl", text, "--seqlen", "256", "--kld-logits", logits, "--no-rolling"]);
  const kf = f.ppl[0].kld;
  assert.ok(Math.abs(kf.kld) < 1e-6, `${kf.kld}`); // float32 log-probs in the file
  assert.equal(kf.same_top, 1);
  assert.ok(Math.abs(kf.ppl_base - k.ppl_base) < 1e-5 * k.ppl_base);
  // a logits file from another window length is refused with its name
  const bad = run(["eval", MODEL, "--ppl", text, "--seqlen", "128", "--kld-logits", logits, "--no-rolling"]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /base\.logits: saved with seqlen 256, this run uses 128/);
});

test("tasks: TinyStories cloze and a known-answer task", () => {
  const known = path.join(work, "known.jsonl");
  // the model's own greedy story opening versus nonsense
  writeFileSync(known,
    JSON.stringify({ context: "Once upon a time, there was a little girl named", choices: ["Lily", "xqzv"], gold: 0 }) + "\n" +
    JSON.stringify({ context: "She loved to play outside in the", choices: ["qwrtp", "park"], gold: 1 }) + "\n");
  const e = evalJson([MODEL, "--task", `tinystories_cloze=${text}`, "--task", `known:jsonl=${known}`]);
  const [cloze, k] = e.tasks;
  assert.equal(cloze.name, "tinystories_cloze");
  assert.ok(cloze.items > 200, `${cloze.items}`);
  assert.ok(cloze.acc > 0.05 && cloze.acc < 0.9, `${cloze.acc}`);
  assert.ok(cloze.perplexity > 1);
  assert.equal(k.name, "known");
  assert.equal(k.items, 2);
  assert.equal(k.acc, 1);
  assert.equal(k.acc_norm, 1);
  assert.ok(k.rows_run < k.rows_naive);
});

test("bad task files: rejected with file:line, or skipped and reported", () => {
  const bad = path.join(work, "bad.jsonl");
  writeFileSync(bad,
    JSON.stringify({ context: "a", choices: ["b", "c"], gold: 0 }) + "\n" +
    JSON.stringify({ context: "a", choices: ["b", "c"], gold: 5 }) + "\n" +
    "{\"context\": \"a\", \"choices\": [\"b\"\n" +
    JSON.stringify({ context: "a", choices: [], gold: 0 }) + "\n");
  const r = run(["eval", MODEL, "--task", `jsonl=${bad}`]);
  assert.equal(r.code, 1);
  assert.match(r.err, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:2: gold 5 is out of range`));
  assert.match(r.out, /jsonl\s+failed: .*bad\.jsonl:2: gold 5 is out of range/, "the table says the task failed");
  const s = run(["eval", MODEL, "--task", `jsonl=${bad}`, "--skip-bad", "--json", "-"]);
  assert.equal(s.code, 0, s.err);
  const t = JSON.parse(s.out).tasks[0];
  assert.equal(t.items, 1);
  assert.equal(t.skipped, 3);
  assert.match(s.err, /bad\.jsonl:3: malformed JSON/);
  assert.match(s.err, /bad\.jsonl:4: no choices/);
  const u = run(["eval", MODEL, "--task", "nope=x.jsonl"]);
  assert.equal(u.code, 2);
  assert.match(u.err, /unknown format 'nope'/);
});
