-- lib/keycall.lua: included (embed_lua.cmake "@include") by the scripts that
-- write keys of one client or one run. Such a key holding another type
-- (somebody's SET on it, a prefix shared with another program) must not turn
-- the whole script into an error the worker could only retry for ever:
-- kcall raises {wrongtype = key} instead, and the script answers
-- {'wrongtype', key} (or 'wrongtype:<key>' per run), so the worker ends that
-- one job dead, naming the key. Keys shared by every job (the queues, the
-- dead list, stats) are checked when a worker starts.
local function kcall(cmd, key, ...)
  local r = redis.pcall(cmd, key, ...)
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'WRONGTYPE', 1, true) or string.find(r.err, 'not an integer', 1, true) then
      error({ wrongtype = key })   -- a counter that is no number holds the wrong type too
    end
    error(r.err)
  end
  return r
end

-- A counter read from a field of hash key (absent: 0). One that is no
-- number fails like a key of the wrong type.
local function counter(key, v)
  if v == false or v == nil then return 0 end
  local n = tonumber(v)
  if n == nil then error({ wrongtype = key }) end
  return n
end

-- Runs f(...); a wrongtype raised inside comes back as the key, other errors
-- go on as errors.
local function catch_wrongtype(f, ...)
  local ok, res = pcall(f, ...)
  if ok then return nil, res end
  if type(res) == 'table' and res.wrongtype then return res.wrongtype end
  error(res)
end
