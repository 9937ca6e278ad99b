-- wrk script: POST /post with basic auth and a small JSON body, each with its own idempotency key.
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BUS_AUTH_B64")
request = function()
  n = n + 1
  return wrk.format(nil, "/post", nil, '{"from":"bench","to":"m' .. (n % 20) .. '","body":"benchmark message ' .. n .. '","tags":["bench"]}')
end
