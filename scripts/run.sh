#!/usr/bin/env bash
# `make run`: the service on its embedded defaults. Until spinqd lands this
# runs the spinq tool on the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SPINQ_SHARED:-$(cd .. && pwd)/shared}
exec build/rel/spinq generate "$shared/models/stories260K/stories260K.bin" -n 200
