#!/usr/bin/env bash
# `make bench`: runs every benchmark binary (build/rel/bench/*) and bench
# script (bench/*.sh); each prints one JSON object. Figures, never pass/fail.
set -uo pipefail
cd "$(dirname "$0")/.."
export SPINQ_SHARED=${SPINQ_SHARED:-$(cd .. && pwd)/shared}
. scripts/blas_env.sh
spq_blas_env bench
mkdir -p build/bench-results
echo "$SPQ_CPU_JSON" | tee build/bench-results/platform.json
for b in build/rel/bench/*; do
  [ -x "$b" ] || continue
  name=$(basename "$b")
  echo "bench: $name" >&2
  "$b" | tee "build/bench-results/$name.json"
done
for s in bench/*.sh; do
  [ -x "$s" ] || continue
  name=$(basename "$s" .sh)
  [ "$name" = big ] && continue  # make bench-big: real sizes, hours on two cores
  echo "bench: $name" >&2
  "$s" | tee "build/bench-results/$name.json"
done
