-- lib/retention.lua: included (embed_lua.cmake "@include", after
-- lib/keycall.lua) by every script that ends a run or writes a dead letter,
-- so Redis holds what the operator configured and no more (DESIGN.md
-- section 3; README "Retention").

-- A run that ended keeps its hash and items hash for `retention` ms after
-- finished_at. Its client's newest run stays (status shows it) until a newer
-- run is queued: enqueue_run.lua then expires it on the same clock.
local function retain_ended_run(run, items, last_run, run_id, finished_at, retention)
  if kcall('GET', last_run) == run_id then return end
  local at = tonumber(finished_at) + tonumber(retention)
  kcall('PEXPIREAT', run, at)
  kcall('PEXPIREAT', items, at)
end

-- The dead list keeps its newest `cap` letters; older ones are trimmed and
-- counted in the stats hash (dead_trimmed), as Sidekiq caps its dead set.
local function push_dead(dead, stats, letter, cap)
  local n = redis.call('LPUSH', dead, letter)
  cap = tonumber(cap)
  if n > cap then
    redis.call('LTRIM', dead, 0, cap - 1)
    redis.call('HINCRBY', stats, 'dead_trimmed', n - cap)
  end
end
