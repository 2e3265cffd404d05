#!/usr/bin/env bash
# bench/serve.sh - the completion server (bench/serve.mjs) on stories260K in
# full precision and packed W4A8KV8 (RTN, made here): TTFT and decode
# tokens/s for 1, 4 and 16 concurrent streams. Figures only.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SPINQ_SHARED:-$(cd .. && pwd)/shared}
bin=$shared/models/stories260K/stories260K.bin
dir=$(mktemp -d /tmp/spinq-serve-bench-XXXXXX)
trap 'rm -rf "$dir"' EXIT
build/rel/spinq quantize "$bin" --method rtn --w-bits 4 --a-bits 8 --kv-bits 8 --out "$dir/w4a8kv8.spq" >/dev/null 2>&1
echo '{"bench": "serve", "runs": ['
node bench/serve.mjs "$bin" stories260K-fp32 2>/dev/null
echo ','
node bench/serve.mjs "$dir/w4a8kv8.spq" stories260K-W4A8KV8 2>/dev/null
echo ']}'
