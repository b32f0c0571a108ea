-- ratelimit.lua: the shared per-client sliding-window limiter (DESIGN.md section 6).
-- Checks and records one API request on the Redis server's clock, so every
-- worker of every host counts against the same window.
--
-- KEYS[1] client ratelimit zset (request log)   KEYS[2] client cooldown key
-- ARGV[1] limit (requests per window)           ARGV[2] window ms
-- ARGV[3] a unique member suffix (worker id + sequence)
-- Returns 0: go (recorded); N > 0: wait N ms, nothing recorded; -1: the
-- request log held another type (somebody's value under our key) and was
-- replaced by an empty one, nothing recorded: ask again.

local cooldown = redis.call('PTTL', KEYS[2])
if cooldown > 0 then return cooldown end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])

local removed = redis.pcall('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if type(removed) == 'table' and removed.err then
  redis.call('DEL', KEYS[1])
  return -1
end
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now + 1)
