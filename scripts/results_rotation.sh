#!/usr/bin/env bash
# Regenerates the rotation results table of the README (stories260K,
# perplexity on tinystories/test.txt, 512-token windows, RTN weights):
# full precision, no rotation, random Hadamard R1-R4 (QuaRot-style) and
# learned rotations (SpinQuant, had mode) at W4A4KV4 over seeds 0 1 2, and
# W4A8KV8 in no-had mode. About 15 minutes on 2 cores.
#   scripts/results_rotation.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/results_common.sh build/results-rotation "${1:-}"
seeds="0 1 2"

ppl() {  # ppl ARGS... -> the perplexity
  "$spinq" ppl "$model" --data "$test" --seqlen 512 "$@" 2>/dev/null | grep -o '"ppl":[0-9.]*' | cut -d: -f2
}

w4a4="--w-bits 4 --w-clip --a-bits 4 --kv-bits 4"
w4a8="--w-bits 4 --w-clip --a-bits 8 --kv-bits 8"

fp=$(ppl)
none=$(ppl $w4a4)
echo "full precision: $fp; W4A4KV4 no rotation: $none" >&2
declare -A had learned
for s in $seeds; do
  had[$s]=$(ppl --rotation hadamard --seed "$s" $w4a4)
  "$spinq" rotate "$model" --calib "$calib" --out "$out/spinquant-had-s$s.safetensors" --seed "$s" \
    --steps 100 --lr 1.5 --batch 8 --seqlen 512 $w4a4 >"$out/spinquant-had-s$s.log" 2>&1
  learned[$s]=$(ppl --rotation "$out/spinquant-had-s$s.safetensors" $w4a4)
  echo "seed $s: random Hadamard ${had[$s]}, learned ${learned[$s]}" >&2
done

# W4A8KV8, no-had mode (R1 and R2 only, merged into the weights)
none8=$(ppl $w4a8)
had8=$(ppl --rotation hadamard --mode no-had --seed 0 $w4a8)
"$spinq" rotate "$model" --calib "$calib" --out "$out/spinquant-nohad-s0.safetensors" --mode no-had --seed 0 \
  --steps 100 --lr 1.5 --batch 8 --seqlen 512 $w4a8 >"$out/spinquant-nohad-s0.log" 2>&1
learned8=$(ppl --rotation "$out/spinquant-nohad-s0.safetensors" $w4a8)

{
  echo "| setting | rotation | seed 0 | seed 1 | seed 2 |"
  echo "|---|---|---|---|---|"
  echo "| full precision | — | $fp | | |"
  echo "| W4A4KV4 RTN | none | $none | | |"
  echo "| W4A4KV4 RTN | random Hadamard R1–R4 (QuaRot-style) | ${had[0]} | ${had[1]} | ${had[2]} |"
  echo "| W4A4KV4 RTN | learned R1–R4 (SpinQuant, had) | ${learned[0]} | ${learned[1]} | ${learned[2]} |"
  echo "| W4A8KV8 RTN | none | $none8 | | |"
  echo "| W4A8KV8 RTN | random Hadamard R1, R2 (no-had) | $had8 | | |"
  echo "| W4A8KV8 RTN | learned R1, R2 (SpinQuant, no-had) | $learned8 | | |"
  echo
  for s in $seeds; do
    awk -v fp="$fp" -v h="${had[$s]}" -v l="${learned[$s]}" -v s="$s" 'BEGIN {
      printf "seed %s: learned closes %.0f%% of the random-Hadamard gap to full precision (%.3f -> %.3f, fp %.3f)\n",
             s, 100 * (h - l) / (h - fp), h, l, fp }'
  done
} | tee "$out/table.md"
