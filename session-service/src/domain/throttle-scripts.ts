/** The login throttle's Redis scripts (throttle.ts). Each touches one key: Redis Cluster safe. */

/**
 * Sliding log append. KEYS[1] sorted set of failure times; ARGV: now, cutoff (now - window),
 * unique member, rank to trim below (keeps the newest entries), TTL ms. Returns the entry count.
 */
export const APPEND_FAILURE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return redis.call('ZCARD', KEYS[1])
`;

/** Sliding log read. KEYS[1] sorted set. Returns {count, newest time}. */
export const READ_FAILURES = `
local n = redis.call('ZCARD', KEYS[1])
if n == 0 then return {0, '0'} end
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
return {n, newest[2]}
`;

/**
 * Fixed window hit. KEYS[1] hash {start, count}; ARGV: now, window ms. A window opens at the first
 * hit after the previous one closed. Returns {count including this hit, ms left in the window}.
 */
export const HIT_WINDOW = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local start = tonumber(redis.call('HGET', KEYS[1], 'start'))
if start == nil or now >= start + window then
  start = now
  redis.call('HSET', KEYS[1], 'start', ARGV[1], 'count', 0)
end
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
local left = math.min(start + window - now, window)
redis.call('PEXPIRE', KEYS[1], left)
return {count, left}
`;

/** Fixed window read. KEYS[1] hash {start, count}; ARGV: now, window ms. Returns {count, ms left}. */
export const READ_WINDOW = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local start = tonumber(redis.call('HGET', KEYS[1], 'start'))
if start == nil or now >= start + window then return {0, 0} end
local count = tonumber(redis.call('HGET', KEYS[1], 'count')) or 0
return {count, math.min(start + window - now, window)}
`;
