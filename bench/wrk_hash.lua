-- wrk script for the sign/hash rows of bench/run: every request is
--   POST /api/v1/sign/hash   {credential, hashAlgorithm, hashes: [N digests]}
-- with the JSON body from the file named by KYSO_BENCH_BODY and the officer's API key from the
-- file named by KYSO_BENCH_KEYFILE (never on a command line). Every response is checked: status
-- 200 and exactly KYSO_BENCH_BATCH signatures in {"signatures":["...",...]} (base64 has no
-- quotes, so the body has 2 + 2N of them). At the end the script prints
--   wrk_status ok=N bad=M first_bad=STATUS ...
-- where first_bad is the status of the first bad response (999: 200 with the wrong count).

local function slurp(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local s = f:read("*a")
  f:close()
  return s
end

local body = slurp(os.getenv("KYSO_BENCH_BODY"))
local apikey = slurp(os.getenv("KYSO_BENCH_KEYFILE")):gsub("%s+$", "")
local batch = tonumber(os.getenv("KYSO_BENCH_BATCH"))

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. apikey

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  bad = 0
  first_bad = 0
  req = wrk.format()
end

function request()
  return req
end

function response(status, headers, rbody)
  local good = status == 200
  if good then
    local _, quotes = rbody:gsub('"', '')
    good = rbody:find('{"signatures":[', 1, true) == 1 and quotes == 2 + 2 * batch
  end
  if good then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == 0 then
      first_bad = status == 200 and 999 or status
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
