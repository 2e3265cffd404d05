-- wrk_get.lua - GET a path; figures: bench/wrk_report.lua.
wrk.method = "GET"

dofile("bench/wrk_report.lua")
