-- synced.lua: records the synced campaigns of several runs in one call (the
-- worker's hot path; progress.lua records everything else). The worker
-- gathers the outcomes of a few milliseconds and sends them together. The
-- same exactly-once rule as progress.lua: each campaign's state in its run's
-- items hash moves at most once to "synced", and the run's counters move by
-- what actually changed, so a replayed call or a duplicate delivery counts
-- nothing twice. Work is per run, not per campaign: one HMGET of the run,
-- one HSET of the stored campaigns, one HMGET and one HSET of their states,
-- one HINCRBY per counter that moved.
--
-- KEYS[1] stats hash   KEYS[2] outbox list
-- then per run: run hash, run items hash, client campaigns hash, client active_run,
-- client last_run
-- ARGV[1] now (ms)   ARGV[2] number of runs   ARGV[3] retention of ended runs (ms)
-- then per run: run id, cursor (page to resume from), client id or "" (no
-- PostgreSQL sink, no outbox), n, then n times: campaign id, stored JSON
-- Returns each run's state after the call, in order ('wrongtype:<key>' for a
-- run whose keys hold another type, lib/keycall.lua).

-- @include lib/keycall.lua
-- @include lib/retention.lua

local now, runs, retention = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local a, states, total = 4, {}, 0

local function record(run, items, campaigns, active, last_run, run_id, cursor, client, first, n)
  local last = first + 2 * n - 1
  local ids, outbox, seen = {}, {}, {}
  for i = first, last, 2 do
    if not seen[ARGV[i]] then ids[#ids + 1] = ARGV[i] end   -- a campaign counts once
    seen[ARGV[i]] = true
    if client ~= '' then
      outbox[#outbox + 1] = '{"client":' .. cjson.encode(client) .. ',"campaign":' .. ARGV[i + 1] .. '}'
    end
  end

  local r = kcall('HMGET', run, 'state', 'next_page', 'listing_done')
  local state = r[1]
  if state == false or state == 'queued' then
    state = 'running'
    kcall('HSET', run, 'state', state, 'started_at', now, 'run', run_id)
  end
  if cursor > tonumber(r[2] or '1') then kcall('HSET', run, 'next_page', cursor) end

  kcall('HSET', campaigns, unpack(ARGV, first, last))   -- id, stored JSON, ...
  if #outbox > 0 then redis.call('RPUSH', KEYS[2], unpack(outbox)) end

  local old = kcall('HMGET', items, unpack(ids))
  local moved, listed, retrying, dead = {}, 0, 0, 0
  for i, id in ipairs(ids) do
    local was = old[i]
    if was ~= 'synced' then
      moved[#moved + 1] = id
      moved[#moved + 1] = 'synced'
      if was == false then listed = listed + 1 end
      if was == 'retrying' then retrying = retrying + 1 end
      if was == 'dead' then dead = dead + 1 end
    end
  end
  if #moved == 0 then return state end

  kcall('HSET', items, unpack(moved))
  local synced = kcall('HINCRBY', run, 'synced', #moved / 2)
  if listed > 0 then kcall('HINCRBY', run, 'listed', listed) end
  if retrying > 0 then kcall('HINCRBY', run, 'retrying', -retrying) end
  if dead > 0 then kcall('HINCRBY', run, 'dead', -dead) end
  total = total + #moved / 2

  if state == 'running' and r[3] == '1' then
    local c = kcall('HMGET', run, 'listed', 'dead')
    if tonumber(c[1] or '0') == synced + tonumber(c[2] or '0') then
      state = 'done'
      kcall('HSET', run, 'state', state, 'finished_at', now)
      retain_ended_run(run, items, last_run, run_id, now, retention)
      if kcall('GET', active) == run_id then kcall('DEL', active) end
      redis.call('HINCRBY', KEYS[1], 'runs_done', 1)
    end
  end
  return state
end

for g = 0, runs - 1 do
  local k, n = 3 + 5 * g, tonumber(ARGV[a + 3])
  -- A run whose keys hold the wrong type fails alone; the others are
  -- recorded (its partial writes do no harm: the worker buries its job).
  local bad, state = catch_wrongtype(record, KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4],
                                     ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], a + 4, n)
  states[#states + 1] = bad and ('wrongtype:' .. bad) or state
  a = a + 4 + 2 * n
end
if total > 0 then redis.call('HINCRBY', KEYS[1], 'campaigns_synced', total) end
return states
