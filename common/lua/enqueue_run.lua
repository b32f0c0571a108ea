-- enqueue_run: start one sync run for a client, atomically, so that two
-- schedulers firing at once queue one run (DESIGN.md sections 3 and 8).
--
-- KEYS[1]  <p>:clients                  set of registered client ids
-- KEYS[2]  <p>:client:<id>:active_run   run id of the queued/running run
-- KEYS[3]  <p>:run:<run id>             the new run hash
-- KEYS[4]  <p>:client:<id>:last_run     newest run id (for status)
-- KEYS[5]  <p>:jobs                     ready jobs list
-- ARGV[1]  client id
-- ARGV[2]  run id
-- ARGV[3]  the client job JSON to LPUSH
-- ARGV[4]  enqueued_at, ms since the epoch
-- ARGV[5]  active_run TTL in ms: a safety valve only; the worker deletes
--          active_run when the run ends, the TTL frees a client whose run
--          was lost for good
-- ARGV[6]  "1" = force: queue even if a run is active (it takes over
--          active_run), anything else = skip a client with an active run
-- ARGV[7]  retention of ended runs in ms: the client's previous newest run,
--          kept for status while it was the newest, now ages out like any
--          other (lib/retention.lua). Its keys are derived from KEYS[3].
--
-- Returns {"unknown"}                 the client is not registered
--         {"skipped", <active run>}   a run is already queued or running
--         {"queued", <run id>}        run created and job pushed
-- @include lib/keycall.lua
-- @include lib/retention.lua

if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return {'unknown'}
end
if ARGV[6] ~= '1' then
  local active = redis.call('GET', KEYS[2])
  if active then
    return {'skipped', active}
  end
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[5])
redis.call('HSET', KEYS[3], 'client', ARGV[1], 'state', 'queued', 'next_page', '1',
           'listed', '0', 'synced', '0', 'retrying', '0', 'dead', '0',
           'enqueued_at', ARGV[4])
local function expire_previous(previous)
  local run = KEYS[3]:sub(1, #KEYS[3] - #ARGV[2]) .. previous
  local ended = kcall('HGET', run, 'finished_at')
  if ended then retain_ended_run(run, run .. ':items', KEYS[4], previous, ended, ARGV[7]) end
end
local previous = redis.call('GET', KEYS[4])
redis.call('SET', KEYS[4], ARGV[2])
if previous and previous ~= ARGV[2] then catch_wrongtype(expire_previous, previous) end
redis.call('LPUSH', KEYS[5], ARGV[3])
return {'queued', ARGV[2]}
