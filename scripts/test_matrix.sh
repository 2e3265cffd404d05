#!/usr/bin/env bash
# `make test-matrix`: the unit suite once per OpenBLAS core type this CPU can
# execute, plus once with OPENBLAS_CORETYPE unset (scripts/test.sh then picks
# one from cpuid, as on a machine where nothing is preset), and a table of the
# results at the end. The tests must hold on every kernel: their tolerances
# come from error bounds or from spreads measured across these kernels.
#
# This is the one place that sets OPENBLAS_CORETYPE on purpose: each row runs
# in its own environment, and the caller's value is restored afterwards (it is
# only ever changed inside the subshell of one row).
set -uo pipefail
cd "$(dirname "$0")/.."

. scripts/blas_env.sh
mapfile -t types < <(spq_blas_coretypes)
types+=(unset)

cpu=$(build/rel/spinq cpu | sed -n 's/.*"cpu_model": "\([^"]*\)".*/\1/p')
echo "test-matrix: CPU $cpu; core types ${types[*]}" >&2
[ -n "${OPENBLAS_CORETYPE:-}" ] && echo "test-matrix: the environment presets OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE (the rows below each set their own; make test keeps the preset)" >&2

mkdir -p build/matrix
rows=()
fail=0
for ct in "${types[@]}"; do
  log=build/matrix/unit-$ct.log
  s=$(date +%s)
  (
    if [ "$ct" = unset ]; then unset OPENBLAS_CORETYPE; else export OPENBLAS_CORETYPE=$ct; fi
    scripts/test.sh unit
  ) >"$log" 2>&1
  rc=$?
  kernel=$(sed -n 's/^test: OpenBLAS kernel \([^ ]*\).*/\1/p' "$log" | head -1)
  npass=$(grep -c '^PASS ' "$log")
  nfail=$(grep -c '^FAIL ' "$log")
  failed=$(sed -n 's/^FAIL //p' "$log" | tr '\n' ' ')
  rows+=("$(printf '| %-11s | %-11s | %3d | %3d | %4ds | %s |' "$ct" "${kernel:-?}" "$npass" "$nfail" $(( $(date +%s) - s )) "${failed:-}")")
  echo "test-matrix: $ct: $npass passed, $nfail failed${failed:+ ($failed)}" >&2
  [ $rc -ne 0 ] && fail=1
done

echo
echo "unit suite by OpenBLAS core type ($cpu)"
echo
echo "| OPENBLAS_CORETYPE | kernel in use | pass | fail | time | failed |"
echo "|---|---|---|---|---|---|"
for r in "${rows[@]}"; do echo "$r"; done
echo
echo "logs: build/matrix/unit-*.log"
exit $fail
