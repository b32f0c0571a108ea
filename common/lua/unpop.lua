-- unpop.lua: gives one element of a worker's processing list back to the
-- jobs list (DESIGN.md section 5). A BLMOVE that Redis ran but whose reply
-- never reached the worker (the connection or the server died in between)
-- leaves a job there that the worker does not hold; the worker looks for
-- such elements when its pop connection comes back and hands each one back
-- here, at the end popped next. Only if it is still there: a reaper may have
-- taken the whole list meanwhile.
--
-- KEYS[1] processing list   KEYS[2] jobs list
-- ARGV[1] the element exactly as stored
-- Returns 1 when moved, 0 when it was gone.

if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
