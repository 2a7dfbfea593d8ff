-- API deployment executions, end to end (bench/run deploy-exec): each cycle submits
-- POST /deployment/{key}/ (202), polls GET …/status/{id}/ until the status is final, then
-- fetches GET …/result/{id}/. The URL's path is the deployment's /deployment/{key}/.
--   BENCH_AUTH      "Bearer unst_…"
--   BENCH_BODY      the submit body ({t}: wrk thread, {n}: per-thread counter)
--   BENCH_POLL_MS   pause before each status poll, ms (default 25, the integration tests'
--                   interval; 0 polls again at once, which starves the 2 workers of CPU)
-- The state machine is per wrk thread, so run it with one connection per thread
-- (wrk -tN -cN): wrk's Lua callbacks do not say which connection a response arrived on.
-- done() prints the BENCH line bench/run parses, with requests = completed cycles and p50/p99
-- the latency of whole cycles (submit to result), not of single HTTP requests.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local base, headers, template, poll_ms
local state, exec_id, started, counter
-- Copied out by done(): numbers and flat tables only.
cycles, http, non2xx, s429, s5xx, exec_errors, lost, polls = 0, 0, 0, 0, 0, 0, 0, 0
samples = {}

function init(args)
  base = wrk.path
  if base:sub(-1) ~= "/" then base = base .. "/" end
  headers = { ["Content-Type"] = "application/json" }
  local auth = os.getenv("BENCH_AUTH")
  if auth and auth ~= "" then headers["Authorization"] = auth end
  template = os.getenv("BENCH_BODY") or '{"input_data": {"name": "x"}}'
  poll_ms = tonumber(os.getenv("BENCH_POLL_MS") or "25") or 25
  state, counter = "submit", 0
end

function request()
  if state == "submit" then
    counter = counter + 1
    started = now_us()
    local body = template:gsub("{t}", tostring(tid)):gsub("{n}", tostring(counter))
    return wrk.format("POST", base, headers, body)
  elseif state == "status" then
    polls = polls + 1
    return wrk.format("GET", base .. "status/" .. exec_id .. "/", headers)
  else
    return wrk.format("GET", base .. "result/" .. exec_id .. "/", headers)
  end
end

-- wrk asks whether the script has delay() before init(), so define it only when wanted.
if (tonumber(os.getenv("BENCH_POLL_MS") or "25") or 25) > 0 then
  function delay()
    if state == "status" then return poll_ms end
    return 0
  end
end

local function failed(status)
  if status == 429 then s429 = s429 + 1 elseif status >= 500 then s5xx = s5xx + 1 end
  non2xx = non2xx + 1
  lost = lost + 1 -- the cycle is abandoned (counted once, as an error)
  state = "submit"
end

function response(status, hdrs, body)
  http = http + 1
  if status < 200 or status > 299 then return failed(status) end
  if state == "submit" then
    exec_id = body:match('"execution_id"%s*:%s*"([%w%-]+)"')
    if not exec_id then lost = lost + 1; state = "submit"; return end
    state = "status"
  elseif state == "status" then
    local s = body:match('"status"%s*:%s*"(%u+)"')
    if s == "COMPLETED" then
      state = "result"
    elseif s == "ERROR" or s == "STOPPED" then
      exec_errors = exec_errors + 1
      state = "result"
    end
  else
    local s = body:match('"status"%s*:%s*"(%u+)"')
    if s ~= "COMPLETED" then exec_errors = exec_errors + 1 end
    cycles = cycles + 1
    samples[#samples + 1] = now_us() - started
    state = "submit"
  end
end

function done(summary, latency, requests)
  local all = {}
  local t = { cycles = 0, http = 0, non2xx = 0, s429 = 0, s5xx = 0, exec_errors = 0, lost = 0, polls = 0 }
  for _, thread in ipairs(threads) do
    for k in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
    for _, v in ipairs(thread:get("samples") or {}) do all[#all + 1] = v end
  end
  table.sort(all)
  local function pct(p)
    if #all == 0 then return 0 end
    return all[math.max(1, math.ceil(#all * p / 100))]
  end
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "BENCH requests=%d duration_us=%d errors=%d status_errors=%d p50_us=%d p99_us=%d " ..
    "http_count=%d non2xx=%d s429=%d s5xx=%d exec_errors=%d polls=%d single_p50=%d single_p99=%d\n",
    t.cycles, summary.duration, socket + t.lost + t.exec_errors, e.status,
    pct(50), pct(99), summary.requests, t.non2xx, t.s429, t.s5xx, t.exec_errors, t.polls,
    latency:percentile(50), latency:percentile(99)))
end
