-- progress.lua: records one step of a sync run, atomically (DESIGN.md sections 3-5).
--
-- Every counter of a run moves through the per-run items hash, which holds
-- each listed campaign's state (listed | retrying | synced | dead). A step
-- replayed after a lost reply, or a job delivered twice, finds the state
-- already moved and changes nothing: listed == synced + dead stays true.
--
-- KEYS[1] run hash        KEYS[2] run items hash    KEYS[3] client campaigns hash
-- KEYS[4] stats hash      KEYS[5] retry zset        KEYS[6] dead list
-- KEYS[7] processing list KEYS[8] deliveries hash   KEYS[9] client active_run
-- KEYS[10] outbox list    KEYS[11] client last_run
-- ARGV: name/value pairs, optionally followed by "ids" and the campaign ids
-- of a listed page:
--   now, run          wall-clock ms; run id
--   retention, dead_cap  ms an ended run is kept; dead letters kept
--   cursor            page to resume from (raised, never lowered)
--   listing_done      "1": the last page has been seen
--   campaign, outcome one campaign's result: synced | retry | dead
--   stored           (synced) JSON for the campaigns hash
--   job, due         (retry, dead) job JSON for the retry zset / dead list; due ms
--   elem, job_id      a job element to remove from the processing list
--   disposition      "retry": the client job itself goes back to the retry zset
--                     (job, due) keeping its cursor
--   outbox, client    "1" and the client id: append each stored campaign to the
--                     outbox as {"client":…,"campaign":<stored>} (PostgreSQL sink)
-- Returns {run state, positions (1-based) of page ids that still need a sync...},
-- or {'wrongtype', key} when a key of the run or client holds another type
-- (lib/keycall.lua).

-- @include lib/keycall.lua
-- @include lib/retention.lua

local a, ids = {}, {}
local i = 1
while i <= #ARGV do
  if ARGV[i] == 'ids' then
    for j = i + 1, #ARGV do ids[#ids + 1] = ARGV[j] end
    break
  end
  a[ARGV[i]] = ARGV[i + 1]
  i = i + 2
end

local run, items = KEYS[1], KEYS[2]

local function main()
  -- Every key of the run and the client is read before anything is written,
  -- so a key of the wrong type stops the call before it changed anything
  -- (the job element in particular stays held, for the worker to bury).
  local state = kcall('HGET', run, 'state')
  local items_new = kcall('HLEN', items) == 0
  kcall('HLEN', KEYS[3])
  kcall('STRLEN', KEYS[9])
  kcall('STRLEN', KEYS[11])
  if state == false or state == 'queued' then
    kcall('HSET', run, 'state', 'running', 'started_at', a.now)
    if state == false then kcall('HSET', run, 'run', a.run) end
  end

  -- A job element we no longer hold (reaped while we were cut off) means
  -- somebody else owns that job now: keep only what is idempotent.
  local held = true
  if a.elem and a.elem ~= '' then
    held = redis.call('LREM', KEYS[7], 1, a.elem) == 1
    if held then redis.call('HDEL', KEYS[8], a.job_id) end
  end

  -- A listed page: new ids become "listed" (one HMGET, one HSET, one HINCRBY
  -- for the page); ids listed before but not yet synced still need a sync.
  local needs = {}
  if #ids > 0 then
    local old, fresh, seen = kcall('HMGET', items, unpack(ids)), {}, {}
    for pos, id in ipairs(ids) do
      if old[pos] == false and not seen[id] then
        fresh[#fresh + 1] = id
        fresh[#fresh + 1] = 'listed'
        needs[#needs + 1] = pos
      elseif old[pos] == 'listed' then
        needs[#needs + 1] = pos
      end
      seen[id] = true
    end
    if #fresh > 0 then
      -- A new items hash is made a hash table at once: Redis keeps a hash's
      -- first 128 fields as a listpack, where every lookup is a scan, and
      -- those scans were a large part of Redis's CPU for a run. One value
      -- longer than hash-max-listpack-value converts it for good; its field
      -- (empty: never a campaign id) goes again at once.
      if items_new then
        fresh[#fresh + 1] = ''
        fresh[#fresh + 1] = string.rep('.', 256)
      end
      kcall('HSET', items, unpack(fresh))
      if items_new then kcall('HDEL', items, '') end
      kcall('HINCRBY', run, 'listed', (#fresh - (items_new and 2 or 0)) / 2)
    end
  end

  if a.cursor then
    local cur = counter(run, kcall('HGET', run, 'next_page') or '1')
    if tonumber(a.cursor) > cur then kcall('HSET', run, 'next_page', a.cursor) end
  end
  if a.listing_done == '1' then kcall('HSET', run, 'listing_done', '1') end

  -- Moves one campaign to its new state and adjusts the counters. Returns
  -- true when the side effect (retry or dead push) should happen.
  local function transition(id, new)
    local old = kcall('HGET', items, id)
    if old == 'synced' or (old == 'dead' and new ~= 'synced') then return false end
    if old == new and not (new == 'retrying' and held and a.elem) then return false end
    if old == false then kcall('HINCRBY', run, 'listed', 1) end
    if old == 'retrying' and new ~= 'retrying' then kcall('HINCRBY', run, 'retrying', -1) end
    if old == 'dead' then kcall('HINCRBY', run, 'dead', -1) end
    if old ~= new then
      local counter = ({ retrying = 'retrying', synced = 'synced', dead = 'dead' })[new]
      kcall('HINCRBY', run, counter, 1)
      kcall('HSET', items, id, new)
    end
    return true
  end

  if a.outcome == 'synced' then
    kcall('HSET', KEYS[3], a.campaign, a.stored)
    if a.outbox == '1' then
      redis.call('RPUSH', KEYS[10], '{"client":' .. cjson.encode(a.client) .. ',"campaign":' .. a.stored .. '}')
    end
    if transition(a.campaign, 'synced') then redis.call('HINCRBY', KEYS[4], 'campaigns_synced', 1) end
  elseif a.outcome == 'retry' and held then
    if transition(a.campaign, 'retrying') then
      redis.call('ZADD', KEYS[5], a.due, a.job)
      redis.call('HINCRBY', KEYS[4], 'campaigns_retried', 1)
    end
  elseif a.outcome == 'dead' and held then
    if transition(a.campaign, 'dead') then
      push_dead(KEYS[6], KEYS[4], a.job, a.dead_cap)
      redis.call('HINCRBY', KEYS[4], 'campaigns_dead', 1)
    end
  end

  if a.disposition == 'retry' and held then
    redis.call('ZADD', KEYS[5], a.due, a.job)
    redis.call('HINCRBY', KEYS[4], 'jobs_retried', 1)
  end

  state = kcall('HGET', run, 'state')
  if state == 'running' and kcall('HGET', run, 'listing_done') == '1' then
    local c = kcall('HMGET', run, 'listed', 'synced', 'dead')
    if counter(run, c[1]) == counter(run, c[2]) + counter(run, c[3]) then
      state = 'done'
      kcall('HSET', run, 'state', state, 'finished_at', a.now)
      retain_ended_run(run, items, KEYS[11], a.run, a.now, a.retention)
      if kcall('GET', KEYS[9]) == a.run then kcall('DEL', KEYS[9]) end
      redis.call('HINCRBY', KEYS[4], 'runs_done', 1)
    end
  end

  local out = { state }
  for _, pos in ipairs(needs) do out[#out + 1] = pos end
  return out
end

local key, out = catch_wrongtype(main)
if key then return { 'wrongtype', key } end
return out
