#!/usr/bin/env bash
# `make run`: spinqd in the foreground on its embedded defaults: data in
# ./data, the API on http://127.0.0.1:7070 (loopback, no token needed until
# one is created), remote workers on 127.0.0.1:7071, 2 local workers, models
# and datasets from ../shared (SPINQ_SHARED) when present. Extra arguments
# go to spinqd (e.g. `scripts/run.sh --workers 1`). Ctrl-C drains: running
# jobs checkpoint and are resumed at the next start.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPINQ_SHARED=${SPINQ_SHARED:-$(cd .. && pwd)/shared}
cat >&2 <<'MSG'
spinqd: the dashboard is at http://127.0.0.1:7070/ ; or try
  curl -s -XPOST localhost:7070/api/runs -d '{"model":"stories260K","rotation":{"mode":"hadamard"},
    "quant":{"w_bits":16,"a_bits":16,"kv_bits":16},"eval":{"kld":false,"tasks":[],"limit":20}}'
  curl -sN localhost:7070/api/events
MSG
exec build/rel/spinqd "$@"
