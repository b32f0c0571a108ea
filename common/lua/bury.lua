-- bury.lua: moves a held job that cannot be processed (not parseable,
-- poison, no credentials, page fetch out of attempts) to the dead letters,
-- and fails its run (DESIGN.md section 4).
--
-- KEYS[1] processing list   KEYS[2] dead list   KEYS[3] deliveries hash
-- KEYS[4] stats hash        KEYS[5] run hash    KEYS[6] client active_run
-- KEYS[7] run items hash    KEYS[8] client last_run
-- ARGV[1] the job element as popped   ARGV[2] the dead letter JSON
-- ARGV[3] job id ('' if unknown)      ARGV[4] run id ('' if none)
-- ARGV[5] reason                      ARGV[6] now ms
-- ARGV[7] retention of ended runs (ms) ARGV[8] dead letters kept
-- Returns 1, or 0 if the element was no longer held (somebody else owns it).

-- @include lib/keycall.lua
-- @include lib/retention.lua

if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
push_dead(KEYS[2], KEYS[4], ARGV[2], ARGV[8])
if ARGV[3] ~= '' then redis.call('HDEL', KEYS[3], ARGV[3]) end
redis.call('HINCRBY', KEYS[4], 'jobs_dead', 1)
-- The run fails with the job; a run or client key of the wrong type (the
-- reason the job may be here) is left as it is: the dead letter says why.
local function release_active()
  if kcall('GET', KEYS[6]) == ARGV[4] then kcall('DEL', KEYS[6]) end
end
if ARGV[4] ~= '' then
  catch_wrongtype(kcall, 'HSET', KEYS[5], 'state', 'failed', 'last_error', ARGV[5], 'finished_at', ARGV[6])
  catch_wrongtype(release_active)
  catch_wrongtype(retain_ended_run, KEYS[5], KEYS[7], KEYS[8], ARGV[4], ARGV[6], ARGV[7])
end
return 1
