-- One wrk script for every scenario, configured from the environment by bench/run:
--   BENCH_METHOD      GET (default), POST, ...
--   BENCH_AUTH        the whole Authorization header value ("Token …", "Bearer …", "Api-Key …")
--   BENCH_CTYPE       Content-Type of the body
--   BENCH_BODY        a body template: {t} is the wrk thread number, {n} a per-thread counter
--   BENCH_BODY_FILE   a file whose bytes are the body of every request
--   BENCH_PATHS       '|'-separated request paths, used in turn (default: the URL's path)
-- done() prints one machine-readable line that bench/run parses.

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local method, template, paths, counter, headers

local function split(s, sep)
  local out = {}
  for part in string.gmatch(s, "([^" .. sep .. "]+)") do
    table.insert(out, part)
  end
  return out
end

function init(args)
  method = os.getenv("BENCH_METHOD") or "GET"
  counter = 0
  headers = {}
  local auth = os.getenv("BENCH_AUTH")
  if auth and auth ~= "" then headers["Authorization"] = auth end
  local ctype = os.getenv("BENCH_CTYPE")
  if ctype and ctype ~= "" then headers["Content-Type"] = ctype end
  template = os.getenv("BENCH_BODY")
  if template == "" then template = nil end
  local file = os.getenv("BENCH_BODY_FILE")
  if file and file ~= "" then
    local f = assert(io.open(file, "rb"))
    wrk.body = f:read("*a")
    f:close()
  end
  local p = os.getenv("BENCH_PATHS")
  if p and p ~= "" then paths = split(p, "|") end
end

function request()
  counter = counter + 1
  local path = wrk.path
  if paths then path = paths[(counter % #paths) + 1] end
  local body = wrk.body
  if template then
    body = template:gsub("{t}", tostring(tid)):gsub("{n}", tostring(counter))
  end
  return wrk.format(method, path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "BENCH requests=%d duration_us=%d errors=%d status_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, socket + e.status, e.status,
    latency:percentile(50), latency:percentile(99)))
end
