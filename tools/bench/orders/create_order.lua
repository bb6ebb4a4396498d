-- wrk script: POST /v1/orders with two distinct products picked at random
-- from PRODUCTS (comma-separated ids), one of each, as the owner (TOKEN).
-- Counts answers by status so run.sh can tell failures from successes.
local products = {}
for id in string.gmatch(os.getenv("PRODUCTS") or "", "[^,]+") do
  products[#products + 1] = id
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "")

local statuses = {}
local threads = {}

function setup(thread)
  thread:set("statuses", {})
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
  local a = math.random(#products)
  local b = math.random(#products - 1)
  if b >= a then b = b + 1 end
  local body = '{"items":[{"product_id":"' .. products[a] ..
      '","quantity":1},{"product_id":"' .. products[b] .. '","quantity":1}]}'
  return wrk.format(nil, "/v1/orders", nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status %d: %d\n", k, v)) end
end
