-- outbox_ack.lua: ends a PostgreSQL sink batch after its COMMIT
-- (DESIGN.md section 10): the claim list goes, the entries the database
-- refused go to the dead letters, the counters move, all in one step.
--
-- Idempotent for replays (the worker's store resends a write whose reply was
-- lost): once the claim list is gone nothing happens. A claim list pushed
-- back by a reaper meanwhile is gone too; its entries are in the outbox
-- again and whoever takes them writes (or dead-letters) them again.
--
-- KEYS[1] claim list   KEYS[2] dead list   KEYS[3] stats hash
-- ARGV[1] rows written   ARGV[2..] dead letters (JSON)
-- Returns 1, or 0 when the claim list was already gone.

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1])
for i = 2, #ARGV do redis.call('LPUSH', KEYS[2], ARGV[i]) end
redis.call('HINCRBY', KEYS[3], 'pg_rows_written', tonumber(ARGV[1]))
if #ARGV > 1 then redis.call('HINCRBY', KEYS[3], 'pg_rows_dead', #ARGV - 1) end
return 1
