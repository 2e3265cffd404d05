-- wrk_post.lua - POST /api/runs with a small job spec. With STOP_AFTER set
-- in the environment each thread stops after that many responses (used to
-- fill the store). Figures: bench/wrk_report.lua.
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

dofile("bench/wrk_report.lua")
