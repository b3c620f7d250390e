-- wrk script for benches/load/run.sh: signed GitHub deliveries, each with a unique
-- X-GitHub-Delivery id. GitHub's signature covers only the body, so one signed body serves
-- every request.
--
-- Arguments (after `--`): <seconds> <run id> <signature> <path> <body file> [<id style>]
--
-- Id styles:
--   random      (default) a random version-4 UUID per delivery, such as
--               "3f0c8a51-9b2e-4d7a-8c31-5e6f70a1b2c3": what GitHub and most providers send.
--               Each new id lands at a random place in the queue's unique index.
--   sequential  "<run id>-<thread>-<counter>": each new id sorts after the previous ones
--               of its thread, the best case for a B-tree index.
-- Random ids come from each wrk thread's own generator, seeded from the run id, the thread
-- and the clock, so two threads never share a sequence; run.sh checks that the number of
-- stored rows equals the number of 2xx answers, which any repeated id would break.
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
  style = args[6] or "random"
  if style ~= "random" and style ~= "sequential" then
    error("id style must be random or sequential, not " .. style)
  end
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
    .. "X-GitHub-Delivery: "
  if style == "sequential" then
    prefix = prefix .. run .. "-" .. tid .. "-"
  else
    local seed = tid * 1000003 + math.floor((now() * 1e6) % 1e9)
    for i = 1, #run do
      seed = (seed * 31 + run:byte(i)) % 2147483647
    end
    math.randomseed(seed)
  end
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
  if style == "sequential" then
    return prefix .. sent .. suffix
  end
  local r = math.random
  return prefix .. string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    r(0, 65535), r(0, 65535), r(0, 65535), r(0, 4095), 32768 + r(0, 16383),
    r(0, 65535), r(0, 65535), r(0, 65535)) .. suffix
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
