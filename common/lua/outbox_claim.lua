-- outbox_claim.lua: a worker's next batch for the PostgreSQL sink
-- (DESIGN.md section 10; the claim list is an addition to section 3).
--
-- Moves up to ARGV[1] entries from the head of the outbox to the worker's
-- claim list <prefix>:outbox:<worker id>, so no two workers insert the same
-- entry at once, and nothing is lost if the worker dies before its COMMIT
-- (reap.lua pushes a dead worker's claim list back). If the claim list still
-- holds entries (a claim whose reply was lost, or a batch not yet
-- acknowledged) those are returned again instead: claiming is idempotent.
--
-- KEYS[1] outbox list   KEYS[2] claim list
-- ARGV[1] most entries to claim
-- Returns {entries left in the outbox, claimed entry...}.

local held = redis.call('LRANGE', KEYS[2], 0, -1)
if #held == 0 then
  held = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
  if #held > 0 then
    redis.call('LTRIM', KEYS[1], #held, -1)
    for i = 1, #held, 500 do   -- RPUSH in slices: unpack() has a stack limit
      redis.call('RPUSH', KEYS[2], unpack(held, i, math.min(i + 499, #held)))
    end
  end
end
table.insert(held, 1, redis.call('LLEN', KEYS[1]))
return held
