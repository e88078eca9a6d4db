-- POST /v1/packages/batch: each request 100 new packages (the same shape as
-- send_package.lua's), so a row's requests/s times 100 is packages/s.
-- Arguments (after wrk's "--"): run-prefix recipients-count batch-size

local prefix, recipients, size, sent = "run", 1000, 100, 0
local FIRST_SECOND = 1767225600 -- 2026-01-01T00:00:00Z

function init(args)
  prefix = (args[1] or "run") .. "-t" .. thread_number
  recipients = tonumber(args[2] or "1000")
  size = tonumber(args[3] or "100")
end

local function body(n)
  local package_type = (n % 2 == 0) and "personal" or "marketing"
  return string.format(
    '{"timestamp":"%s","sender_id":"bench-s%d","recipient_id":"bench-r%d",' ..
    '"package_id":"%s-%d","package_type":"%s",' ..
    '"content":{"subject":"Package %d","body":"Greetings from the benchmark."}}',
    os.date("!%Y-%m-%dT%H:%M:%SZ", FIRST_SECOND + n), n % 50, math.floor(n / 2) % recipients,
    prefix, n, package_type, n)
end

local headers = {["Content-Type"] = "application/json"}

function request()
  local items = {}
  for i = 1, size do
    sent = sent + 1
    items[i] = body(sent)
  end
  return wrk.format("POST", "/v1/packages/batch", headers,
    '{"packages":[' .. table.concat(items, ",") .. ']}')
end
