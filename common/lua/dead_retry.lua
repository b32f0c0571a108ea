-- dead_retry: move one dead letter back onto the jobs list, atomically, and
-- reopen its run so the run's counters stay true (DESIGN.md sections 3 and 8).
-- One call per job keeps each script short; the caller pipelines them.
--
-- KEYS[1]  <p>:dead                     dead letters list
-- KEYS[2]  <p>:jobs                     ready jobs list
-- KEYS[3]  <p>:run:<run id>             the job's run hash (may not exist)
-- KEYS[4]  <p>:client:<id>:active_run   the job's client's active run
-- KEYS[5]  <p>:deliveries               job id -> times popped
-- KEYS[6]  <p>:run:<run id>:items        campaign id -> state (see progress.lua)
-- ARGV[1]  the dead letter exactly as stored (removed with LREM count 1)
-- ARGV[2]  the job to queue: attempt 0, no last_error
-- ARGV[3]  job type: "client" or "campaign"
-- ARGV[4]  run id
-- ARGV[5]  active_run TTL in ms (safety valve, as in enqueue_run)
-- ARGV[6]  job id (its delivery count is reset, or it would count as poison)
-- ARGV[7]  campaign id (campaign jobs), so its state goes back to retrying
--
-- Returns 1 when moved, 0 when the dead letter was gone (moved or purged by
-- someone else in the meantime).
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[6])
if redis.call('EXISTS', KEYS[3]) == 1 then
  -- The run is open again: it no longer ages out (lib/retention.lua).
  redis.call('PERSIST', KEYS[3])
  redis.call('PERSIST', KEYS[6])
  if ARGV[3] == 'campaign' then
    -- Only a campaign the run counts as dead moves back, so the counters
    -- stay listed == synced + dead + (retrying ones) whatever happened.
    if redis.call('HGET', KEYS[6], ARGV[7]) == 'dead' then
      redis.call('HSET', KEYS[6], ARGV[7], 'retrying')
      redis.call('HINCRBY', KEYS[3], 'dead', -1)
      redis.call('HINCRBY', KEYS[3], 'retrying', 1)
    end
    if redis.call('HGET', KEYS[3], 'state') == 'done' then
      redis.call('HSET', KEYS[3], 'state', 'running')
      redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[5])
    end
  else
    redis.call('HSET', KEYS[3], 'state', 'queued')
    redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[5])
  end
end
return 1
