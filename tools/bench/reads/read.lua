-- wrk script: GET READ_PATH (e.g. /v1/products?limit=100 or /v1/tenant)
-- with the bearer token TOKEN, counting answers by status so run.sh can
-- tell failures from successes.
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "")
local path = os.getenv("READ_PATH") or "/v1/products?limit=100"

local threads = {}

function setup(thread)
  thread:set("statuses", {})
  table.insert(threads, thread)
end

function request()
  return wrk.format(nil, path)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("statuses")) do all[s] = (all[s] or 0) + n end
  end
  for s, n in pairs(all) do io.write(string.format("status %d %d\n", s, n)) end
end
