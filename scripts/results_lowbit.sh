#!/usr/bin/env bash
# Regenerates the GPTQ rows of the README's stories260K perplexity table
# (tinystories/test.txt, 512-token windows) next to RTN, at W4A16KV16 and
# W4A4KV4, for seeds 0 1 2, with three kinds of rotation:
#   - QuaRot-style: random Hadamard R1-R4 (--rotation hadamard --seed S);
#   - SpinQuant for GPTQ: R1-R4 learned with 16-bit weights (spinq rotate
#     --w-bits 16 --a-bits 4 --kv-bits 4, as the paper learns rotations that
#     GPTQ will quantize), 100 steps of 8 x 512 tokens, lr 1.5. The same
#     rotation serves the W4A16KV16 rows (learning at W16A16KV16 would have
#     nothing to learn: the full-precision loss does not depend on R);
#   - SpinQuant for RTN: R1-R4 learned at W4A4KV4 with RTN weights (the
#     rotation results' recipe), for comparison.
# RTN rows evaluate the fake-quantized model (spinq ppl with the flags); GPTQ
# rows quantize with spinq quantize --method gptq (128 windows of 512 tokens
# of calib.txt, seeded by S, damp 0.01) and evaluate the packed file itself
# with the integer kernels. Weights: 4-bit symmetric per channel with the
# clip search. Also keeps the per-layer output errors GPTQ vs RTN of the
# seed-0 run. Finished numbers are kept in OUTDIR and not recomputed. About
# an hour on 2 cores.
#   scripts/results_lowbit.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/results_common.sh build/results-lowbit "${1:-}"
seeds="0 1 2"
kinds="quarot spinquant-w16 spinquant-w4"

ppl_of() {  # ppl_of MODEL ARGS... -> the perplexity
  local m=$1
  shift
  "$spinq" ppl "$m" --data "$test" --seqlen 512 "$@" 2>/dev/null | grep -o '"ppl":[0-9.]*' | cut -d: -f2
}

rotation_of() {  # rotation_of KIND SEED -> the --rotation flags (learning it if needed)
  local kind=$1 s=$2 rot
  case $kind in
  quarot) echo "--rotation hadamard --seed $s"; return ;;
  spinquant-w16) rot="$out/spinquant-w16a4kv4-s$s.safetensors"; q="--w-bits 16 --a-bits 4 --kv-bits 4" ;;
  spinquant-w4) rot="$out/spinquant-w4a4kv4-s$s.safetensors"; q="--w-bits 4 --w-clip --a-bits 4 --kv-bits 4" ;;
  esac
  if [ ! -f "$rot" ]; then
    "$spinq" rotate "$model" --calib "$calib" --out "$rot" --seed "$s" --steps 100 --lr 1.5 --batch 8 --seqlen 512 \
      $q >"$out/rotate-$kind-s$s.log" 2>&1
  fi
  echo "--rotation $rot"
}

declare -A bits=([w4a16]="--w-bits 4 --w-clip" [w4a4]="--w-bits 4 --w-clip --a-bits 4 --kv-bits 4")
declare -A R
for s in $seeds; do
  for kind in $kinds; do
    rflags=$(rotation_of $kind $s)
    for cfg in w4a16 w4a4; do
      f="$out/ppl-$cfg-$kind-rtn-s$s"
      [ -s "$f" ] || ppl_of "$model" $rflags ${bits[$cfg]} >"$f"
      f="$out/ppl-$cfg-$kind-gptq-s$s"
      if [ ! -s "$f" ]; then
        packed="$out/$cfg-$kind-gptq-s$s.spq"
        "$spinq" quantize "$model" $rflags ${bits[$cfg]} --method gptq --calib "$calib" --nsamples 128 --seqlen 512 \
          --calib-seed "$s" --out "$packed" >"$out/$cfg-$kind-gptq-s$s.json" 2>"$out/$cfg-$kind-gptq-s$s.log"
        ppl_of "$packed" >"$f"
        rm -f "$packed"
      fi
      R[$cfg,$kind,rtn,$s]=$(cat "$out/ppl-$cfg-$kind-rtn-s$s")
      R[$cfg,$kind,gptq,$s]=$(cat "$out/ppl-$cfg-$kind-gptq-s$s")
      echo "seed $s $cfg $kind: rtn ${R[$cfg,$kind,rtn,$s]} gptq ${R[$cfg,$kind,gptq,$s]}" >&2
    done
  done
done

mean() { awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.3f", s / NF }' <<<"$*"; }
{
  echo "| setting | rotation | weights | seed 0 | seed 1 | seed 2 | mean |"
  echo "|---|---|---|---|---|---|---|"
  for cfg in w4a16 w4a4; do
    name=$([ $cfg = w4a16 ] && echo W4A16KV16 || echo W4A4KV4)
    for kind in $kinds; do
      case $kind in
      quarot) rname="random Hadamard R1–R4 (QuaRot-style)" ;;
      spinquant-w16) rname="learned R1–R4 at W16A4KV4 (SpinQuant for GPTQ)" ;;
      spinquant-w4) rname="learned R1–R4 at W4A4KV4 (SpinQuant for RTN)" ;;
      esac
      for method in rtn gptq; do
        v0=${R[$cfg,$kind,$method,0]} v1=${R[$cfg,$kind,$method,1]} v2=${R[$cfg,$kind,$method,2]}
        echo "| $name | $rname | ${method^^} | $v0 | $v1 | $v2 | $(mean "$v0 $v1 $v2") |"
      done
    done
  done
  echo
  echo "Relative layer-output error ||X(W - Wq)^T||^2 / ||X W^T||^2 on the calibration inputs, GPTQ / RTN"
  echo "(W4A16KV16, random Hadamard, seed 0):"
  echo
  echo "| layer | q_proj | k_proj | v_proj | o_proj | gate_proj | up_proj | down_proj |"
  echo "|---|---|---|---|---|---|---|---|"
  grep "gptq layer" "$out/w4a16-quarot-gptq-s0.log" | sed -E 's/.*gptq layer ([0-9]+)\/[0-9]+ .*gptq\/rtn: //; s/^/X /' |
    awk 'BEGIN { l = 0 } { l++; printf "| %d |", l; for (i = 2; i <= NF; i += 2) printf " %s |", $(i + 1); printf "\n" }'
  grep "lower on" "$out/w4a16-quarot-gptq-s0.log" | sed 's/^spinq quantize: //'
} | tee "$out/table.md"
