#!/usr/bin/env bash
# Regenerates the evaluation table of the README for stories260K: on
# tinystories/test.txt with 512-token windows, perplexity, KL divergence from
# the full-precision model, top-1 agreement, RMS Δp, and the TinyStories
# cloze accuracy, for full precision and W4A4KV4 (RTN weights with clip
# search) without rotation, with random Hadamard R1-R4 and with learned
# rotations (SpinQuant, had mode, seed 0; taken from
# build/results-rotation/ when scripts/results_rotation.sh made them, else
# learned here, a few minutes). Needs node for reading the JSON.
#   scripts/results_eval.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/results_common.sh build/results-eval "${1:-}"
w4a4="--w-bits 4 --w-clip --a-bits 4 --kv-bits 4"

learned=build/results-rotation/spinquant-had-s0.safetensors
if [ ! -f "$learned" ]; then
  learned=$out/spinquant-had-s0.safetensors
  [ -f "$learned" ] || "$spinq" rotate "$model" --calib "$calib" --out "$learned" --seed 0 \
    --steps 100 --lr 1.5 --batch 8 --seqlen 512 $w4a4 >"$out/spinquant-had-s0.log" 2>&1
fi

ev() {  # ev NAME ARGS...
  local name=$1
  shift
  "$spinq" eval "$model" --ppl "$test" --seqlen 512 --task "tinystories_cloze=$test" --json "$out/$name.json" "$@" \
    >"$out/$name.txt" 2>/dev/null
  echo "$name done" >&2
}

ev fp
ev none --kld-fp --no-rolling $w4a4
ev hadamard --kld-fp --no-rolling $w4a4 --rotation hadamard --seed 0
ev learned --kld-fp --no-rolling $w4a4 --rotation "$learned"

node - "$out" <<'EOF' | tee "$out/table.md"
const fs = require("fs");
const dir = process.argv[2];
const rows = [
  ["full precision", "—", "fp"],
  ["W4A4KV4 RTN", "none", "none"],
  ["W4A4KV4 RTN", "random Hadamard R1–R4 (seed 0)", "hadamard"],
  ["W4A4KV4 RTN", "learned R1–R4 (SpinQuant, had, seed 0)", "learned"],
];
const f = (x, d) => (x === undefined ? "—" : x.toFixed(d));
console.log("| setting | rotation | ppl | KLD | KLD p99 | top-1 agreement | RMS Δp | cloze acc |");
console.log("|---|---|---|---|---|---|---|---|");
for (const [setting, rot, name] of rows) {
  const r = JSON.parse(fs.readFileSync(`${dir}/${name}.json`, "utf8"));
  const p = r.ppl[0], k = p.kld, c = r.tasks[0];
  const pm = (x, u, s, d) => (x === undefined ? "—" : `${(x * s).toFixed(d)} ± ${(u * s).toFixed(d)}`);
  console.log(`| ${setting} | ${rot} | ${f(p.ppl, 3)} | ${k ? pm(k.kld, k.kld_unc, 1, 4) : "0"} | ` +
    `${k ? f(k.kld_pct.p99, 3) : "0"} | ${k ? pm(k.same_top, k.same_top_unc, 100, 2) + " %" : "100 %"} | ` +
    `${k ? f(100 * k.dp_rms, 2) + " %" : "0"} | ${pm(c.acc, c.acc_stderr, 100, 1)} % |`);
}
const fp = JSON.parse(fs.readFileSync(`${dir}/fp.json`, "utf8")).ppl[0].rolling;
console.log(`\nfull precision, lm-eval rolling windows (512): word perplexity ${fp.word_perplexity.toFixed(3)}, ` +
  `byte perplexity ${fp.byte_perplexity.toFixed(4)}, bits per byte ${fp.bits_per_byte.toFixed(4)}`);
EOF
