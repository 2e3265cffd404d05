#!/usr/bin/env bash
# Installs what spinq needs on a fresh Debian machine; does nothing for what is
# already there. Debian packages with apt-get (sudo when not root), npm
# packages for the tests with npm ci.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(
  gcc make pkg-config curl ca-certificates
  libmicrohttpd-dev libjansson-dev libsqlite3-dev libopenblas-dev liblapack-dev
  libuv1-dev libpcre2-dev libcriterion-dev nettle-dev
  sqlite3 wrk chromium
  openmpi-bin libopenmpi-dev slurm-wlm munge
)

missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi

# npm packages used by the tests (reference tokenizers, browser driver, charts)
if command -v npm >/dev/null; then
  for dir in tests web; do
    [ -f "$dir/package.json" ] || continue
    stamp="$dir/node_modules/.spinq-stamp"
    if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
      echo "deps: npm ci in $dir" >&2
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
      touch "$stamp"
    fi
  done
else
  echo "deps: warning: npm not found; tests that compare with the JS reference will fail" >&2
fi
