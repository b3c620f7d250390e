-- wrk script for benches/load/run.sh: signed GitHub deliveries, each with a unique
-- X-GitHub-Delivery id. GitHub's signature covers only the body, so one signed body serves
-- every request.
--
-- Arguments (after `--`): <seconds> <run id> <signature> <path> <body file>
--
-- For <seconds> the connections send deliveries; after that each connection sends nothing
-- more (wrk's request() returns an empty request) and only waits for the answer to its last
-- delivery, so when wrk stops a little later no delivery is left in flight: every delivery
-- the server got has had its answer counted. That is what lets run.sh compare the stored
-- rows with the 2xx count exactly. Requests/s are computed over <seconds>, not over wrk's
-- total run time.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_usec; } hookdock_timeval;
  int gettimeofday(hookdock_timeval *tv, void *tz);
]]
local tv = ffi.new("hookdock_timeval")
local function now()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) / 1e6
end

local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

function init(args)
  local seconds = tonumber(args[1])
  local run, signature, path, body_file = args[2], args[3], args[4], args[5]
  local f = assert(io.open(body_file, "rb"))
  local body = f:read("*a")
  f:close()
  prefix = "POST " .. path .. " HTTP/1.1\r\n"
    .. "Host: hookdock-bench\r\n"
    .. "User-Agent: GitHub-Hookshot/bench\r\n"
    .. "Content-Type: application/json\r\n"
    .. "X-GitHub-Event: push\r\n"
    .. "X-GitHub-Hook-ID: 1\r\n"
    .. "X-Hub-Signature-256: " .. signature .. "\r\n"
    .. "Content-Length: " .. #body .. "\r\n"
    .. "X-GitHub-Delivery: " .. run .. "-" .. tid .. "-"
  suffix = "\r\n\r\n" .. body
  deadline = now() + seconds
  sent = 0
  stopped = false
end

function request()
  if stopped then
    return ""
  end
  if now() >= deadline then
    stopped = true
    return ""
  end
  sent = sent + 1
  return prefix .. sent .. suffix
end

function done(summary, latency, requests)
  -- wrk calls request() once on the first thread before the run to check the script; that
  -- delivery is never sent.
  local sent_total = -1
  for _, t in ipairs(threads) do
    sent_total = sent_total + (t:get("sent") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT sent=%d completed=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d "
      .. "p50_us=%d p99_us=%d max_us=%d\n",
    sent_total, summary.requests, e.status, e.connect, e.read, e.write,
    latency:percentile(50), latency:percentile(99), latency.max))
end
