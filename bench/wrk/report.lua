-- The request comes from the environment; the summary is one JSON line (parsed by
-- bench/harness.py). Latencies are microseconds.
--   WRK_METHOD (GET), WRK_BODY (JSON, sent as application/json), WRK_AUTHORIZATION, WRK_API_KEY

wrk.method = os.getenv("WRK_METHOD") or "GET"

local body = os.getenv("WRK_BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local authorization = os.getenv("WRK_AUTHORIZATION")
if authorization ~= nil and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end

local api_key = os.getenv("WRK_API_KEY")
if api_key ~= nil and api_key ~= "" then
  wrk.headers["X-API-Key"] = api_key
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50": %d, "p90": %d, "p99": %d, ' ..
    '"p999": %d, "mean": %.1f, "max": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
