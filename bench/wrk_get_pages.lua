-- wrk_get_pages.lua - GET /api/runs at a random depth each time (pages of
-- 50 out of ~10,000 runs): every request misses the listing cache and runs
-- the queries. PAGE_BY=offset (default) pages with ?offset=, PAGE_BY=before_id
-- with the keyset cursor ?before_id=. Figures: bench/wrk_report.lua.
math.randomseed(os.time())
local by = os.getenv("PAGE_BY") or "offset"
local lo, hi = 0, 9950
if by == "before_id" then lo, hi = 51, 10050 end

function request()
  return wrk.format("GET", "/api/runs?" .. by .. "=" .. math.random(lo, hi))
end

dofile("bench/wrk_report.lua")
