-- promote.lua: moves retry jobs whose due time has come onto the jobs list
-- (DESIGN.md section 5). Bounded per call; any number of workers may run it at
-- once, since each due job is removed before it is pushed.
--
-- KEYS[1] retry zset   KEYS[2] jobs list
-- ARGV[1] batch size
-- Returns the number of jobs moved.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, job in ipairs(due) do
  redis.call('ZREM', KEYS[1], job)
  redis.call('LPUSH', KEYS[2], job)
end
return #due
