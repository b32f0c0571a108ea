-- cad.lua: compare-and-delete. Deletes KEYS[1] only if it still holds
-- ARGV[1], so a worker drops its own stale token or lock, never a newer one
-- written by another worker.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
