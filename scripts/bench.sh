#!/usr/bin/env bash
# `make bench`: runs every benchmark binary (build/rel/bench/*) and bench
# script (bench/*.sh); each prints one JSON object. Figures, never pass/fail.
set -uo pipefail
cd "$(dirname "$0")/.."
export SPINQ_SHARED=${SPINQ_SHARED:-$(cd .. && pwd)/shared}
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -x build/rel/spinq ]; then
  ct=$(build/rel/spinq cpu --coretype 2>/dev/null || true)
  [ -n "$ct" ] && export OPENBLAS_CORETYPE=$ct
fi
mkdir -p build/bench-results
for b in build/rel/bench/*; do
  [ -x "$b" ] || continue
  name=$(basename "$b")
  echo "bench: $name" >&2
  "$b" | tee "build/bench-results/$name.json"
done
for s in bench/*.sh; do
  [ -x "$s" ] || continue
  name=$(basename "$s" .sh)
  echo "bench: $name" >&2
  "$s" | tee "build/bench-results/$name.json"
done
