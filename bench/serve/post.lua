-- wrk script for bench/serve/run.sh: POSTs the file named by BENCH_BODY as
-- JSON on every request (to the path given on wrk's URL), and at the end
-- prints one line "WRK_JSON {...}" with the counts and latency percentiles.
-- `non2xx` counts responses whose status was 400 or more (wrk's own
-- "Non-2xx or 3xx responses" counter, summary.errors.status); the socket
-- errors (connect, read, write, timeout) are counted apart. No response()
-- callback: defining one makes wrk hand every response to Lua, which costs
-- the load generator CPU that the server under test would otherwise get.
local path = os.getenv("BENCH_BODY")
assert(path, "BENCH_BODY is not set")
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"bytes":%d,' ..
      '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d},' ..
      '"non2xx":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
      summary.requests, secs, summary.requests / secs, summary.bytes,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max,
      e.status, e.connect, e.read, e.write, e.timeout))
end
