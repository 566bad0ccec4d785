-- wrk script for benches/load.sh.
--   TOKEN=...                       one token on every request
--   TOKENS_FILE=path COUNT=n        cycle through the first n tokens of the file (one per
--                                   line), a different token on each request
--   OFFSET=k                        with TOKENS_FILE: start the cycle at token k (a fill
--                                   goes on where the previous run stopped)
--   CREDENTIAL=bearer (default)     send it as `Authorization: Bearer <token>`
--   CREDENTIAL=cookie               send it as the `stytch_session_jwt` cookie among
--                                   three other cookies, as a browser does
-- The path is the one of the URL given to wrk.
-- Prints one machine-readable line at the end:
--   WRK <requests> <seconds> <p50 µs> <p99 µs> <non-2xx/3xx> <socket errors>

local token = os.getenv("TOKEN")
local file = os.getenv("TOKENS_FILE")
local count = tonumber(os.getenv("COUNT") or "0") or 0
local credential = os.getenv("CREDENTIAL") or "bearer"
assert(credential == "bearer" or credential == "cookie", "CREDENTIAL: bearer or cookie")

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

-- The header carrying `t`: name, value.
local function carrying(t)
  if credential == "cookie" then
    -- A browser's Cookie header on the app's domain: analytics, a preference, the
    -- Stytch session JWT, a CSRF token.
    return "Cookie", "_ga=GA1.1.123456789.1700000000; theme=dark; stytch_session_jwt=" .. t
      .. "; csrf=abcdef0123456789"
  end
  return "Authorization", "Bearer " .. t
end

local requests = {}
local n = 0
local i = 0

function init(args)
  if file then
    for line in io.lines(file) do
      if line ~= "" then
        n = n + 1
        -- Pre-formatted: the client spends no time building requests during the run.
        local name, value = carrying(line)
        requests[n] = wrk.format("GET", nil, { [name] = value })
        if count > 0 and n >= count then break end
      end
    end
    assert(n > 0, "no tokens in " .. file)
    -- Threads start at different places in the cycle.
    local id = tonumber(wrk.thread:get("id")) or 0
    local offset = tonumber(os.getenv("OFFSET") or "0") or 0
    i = (offset + id * 7919) % n
  elseif token then
    local name, value = carrying(token)
    wrk.headers[name] = value
  end
end

if file then
  function request()
    i = i % n + 1
    return requests[i]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK\t%d\t%.3f\t%d\t%d\t%d\t%d\n",
    summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
