-- wrk_post.lua - POST /api/runs with a small job spec. With STOP_AFTER set
-- in the environment each thread stops after that many responses (used to
-- fill the store). Prints one line "JSON {...}" with the figures.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"stories260K","name":"bench","tags":["bench"],"rotation":{"mode":"none"},' ..
  '"quant":{"w_bits":16,"a_bits":16,"kv_bits":16},"weights":{"method":"none"},' ..
  '"eval":{"ppl":[{"data":"tinystories/test.txt","seqlen":128}],"kld":false,"tasks":[],"limit":1}}'

local stop_after = tonumber(os.getenv("STOP_AFTER") or "0")
local seen = 0

function response(status, headers, body)
  seen = seen + 1
  if stop_after > 0 and seen >= stop_after then wrk.thread:stop() end
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
