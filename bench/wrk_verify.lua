-- wrk script for the REST verification row (g) of bench/run: every request is
--   POST /api/v1/verify   (the path comes from the URL given to wrk)
-- with the signed PDF named by KYSO_BENCH_PDF as the body (application/pdf) and the API key read
-- from the file named by KYSO_BENCH_KEYFILE (never passed on a command line) as the bearer token.
-- Every response is checked, not only its status: a report that does not pass is a wrong answer,
-- not a verification. A response counts as ok when
--   * the status is 200, and
--   * the JSON report's top-level "indication" is "TOTAL_PASSED", and every other "indication"
--     in it (each signature's, each timestamp's) is "TOTAL_PASSED" too.
-- At the end the script prints
--   wrk_status ok=N bad=M first_bad=CODE ...
-- where CODE is the HTTP status of the first bad response, or 1 for a 200 whose report does not
-- pass. bench/run refuses a run in which anything was bad.

local function slurp(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local s = f:read("*a")
  f:close()
  return s
end

local body = slurp(os.getenv("KYSO_BENCH_PDF"))
local apikey = slurp(os.getenv("KYSO_BENCH_KEYFILE")):gsub("%s+$", "")

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/pdf"
wrk.headers["Authorization"] = "Bearer " .. apikey

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  bad = 0
  first_bad = 0
  -- One pre-formatted request, reused on every call (keep-alive connections).
  req = wrk.format()
end

function request()
  return req
end

-- The report (api/src/report_json.cpp) is compact JSON: {"validationTime":...,"policy":...,
-- "indication":"...",...,"signatures":[{...,"indication":"...",...}]}. The first "indication"
-- is the document's (it comes before "signatures"); at least two must be present.
local function passes(b)
  local n = 0
  for value in b:gmatch('"indication"%s*:%s*"([A-Z_]*)"') do
    if value ~= "TOTAL_PASSED" then
      return false
    end
    n = n + 1
  end
  return n >= 2 and b:find('"signatures"', 1, true) ~= nil
end

function response(status, headers, b)
  if status == 200 and passes(b) then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == 0 then
      first_bad = status == 200 and 1 or status
    end
  end
end

function done(summary, latency, requests)
  local tok, tbad, fb = 0, 0, 0
  for _, t in ipairs(threads) do
    tok = tok + t:get("ok")
    tbad = tbad + t:get("bad")
    local f = t:get("first_bad")
    if fb == 0 and f ~= 0 then
      fb = f
    end
  end
  local errs = summary.errors
  io.write(string.format("wrk_status ok=%d bad=%d first_bad=%d sock_connect=%d sock_read=%d "
    .. "sock_write=%d sock_timeout=%d\n", tok, tbad, fb, errs.connect, errs.read, errs.write,
    errs.timeout))
  io.write(string.format("wrk_latency p50_us=%d p99_us=%d mean_us=%.0f\n",
    latency:percentile(50), latency:percentile(99), latency.mean))
  io.write(string.format("wrk_total requests=%d duration_us=%d\n", summary.requests,
    summary.duration))
end
