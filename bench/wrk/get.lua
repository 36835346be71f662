-- GET the URL, counting statuses; `wrk ... -s get.lua URL -- <interval ms per connection> [<Accept-Language>]`
-- makes each connection wait that long between its requests (a viewer polling), else as fast as
-- possible; with a language, each request asks for it (the front door picks that language's file).
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
require("common")

local interval_ms = 0
local headers = {["Accept-Encoding"] = "gzip"}

function init(args)
  interval_ms = tonumber(args[1] or "0")
  if args[2] and args[2] ~= "" then headers["Accept-Language"] = args[2] end
end

function delay()
  if interval_ms <= 0 then return 0 end
  return interval_ms * (0.5 + math.random())  -- viewers are not in step with each other
end

function request()
  return wrk.format("GET", nil, headers)
end
