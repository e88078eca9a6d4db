-- POST /v1/packages with unique ids: both package types, recipients of whom
-- every tenth opted out of marketing (scripts/bench.py sets that up first),
-- and every tenth request a retry of an earlier id (answered 200, replayed).
-- Arguments (after wrk's "--"): run-prefix recipients-count [keyed]
-- With "keyed", each package goes with an Idempotency-Key of its own (a retry
-- repeats its key, and gets the stored first answer).
-- Package n of a thread is a pure function of n, so a retry re-sends exactly
-- the same fields without keeping any earlier body.

local prefix, recipients, calls, fresh, keyed = "run", 1000, 0, 0, false
local RETRY_EVERY = 10
local RETRY_DISTANCE = 200 -- retry ids sent this many requests ago: their first answer is in
local FIRST_SECOND = 1767225600 -- 2026-01-01T00:00:00Z

function init(args)
  prefix = (args[1] or "run") .. "-t" .. thread_number
  recipients = tonumber(args[2] or "1000")
  keyed = args[3] == "keyed"
  math.randomseed(os.time() + thread_number)
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
  calls = calls + 1
  local n
  if calls % RETRY_EVERY == 0 and fresh > RETRY_DISTANCE then
    n = math.random(1, fresh - RETRY_DISTANCE)
  else
    fresh = fresh + 1
    n = fresh
  end
  if keyed then
    headers["Idempotency-Key"] = prefix .. "-key-" .. n
  end
  return wrk.format("POST", "/v1/packages", headers, body(n))
end
