-- wrk script for tools/serve-bench: GET /v1/members/{id} over ids picked at random from the
-- generated region's members (M0000000 .. M{N-1}, N from GONGJI_BENCH_MEMBERS), with the token
-- in GONGJI_BENCH_TOKEN; at the end one JSON line with the count, rate and latencies.
local members = tonumber(os.getenv("GONGJI_BENCH_MEMBERS") or "1000")
local header = { ["Authorization"] = "Bearer " .. (os.getenv("GONGJI_BENCH_TOKEN") or "") }

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed or 1)
end

function request()
  local id = string.format("M%07d", math.random(0, members - 1))
  return wrk.format("GET", "/v1/members/" .. id, header)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"per_second":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non_2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
