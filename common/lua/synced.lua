-- synced.lua: records the synced campaigns of several runs in one call (the
-- worker's hot path; progress.lua records everything else). The worker
-- gathers the outcomes of a few milliseconds and sends them together, each
-- client's campaigns stored by a plain HSET just before this call (their
-- text never passes through Lua). The same exactly-once rule as
-- progress.lua: each campaign's state in its run's items hash moves at most
-- once to "synced", and the run's counters move by what actually changed,
-- so a replayed call or a duplicate delivery counts nothing twice. Work is
-- per run, not per campaign: one HMGET and one HSET of the run hash, one
-- HMGET and one HSET of the states, one HLEN of the campaigns hash (an HSET
-- into a key of another type failed; the run fails here).
--
-- KEYS[1] stats hash   KEYS[2] outbox list
-- then per run: run hash, run items hash, client campaigns hash, client active_run,
-- client last_run
-- ARGV[1] now (ms)   ARGV[2] number of runs   ARGV[3] retention of ended runs (ms)
-- then per run: run id, cursor (page to resume from), client id or "" (no
-- PostgreSQL sink, no outbox), n, n campaign ids, and with a client id the
-- n stored JSONs for the outbox
-- Returns each run's state after the call, in order ('wrongtype:<key>' for a
-- run whose keys hold another type, lib/keycall.lua).

-- @include lib/keycall.lua
-- @include lib/retention.lua

local argv, now, runs, retention = ARGV, ARGV[1], tonumber(ARGV[2]), ARGV[3]
local a, states, total = 4, {}, 0

-- The outbox entries of a run's campaigns (PostgreSQL sink).
local function push_outbox(client, first, n)
  local outbox, prefix = {}, '{"client":' .. cjson.encode(client) .. ',"campaign":'
  for i = first, first + n - 1 do outbox[#outbox + 1] = prefix .. argv[i] .. '}' end
  redis.call('RPUSH', KEYS[2], unpack(outbox))
end

local function record(run, items, campaigns, active, last_run, run_id, cursor, client, first, n)
  kcall('HLEN', campaigns)
  local ids, seen = {}, {}
  for i = first, first + n - 1 do
    local id = argv[i]
    if not seen[id] then   -- a campaign counts once
      seen[id] = true
      ids[#ids + 1] = id
    end
  end
  if client ~= '' then push_outbox(client, first + n, n) end

  -- The run hash is read once and written once: its counters are computed
  -- here (the script is atomic) instead of moved by one HINCRBY each.
  local r = kcall('HMGET', run, 'state', 'next_page', 'listing_done', 'listed', 'synced', 'retrying', 'dead')
  local state, set = r[1], {}
  if state == false or state == 'queued' then
    state = 'running'
    set = { 'state', state, 'started_at', now, 'run', run_id }
  end
  if cursor > counter(run, r[2] or '1') then
    set[#set + 1] = 'next_page'
    set[#set + 1] = cursor
  end

  local old = kcall('HMGET', items, unpack(ids))
  local moved, was_listed, was_retrying, was_dead = {}, 0, 0, 0
  for i, id in ipairs(ids) do
    local was = old[i]
    if was ~= 'synced' then
      moved[#moved + 1] = id
      moved[#moved + 1] = 'synced'
      if was == false then was_listed = was_listed + 1 end
      if was == 'retrying' then was_retrying = was_retrying + 1 end
      if was == 'dead' then was_dead = was_dead + 1 end
    end
  end

  local done = false
  if #moved > 0 then
    kcall('HSET', items, unpack(moved))
    local listed = counter(run, r[4]) + was_listed
    local synced = counter(run, r[5]) + #moved / 2
    local dead = counter(run, r[7]) - was_dead
    set[#set + 1] = 'synced'
    set[#set + 1] = synced
    if was_listed > 0 then set[#set + 1] = 'listed'; set[#set + 1] = listed end
    if was_retrying > 0 then set[#set + 1] = 'retrying'; set[#set + 1] = counter(run, r[6]) - was_retrying end
    if was_dead > 0 then set[#set + 1] = 'dead'; set[#set + 1] = dead end
    total = total + #moved / 2
    done = state == 'running' and r[3] == '1' and listed == synced + dead
    if done then
      state = 'done'
      for _, v in ipairs({ 'state', state, 'finished_at', now }) do set[#set + 1] = v end
    end
  end
  if #set > 0 then kcall('HSET', run, unpack(set)) end

  if done then
    retain_ended_run(run, items, last_run, run_id, now, retention)
    if kcall('GET', active) == run_id then kcall('DEL', active) end
    redis.call('HINCRBY', KEYS[1], 'runs_done', 1)
  end
  return state
end

for g = 0, runs - 1 do
  local k, client, n = 3 + 5 * g, argv[a + 2], tonumber(argv[a + 3])
  -- A run whose keys hold the wrong type fails alone; the others are
  -- recorded (its partial writes do no harm: the worker buries its job).
  local bad, state = catch_wrongtype(record, KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4],
                                     argv[a], tonumber(argv[a + 1]), client, a + 4, n)
  states[#states + 1] = bad and ('wrongtype:' .. bad) or state
  a = a + 4 + (client ~= '' and 2 or 1) * n
end
if total > 0 then redis.call('HINCRBY', KEYS[1], 'campaigns_synced', total) end
return states
