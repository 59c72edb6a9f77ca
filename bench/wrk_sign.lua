-- wrk script for the REST row of bench/run: every request is
--   POST /api/v1/sign/pdf?credential=officer-1   (the path comes from the URL given to wrk)
-- with the PDF named by KYSO_BENCH_PDF as the body and the officer's API key, read from the file
-- named by KYSO_BENCH_KEYFILE (never passed on a command line), as the bearer token.
-- Every response is checked: the status is counted per thread, and at the end the script prints
--   wrk_status ok=N bad=M first_bad=STATUS
-- so that bench/run can refuse a run in which anything but 200 came back.

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

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == 0 then
      first_bad = status
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
