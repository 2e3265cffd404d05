// memcheck.test.js - the check before a run's first heavy stage that this
// machine can hold what the job will need (worker/pipeline_memcheck.c,
// common/job/memest.h), through the spinq tool on stories260K:
//  - GPTQ with absurdly many calibration windows fails at load with a message
//    naming the stage, the estimate, what is available and the flag to
//    change, and writes nothing;
//  - the same with the machine's memory or disk made small through the
//    test-only overrides SPINQ_MEM_AVAILABLE_KIB / SPINQ_DISK_AVAILABLE_KIB;
//  - SPINQ_NO_MEMCHECK=1 runs it anyway; a normal run passes and logs its
//    estimate in one line.
// Runs the sanitizer build (SPINQ_BIN overrides it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const shared = path.resolve(process.env.SPINQ_SHARED ?? path.join(root, "../shared"));
const spinq = process.env.SPINQ_BIN ?? path.join(root, "build/asan/spinq");
const HF = path.join(shared, "models/stories260K-hf");

const work = mkdtempSync(path.join(tmpdir(), "spinq-memcheck-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const calib = path.join(work, "calib.txt");
writeFileSync(calib, readFileSync(path.join(shared, "data/tinystories/test.txt"), "utf8").slice(0, 20000));

// a clean environment: no override or escape hatch from the caller's shell
function run(args, env = {}) {
  const base = { ...process.env };
  for (const k of ["SPINQ_MEM_AVAILABLE_KIB", "SPINQ_DISK_AVAILABLE_KIB", "SPINQ_NO_MEMCHECK"]) delete base[k];
  const r = spawnSync(spinq, args, { encoding: "utf8", maxBuffer: 1 << 26, env: { ...base, ...env } });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

function gptq(out, nsamples, seqlen) {
  return ["quantize", HF, "--out", out, "--method", "gptq", "--calib", calib, "--nsamples", String(nsamples),
          "--seqlen", String(seqlen)];
}

function assertRefused(r, out, mention) {
  assert.equal(r.signal, null, r.err);
  assert.equal(r.code, 1, r.err);
  assert.doesNotMatch(r.err, /AddressSanitizer|runtime error|LeakSanitizer/);
  for (const m of mention) assert.match(r.err, m);
  assert.doesNotMatch(r.err, /stage quantize|stage write/, "refused before any heavy stage");
  assert.ok(!existsSync(out), `${out} was written`);
}

test("GPTQ needing more memory than the machine has is refused before it starts, naming the stage", () => {
  const out = path.join(work, "absurd.spq");
  // 1M windows of 512 tokens of dim 64: 122 GiB of calibration inputs
  const r = run(gptq(out, 1 << 20, 512));
  assertRefused(r, out, [/load: memory: the quantize stage needs an estimated \d+\.\d+ GiB but \d+\.\d+ GiB is available/,
                         /--nsamples/, /SPINQ_NO_MEMCHECK=1/]);
});

test("the available memory and disk come from the test overrides; SPINQ_NO_MEMCHECK=1 runs anyway", () => {
  const out = path.join(work, "small.spq");
  const m = run(gptq(out, 4, 64), { SPINQ_MEM_AVAILABLE_KIB: "1024" });
  assertRefused(m, out, [/the quantize stage needs an estimated [\d.]+ MiB but 1\.0 MiB is available/]);
  const d = run(gptq(out, 4, 64), { SPINQ_DISK_AVAILABLE_KIB: "1" });
  assertRefused(d, out, [/disk: the write stage needs an estimated [\d.]+ MiB in .* but 0\.0 MiB is free/]);
  const f = run(gptq(out, 4, 64), { SPINQ_MEM_AVAILABLE_KIB: "1024", SPINQ_NO_MEMCHECK: "1" });
  assert.equal(f.code, 0, f.err);
  assert.match(f.err, /memory: estimated peak .* \(SPINQ_NO_MEMCHECK=1: not enforced\)/);
  assert.ok(existsSync(out));
});

test("a run that fits passes and logs its estimate once", () => {
  const out = path.join(work, "fits.spq");
  const r = run(gptq(out, 4, 64));
  assert.equal(r.code, 0, r.err);
  const lines = r.err.split("\n").filter((l) => /memory: estimated peak/.test(l));
  assert.equal(lines.length, 1, r.err);
  assert.match(lines[0], /memory: estimated peak [\d.]+ MiB \(quantize\) of [\d.]+ GiB available; disk: [\d.]+ MiB of .* free/);
  assert.ok(existsSync(out));
  const p = run(["ppl", HF, "--data", calib, "--seqlen", "256"]);
  assert.equal(p.code, 0, p.err);
  assert.match(p.err, /memory: estimated peak [\d.]+ MiB \(evaluate\)/);
});
