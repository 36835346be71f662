-- POST a signature with a unique email per request.
-- wrk ... -s sign.lua URL -- <email prefix> [rate per second, 0 = saturate] [updates true|false]
--                             [limit: requests per thread, then it sends no more; 0 = no limit]
-- With a limit, wrk keeps running until its duration or SIGINT; every sent request is answered.
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
require("common")

local prefix = "bench"
local counter = 0
local updates = "false"
local limit = 0
local granted = 0

function init(args)
  prefix = (args[1] or "bench") .. "-t" .. tostring(tid)
  rate = tonumber(args[2] or "0")
  updates = args[3] or "false"
  limit = tonumber(args[4] or "0")
end

-- wrk asks delay() exactly once before each request it sends (request() itself also runs once at
-- start without sending), so the limit counts what delay() lets through.
function delay()
  if limit > 0 then
    if granted >= limit then return 3600000 end  -- all sent: idle until stopped
    granted = granted + 1
  end
  return paced_delay()
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"name":"Signer %d","email":"%s-%d@example.org","country":"GB","postcode":"SW1A 1AA","updates":%s}',
    counter, prefix, counter, updates)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
