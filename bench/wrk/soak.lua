-- The soak's mixed workload (bench/soak): every connection walks the plan's lines in turn,
-- starting at a different line, so reads, writes, ingest and deployment executions interleave.
--   SOAK_PLAN       the plan file (bench/api.py soak-plan): tab-separated method, path,
--                   Authorization, Content-Type, body ({t}: wrk thread, {n}: per-thread counter)
--   SOAK_DELAY_MS   pause before each request of a connection, ms (default 10): the soak
--                   holds a steady load rather than saturating the machine
-- done() prints bench.lua's BENCH line plus the answers by status class (s2xx, s4xx, s429,
-- s5xx) so that a failure says what kind it was.

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local plan, counter, pause
s2xx, s4xx, s429, s5xx, sother = 0, 0, 0, 0, 0

local function fields(line)
  local out = {}
  for part in (line .. "\t"):gmatch("([^\t]*)\t") do
    out[#out + 1] = part
  end
  return out
end

function init(args)
  plan = {}
  local f = assert(io.open(assert(os.getenv("SOAK_PLAN"), "SOAK_PLAN is not set"), "rb"))
  for line in f:lines() do
    if line ~= "" then
      local m = fields(line)
      local headers = {}
      if m[3] ~= "" then headers["Authorization"] = m[3] end
      if m[4] ~= "" then headers["Content-Type"] = m[4] end
      plan[#plan + 1] = { method = m[1], path = m[2], headers = headers, body = m[5] or "" }
    end
  end
  f:close()
  assert(#plan > 0, "the soak plan is empty")
  -- Threads start at different lines so that they do not move in step.
  counter = (tid or 1) * 7
  pause = tonumber(os.getenv("SOAK_DELAY_MS") or "10") or 10
end

function delay()
  return pause
end

function request()
  counter = counter + 1
  local r = plan[(counter % #plan) + 1]
  local body = nil
  if r.body ~= "" then
    body = r.body:gsub("{t}", tostring(tid)):gsub("{n}", tostring(counter))
  end
  return wrk.format(r.method, r.path, r.headers, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    s2xx = s2xx + 1
  elseif status == 429 then
    s429 = s429 + 1
  elseif status >= 500 then
    s5xx = s5xx + 1
  elseif status >= 400 then
    s4xx = s4xx + 1
  else
    sother = sother + 1
  end
end

function done(summary, latency, requests)
  local t = { s2xx = 0, s4xx = 0, s429 = 0, s5xx = 0, sother = 0 }
  for _, thread in ipairs(threads) do
    for k in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
  end
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "BENCH requests=%d duration_us=%d errors=%d status_errors=%d p50_us=%d p99_us=%d " ..
    "s2xx=%d s4xx=%d s429=%d s5xx=%d sother=%d\n",
    summary.requests, summary.duration, socket + t.s4xx + t.s429 + t.s5xx + t.sother, e.status,
    latency:percentile(50), latency:percentile(99), t.s2xx, t.s4xx, t.s429, t.s5xx, t.sother))
end
