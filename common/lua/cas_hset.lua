-- cas_hset.lua: compare-and-set of one hash field. Sets ARGV[3] only if the
-- field still holds ARGV[2], the value read before: `secrets rotate` and
-- `secrets migrate` re-seal a client's password without overwriting one that
-- `client add` wrote meanwhile.
-- KEYS[1] hash   ARGV[1] field   ARGV[2] expected value   ARGV[3] new value
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
