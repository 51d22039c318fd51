-- wrk script: POST one body file with Basic auth.   wrk ... -s post.lua <url> -- <body file> <authorization>
-- done() prints `BENCH_JSON {...}` for run.py.

function init(args)
   local file = assert(io.open(args[1], "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = args[2]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "status": %d, "connect": %d, "read": %d, "write": %d, ' ..
      '"timeout": %d, "p50_us": %d, "p99_us": %d}\n',
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(99)))
end
