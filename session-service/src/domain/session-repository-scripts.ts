/**
 * The Redis session repository's scripts (session-repository-redis.ts). Each names one key in
 * KEYS, so standalone Redis, Sentinel and Cluster all run them (common/src/redis/commands.ts).
 */

/**
 * The live-session count of one shard. KEYS[1]: a live-session sorted set (members: stored ids,
 * shortened; scores: when each session's record expires). ARGV: now, how many expired entries to
 * drop at most. Drops up to that many expired entries (the lowest ranks), then counts the entries
 * that expire after now: O(log n + dropped), never a scan.
 */
export const COUNT_LIVE = `
local expired = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[1])
local drop = math.min(expired, tonumber(ARGV[2]))
if drop > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, drop - 1) end
return redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf')
`;

/**
 * A session joins its live-session shard. KEYS[1]: the shard; ARGV: its expiry, its member, now,
 * how many expired entries to drop at most. Each login drops up to that many of the shard's
 * expired entries, so the set stays near the live count even when nobody scrapes the gauge.
 */
export const ADD_LIVE = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local expired = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[3])
local drop = math.min(expired, tonumber(ARGV[4]))
if drop > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, drop - 1) end
return 1
`;

/**
 * The last step of the login transaction. KEYS[1]: the user's index (stored ids scored by last
 * activity; negative while a login is pending). ARGV: the new session's stored id, now, the most
 * sessions a user may have (0: no limit), the score below which an entry is certainly ended (last
 * active longer ago than the longest idle timeout), the score above which a pending entry is a
 * login that failed half-way (older than LOGIN_GRACE_MS).
 *
 * Confirms the session (ZADD XX CH: nil when "end all sessions" removed its pending entry
 * meanwhile, the login is then interrupted), drops entries of ended sessions and of failed
 * logins, then, when the user has more live entries than allowed, unindexes the least recently
 * active (never the new one) and returns their stored ids for the caller to end.
 */
export const CONFIRM_LOGIN = `
local changed = redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[2], ARGV[1])
if changed ~= 1 then return false end
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, '(' .. ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '(' .. ARGV[5], '(0')
local max = tonumber(ARGV[3])
if max <= 0 then return {} end
local over = redis.call('ZCOUNT', KEYS[1], 0, '+inf') - max
if over <= 0 then return {} end
local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], 0, '+inf', 'LIMIT', 0, over + 1)
local ended = {}
for _, id in ipairs(oldest) do
  if id ~= ARGV[1] and #ended < over then ended[#ended + 1] = id end
end
for i = 1, #ended, 1000 do
  redis.call('ZREM', KEYS[1], unpack(ended, i, math.min(i + 999, #ended)))
end
return ended
`;
