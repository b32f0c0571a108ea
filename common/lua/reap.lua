-- reap.lua: gives a worker's held jobs back to the queue (DESIGN.md section 5).
--
-- Used three ways: by any worker for a registered worker whose heartbeat
-- expired (the check is inside, so racing reapers move each job once); by a
-- worker at start for its own id (jobs left by a crash of the same id); and at
-- graceful shutdown, where deliveries are given back because the job did not
-- fail. In every mode the worker's PostgreSQL sink claim list goes back to
-- the head of the outbox (its batch was not acknowledged, so it may not have
-- been committed; writing it twice is harmless).
--
-- KEYS[1] heartbeat key   KEYS[2] processing list   KEYS[3] workers set
-- KEYS[4] jobs list       KEYS[5] stats hash        KEYS[6] deliveries hash
-- KEYS[7] outbox claim list                         KEYS[8] outbox list
-- ARGV[1] worker id       ARGV[2] mode: dead | own | graceful
-- Returns the number of jobs moved, or -1 if the worker is alive.

local mode = ARGV[2]
if mode == 'dead' and redis.call('EXISTS', KEYS[1]) == 1 then return -1 end

local moved = 0
while true do
  local job = redis.call('LMOVE', KEYS[2], KEYS[4], 'LEFT', 'RIGHT')
  if not job then break end
  moved = moved + 1
  if mode == 'graceful' then
    local ok, decoded = pcall(cjson.decode, job)
    -- Never below zero: a job popped while we were stopping was never counted.
    if ok and type(decoded) == 'table' and type(decoded.id) == 'string' and
        redis.call('HINCRBY', KEYS[6], decoded.id, -1) <= 0 then
      redis.call('HDEL', KEYS[6], decoded.id)
    end
  end
end

while redis.call('LMOVE', KEYS[7], KEYS[8], 'RIGHT', 'LEFT') do end

if mode ~= 'own' then
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('DEL', KEYS[1])
end
if mode == 'dead' and moved > 0 then
  redis.call('HINCRBY', KEYS[5], 'jobs_recovered', moved)
end
return moved
