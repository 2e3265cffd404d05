-- wrk_get_pages.lua - GET /api/runs at a random depth each time (pages of
-- 50 out of ~10,000 runs): every request misses the listing cache and runs
-- the queries. PAGE_BY=offset (default) pages with ?offset=, PAGE_BY=before_id
-- with the keyset cursor ?before_id=. Prints one line "JSON {...}".
math.randomseed(os.time())
local by = os.getenv("PAGE_BY") or "offset"
local lo, hi = 0, 9950
if by == "before_id" then lo, hi = 51, 10050 end

function request()
  return wrk.format("GET", "/api/runs?" .. by .. "=" .. math.random(lo, hi))
end

function done(summary, latency, requests)
  io.write(string.format(
    'JSON {"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
