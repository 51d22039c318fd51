-- wrk script: POST a body template with Basic auth, a fresh messageId tag in every request.
--
--   wrk ... -s post.lua <url> -- <template file> <path> <authorization header> <run nonce: 8 hex>
--
-- The template holds a 20-character placeholder wherever a messageId needs the request's tag; the
-- tag is <nonce 8><thread 2><counter 10>, 20 characters too, so bodies keep the size run.py measured.
-- done() prints one line `BENCH_JSON {...}` that run.py reads (requests, errors, latency).

local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_index", thread_count)
end

local PLACEHOLDER = "@@ID@@@@@@@@@@@@@@@@"
local parts, path, headers, prefix
local counter = 0

function init(args)
   local file = assert(io.open(args[1], "rb"))
   local template = file:read("*a")
   file:close()
   parts = {}
   local start = 1
   while true do
      local first, last = string.find(template, PLACEHOLDER, start, true)
      if not first then break end
      parts[#parts + 1] = string.sub(template, start, first - 1)
      start = last + 1
   end
   parts[#parts + 1] = string.sub(template, start)
   path = args[2]
   headers = { ["Content-Type"] = "application/json", ["Authorization"] = args[3] }
   prefix = string.format("%s%02d", args[4], (thread_index or 1) % 100)
end

function request()
   counter = counter + 1
   local body
   if #parts == 1 then
      body = parts[1]
   else
      body = table.concat(parts, string.format("%s%010d", prefix, counter))
   end
   return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
      '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
