#!/usr/bin/env bash
# The sgemm peak (2048^3, all cores) under each OpenBLAS core type this CPU
# can execute: which kernel set to prefer on this processor, as a JSON
# object. Sets OPENBLAS_CORETYPE for each row on purpose, in that row's
# process only (a preset value stays for everything else).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/blas_env.sh
rows=()
for ct in $(spq_blas_coretypes); do
  r=$(OPENBLAS_CORETYPE=$ct build/rel/bench/sgemm) && rows+=("\"$ct\": $r")
done
printf '{"bench": "sgemm_kernels", "preset": "%s", "by_coretype": {%s}}\n' "${OPENBLAS_CORETYPE:-}" \
  "$(IFS=,; echo "${rows[*]}")"
