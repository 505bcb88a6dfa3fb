-- wrk script for bench/load.py: each request from a line "METHOD<TAB>PATH<TAB>TOKEN<TAB>BODY".
--
--   wrk -t2 -c32 -d15s -s bench/load_wrk.lua URL -- LINES_FILE MODE RUN_ID
--
-- MODE "cycle": every thread loads the file and goes round it (the read scenarios: a few
-- hundred lines). MODE "stream": thread i reads LINES_FILE.i line by line, each line used once
-- (the completion POST: each request needs an occurrence of its own); at the end of its file a
-- thread starts again, and the 409s that follow are counted. Every POST carries an
-- Idempotency-Key unique to the run. done() prints one JSON line that bench/load.py reads.

local thread_count = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    table.insert(fields, field)
  end
  return fields
end

function init(args)
  path, mode, run_id = args[1], args[2], args[3]
  lines, position, sent, wrapped = {}, 0, 0, 0
  statuses = {}
  if mode == "stream" then
    file = io.open(path .. "." .. id, "r")
  else
    for line in io.lines(path) do
      table.insert(lines, split(line))
    end
    position = id  -- threads start at different lines
  end
end

local function next_fields()
  if mode == "stream" then
    local line = file:read("*l")
    if line == nil then
      wrapped = wrapped + 1
      file:seek("set", 0)
      line = file:read("*l")
    end
    return split(line)
  end
  position = position % #lines + 1
  return lines[position]
end

function request()
  local f = next_fields()
  sent = sent + 1
  local headers = { ["Authorization"] = "Bearer " .. f[3] }
  local body = nil
  if f[1] == "POST" then
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = run_id .. "-" .. id .. "-" .. sent
    body = f[4]
  end
  return wrk.format(f[1], f[2], headers, body)
end

if os.getenv("LOAD_COUNT_STATUSES") == "1" then
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local merged, wraps = {}, 0
  for _, thread in ipairs(threads) do
    local counted = thread:get("statuses") or {}
    for status, n in pairs(counted) do
      merged[status] = (merged[status] or 0) + n
    end
    wraps = wraps + (thread:get("wrapped") or 0)
  end
  local parts = {}
  for status, n in pairs(merged) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  io.write(string.format(
    'LOAD_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d},' ..
    '"statuses":{%s},"wrapped":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    table.concat(parts, ","), wraps))
end
