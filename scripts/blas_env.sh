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

# The core types of Debian's OpenBLAS (DYNAMIC_ARCH) whose kernels this CPU
# can execute, oldest first (from the instructions each one uses).
spq_blas_coretypes() {
  local flags
  flags=$(grep -m1 '^flags' /proc/cpuinfo)
  has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
  local avx512=(avx512f avx512bw avx512dq avx512vl avx512cd)
  has pni && echo Prescott  # SSE3 is "pni" in /proc/cpuinfo
  has sse4_2 && echo Nehalem
  has avx && echo Sandybridge
  has avx2 fma && echo Haswell
  has "${avx512[@]}" && echo SkylakeX
  has "${avx512[@]}" avx512_bf16 && echo Cooperlake
  return 0
}
