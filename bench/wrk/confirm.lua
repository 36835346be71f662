-- GET each confirmation link once: /c/<token> for every token in a file (one a line), in order.
-- wrk ... -s confirm.lua URL -- <tokens file>
-- When every token is used, wrk sends no more and idles until its duration ends.
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
require("common")

local tokens = {}
local granted = 0
local index = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
end

-- As in sign.lua: delay() is asked once before each request wrk sends.
function delay()
  if granted >= #tokens then return 3600000 end
  granted = granted + 1
  return 0
end

function request()
  index = index % #tokens + 1
  return wrk.format("GET", "/c/" .. tokens[index])
end
