-- API deployment executions that wait (bench/run deploy-wait): every request is
-- POST /deployment/{key}/ with "timeout" in the body, answered 200 with the result.
--   BENCH_AUTH   "Bearer unst_…"
--   BENCH_BODY   the body ({t}: wrk thread, {n}: per-thread counter)
-- done() prints bench.lua's BENCH line, plus the non-2xx answers (429 and 5xx apart) and the
-- executions whose answer was not COMPLETED (counted as errors too).

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local headers, template, counter
non2xx, s429, s5xx, exec_errors = 0, 0, 0, 0

function init(args)
  counter = 0
  headers = { ["Content-Type"] = "application/json" }
  local auth = os.getenv("BENCH_AUTH")
  if auth and auth ~= "" then headers["Authorization"] = auth end
  template = os.getenv("BENCH_BODY") or '{"input_data": {"name": "x"}, "timeout": 30}'
end

function request()
  counter = counter + 1
  local body = template:gsub("{t}", tostring(tid)):gsub("{n}", tostring(counter))
  return wrk.format("POST", wrk.path, headers, body)
end

function response(status, hdrs, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if status == 429 then s429 = s429 + 1 elseif status >= 500 then s5xx = s5xx + 1 end
  elseif body:match('"status"%s*:%s*"(%u+)"') ~= "COMPLETED" then
    exec_errors = exec_errors + 1
  end
end

function done(summary, latency, requests)
  local t = { non2xx = 0, s429 = 0, s5xx = 0, exec_errors = 0 }
  for _, thread in ipairs(threads) do
    for k in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
  end
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "BENCH requests=%d duration_us=%d errors=%d status_errors=%d p50_us=%d p99_us=%d " ..
    "non2xx=%d s429=%d s5xx=%d exec_errors=%d\n",
    summary.requests, summary.duration, socket + e.status + t.exec_errors, e.status,
    latency:percentile(50), latency:percentile(99), t.non2xx, t.s429, t.s5xx, t.exec_errors))
end
