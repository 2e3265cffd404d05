#!/usr/bin/env bash
# bench/http.sh - spinqd's HTTP figures (one JSON object on stdout):
#   post_runs   POST /api/runs under wrk (2 threads, 16 connections, 5 s)
#   get_runs    GET /api/runs (the first page of 50, newest first) with
#               >= 10,000 runs in the store (wrk, 2 threads, 32 connections,
#               10 s); between writes this page comes from the listing cache
#   get_runs_random_pages_uncached  pages at random offsets: every request
#               queries the store (what a cache cannot help with)
#   get_runs_random_pages_keyset  the same depths through the before_id cursor
#   get_runs_ordered_by_metric  the first page ordered by a metric
#   get_one_run GET /api/runs/ID
#   sse_fanout  200 clients on the global stream, one real job producing the
#               events; delay from an event's commit to each client
# The daemon is the release build on free loopback ports with a temp data
# dir; no workers while the store fills (runs stay queued), one for the
# fan-out. Figures only, never pass/fail.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo '{"bench": "spinqd_http", "error": "wrk not installed (make deps)"}'; exit 0; }
bin=build/rel/spinqd
shared=${SPINQ_SHARED:-$(cd .. && pwd)/shared}
dir=$(mktemp -d /tmp/spinqd-bench-XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

start() { # workers
  p=$(port); wp=$(port)
  "$bin" --data-dir "$dir" --listen 127.0.0.1:$p --worker-listen 127.0.0.1:$wp --workers "$1" \
    --models-dir "$shared/models" --datasets-dir "$shared/data" --log-level warn 2>>"$dir/log" &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/api/health" >/dev/null && break; sleep 0.1; done
  if [ "$1" -gt 0 ]; then
    for _ in $(seq 100); do
      curl -sf "http://127.0.0.1:$p/api/health" | grep -q '"connected":'"$1" && break; sleep 0.1
    done
  fi
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
figures() { grep '^JSON ' | sed 's/^JSON //'; }
total() { curl -s "http://127.0.0.1:$p/api/runs?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
start 0
post=$(wrk -t2 -c16 -d5s -s bench/wrk_post.lua "http://127.0.0.1:$p/api/runs" | figures)
# fill the store to 10,000 runs
node bench/fill_runs.mjs "$p" 10000
runs=$(total)
# a metric on every run to order by (through the store, as a worker would report it)
sqlite3 "$dir/spinq.db" "PRAGMA busy_timeout=5000; INSERT OR REPLACE INTO metrics_latest(run_id, key, step, value) SELECT id, 'ppl', 0, (id * 7919 % 1000) / 100.0 FROM runs;" >/dev/null
get=$(wrk -t2 -c32 -d10s -s bench/wrk_get.lua "http://127.0.0.1:$p/api/runs" | figures)
pages=$(PAGE_BY=offset wrk -t2 -c32 -d10s -s bench/wrk_get_pages.lua "http://127.0.0.1:$p/api/runs" | figures)
keyset=$(PAGE_BY=before_id wrk -t2 -c32 -d10s -s bench/wrk_get_pages.lua "http://127.0.0.1:$p/api/runs" | figures)
byppl=$(wrk -t2 -c32 -d5s -s bench/wrk_get.lua "http://127.0.0.1:$p/api/runs?order=ppl" | figures)
one=$(wrk -t2 -c32 -d5s -s bench/wrk_get.lua "http://127.0.0.1:$p/api/runs/5000" | figures)
stop

rm -rf "$dir"/*
start 1
sse=$(node bench/sse_fanout.mjs "$p" 200)
stop

cat <<JSON
{"bench": "spinqd_http", "runs_in_store": $runs, "cpus": $(nproc), "loadavg_before": "$load",
 "platform": $(build/rel/spinq cpu),
 "post_runs": $post,
 "get_runs": $get,
 "get_runs_random_pages_uncached": $pages,
 "get_runs_random_pages_keyset": $keyset,
 "get_runs_ordered_by_metric": $byppl,
 "get_one_run": $one,
 "sse_fanout": $sse}
JSON
