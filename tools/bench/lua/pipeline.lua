-- wrk script: HTTP/1.1 pipelining, 16 GET / requests sent back to back per batch.
-- Usage: wrk -s tools/bench/lua/pipeline.lua http://127.0.0.1:PORT/
local depth = 16

init = function(args)
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil, "/")
  end
  req = table.concat(r)
end

request = function()
  return req
end
