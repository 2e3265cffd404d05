#!/usr/bin/env bash
# Runs the tests: `scripts/test.sh [unit|integration]` (both by default).
# Unit tests are the Criterion binaries of the sanitizer build; integration
# tests are black-box tests (node:test) against real spinq/spinqd processes.
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}

export SPINQ_SHARED=${SPINQ_SHARED:-$(cd .. && pwd)/shared}
# choose OpenBLAS kernels once, before any test process loads the library
. scripts/blas_env.sh
spq_blas_env test
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# the unit tests are small: one BLAS thread keeps them from fighting Criterion's workers
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

fail=0
t0=$(date +%s)
if [ "$what" = all ] || [ "$what" = unit ]; then
  for t in build/asan/tests/test_*; do
    [ -x "$t" ] || continue
    s=$(date +%s)
    # Criterion exits 0 even when LeakSanitizer reports: look for the report too
    if "$t" --jobs 2 >"$t.log" 2>&1 && ! grep -q "ERROR: LeakSanitizer\|runtime error:" "$t.log"; then
      echo "PASS $(basename "$t") ($(( $(date +%s) - s ))s)"
    else
      echo "FAIL $(basename "$t")"; cat "$t.log"; fail=1
    fi
  done
fi
if [ "$what" = all ] || [ "$what" = integration ]; then
  unset OPENBLAS_NUM_THREADS
  files=$(ls tests/integration/*.test.js 2>/dev/null || true)
  if [ -n "$files" ]; then
    if ! node --test --test-concurrency=1 $files; then fail=1; fi
  fi
fi
echo "tests: $([ $fail = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - t0 ))s"
exit $fail
