-- wrk script for the TSA rows of bench/run: every request is
--   POST /tsa   (the path comes from the URL given to wrk)
-- with the DER TimeStampReq named by KYSO_BENCH_TSQ as the body (made once by
-- `openssl ts -query -data FILE -sha256 -cert`; the same query every time: each reply still gets
-- its own serial number). No authentication: a TSA is open to every client.
-- Every response is checked, not only its status: RFC 3161 answers a refused query with HTTP 200
-- and a TimeStampResp whose PKIStatus is rejection, so a status count alone would take refusals
-- for replies. A response counts as ok when
--   * the status is 200 and the Content-Type is application/timestamp-reply,
--   * the body is one whole DER SEQUENCE (its length octets cover exactly the body), and
--   * its first element, PKIStatusInfo, is a SEQUENCE starting with INTEGER 0 or 1 (granted,
--     grantedWithMods), and the body goes on past the status (the timeStampToken is there).
-- At the end the script prints
--   wrk_status ok=N bad=M first_bad=CODE ...
-- where CODE is the HTTP status of the first bad response, or 1 for a 200 whose Content-Type
-- is wrong, 2 for a body that is not one DER SEQUENCE, 3 for a PKIStatus other than granted.
-- bench/run refuses a run in which anything was bad. One reply is verified cryptographically
-- (openssl ts -verify) by bench/run itself, outside wrk.

local function slurp(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local s = f:read("*a")
  f:close()
  return s
end

wrk.method = "POST"
wrk.body = slurp(os.getenv("KYSO_BENCH_TSQ"))
wrk.headers["Content-Type"] = "application/timestamp-query"

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

-- The DER header (tag, length) at position i: returns tag, content start, content length, or
-- nil when the length octets are malformed or run past the body.
local function der_header(s, i)
  local tag, l = s:byte(i, i + 1)
  if tag == nil or l == nil then
    return nil
  end
  local pos = i + 2
  if l >= 0x80 then
    local n = l - 0x80
    if n == 0 or n > 4 or pos + n - 1 > #s then
      return nil
    end
    l = 0
    for k = 0, n - 1 do
      l = l * 256 + s:byte(pos + k)
    end
    pos = pos + n
  end
  return tag, pos, l
end

local function check_reply(body)
  if body == nil then
    return 2
  end
  local tag, pos, len = der_header(body, 1)
  if tag ~= 0x30 or pos + len - 1 ~= #body then
    return 2  -- not one whole DER SEQUENCE
  end
  -- PKIStatusInfo ::= SEQUENCE { status PKIStatus (INTEGER), ... }
  local stag, spos, slen = der_header(body, pos)
  if stag ~= 0x30 or spos + slen - 1 > #body then
    return 2
  end
  local itag, ipos, ilen = der_header(body, spos)
  if itag ~= 0x02 or ilen ~= 1 then
    return 3
  end
  local status = body:byte(ipos)
  if status ~= 0 and status ~= 1 then
    return 3
  end
  if spos + slen - 1 >= #body then
    return 3  -- granted, but no timeStampToken follows
  end
  return 0
end

function response(status, headers, body)
  local code = 0
  if status ~= 200 then
    code = status
  elseif headers["Content-Type"] ~= "application/timestamp-reply" then
    code = 1
  else
    code = check_reply(body)
  end
  if code == 0 then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == 0 then
      first_bad = code
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
