-- seckill.lua — the usual Redis flash-sale order: one EVALSHA per click, atomic in Redis.
--
-- This is the script the side-by-side benchmark (bench/side_by_side.sh, bench/bench_redis.c)
-- runs as "the stack people use today": dedup on a buyer set, check the stock, decrement it,
-- remember the buyer, append the order to a stream for the order service to consume.
-- Redis runs it on its single thread, so no two clicks interleave and there is no oversell as
-- long as every order goes through this script.
--
-- KEYS[1]  stock of the SKU (a string holding an integer)
-- KEYS[2]  buyers of the SKU (a set of user ids): one order per buyer per SKU
-- KEYS[3]  orders of the SKU (a stream): what the order service reads
-- ARGV[1]  user id
-- ARGV[2]  quantity (>= 1)
-- ARGV[3]  order id (client-chosen)
--
-- Returns an integer outcome: 0 ok, 1 sold_out, 2 duplicate (this buyer already has an order).
-- A refused click (sold_out, duplicate) writes nothing, so Redis propagates nothing to the AOF.

if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
    return 2
end
local qty = tonumber(ARGV[2])
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
if stock < qty then
    return 1
end
redis.call('DECRBY', KEYS[1], qty)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'user', ARGV[1], 'qty', ARGV[2], 'order', ARGV[3])
return 0
