# Sourced by scripts/test.sh and scripts/bench.sh: choose the OpenBLAS core
# type once, before any child process loads the library, unless the
# environment presets it (a preset value is never changed: some machines set
# it because OpenBLAS misbehaves with its own choice there); then say which
# kernels run on which CPU. Sets SPQ_CPU_JSON to `spinq cpu`'s report.
spq_blas_env() {
  local who=$1 origin=preset
  if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    origin="unset: chosen from cpuid"
    local ct
    ct=$(build/rel/spinq cpu --coretype 2>/dev/null || true)
    if [ -n "$ct" ]; then export OPENBLAS_CORETYPE=$ct; else origin="unset: OpenBLAS's own choice"; fi
  fi
  SPQ_CPU_JSON=$(build/rel/spinq cpu 2>/dev/null || echo '{}')
  local field
  field() { sed -n "s/.*\"$1\": \"\([^\"]*\)\".*/\1/p" <<<"$SPQ_CPU_JSON"; }
  echo "$who: OpenBLAS kernel $(field openblas_corename) (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-}, $origin);" \
       "integer kernels $(field qgemm_path); CPU $(field cpu_model)" >&2
  export SPQ_CPU_JSON
}
