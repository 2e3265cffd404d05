-- wrk_get_pages.lua - GET /api/runs at a random offset each time (pages of
-- 50 out of ~10,000 runs): every request misses the listing cache and runs
-- the queries. Prints one line "JSON {...}" with the figures.
math.randomseed(os.time())

function request()
  return wrk.format("GET", "/api/runs?offset=" .. math.random(0, 9950))
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
