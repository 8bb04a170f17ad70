/**
 * How a test finds a session in Redis from the cookie it holds: Redis knows the session only by
 * its stored id (the SHA-256 of the cookie's id, common/src/session-id.ts), never by the id.
 */
import { storedSessionId } from '../../common/src/session-id.js';
import { parseRecord, type SessionAuth } from '../../session-service/src/domain/sessions.js';

export { storedSessionId };

/** Enough of a Redis client to read a key (the plain test client or ours). */
interface Reader {
  get(key: string): Promise<unknown>;
}

/** The Redis key of the session whose cookie carries `sid`. */
export const sessionKeyOf = (sid: string, prefix = 'gh:') =>
  `${prefix}sess:${storedSessionId(sid)}`;

/** What the session record at `key` (`<prefix>sess:<stored id>`) holds; null when none. */
export async function storedAuthAt(redis: Reader, key: string): Promise<SessionAuth | null> {
  const raw = await redis.get(key);
  return parseRecord(typeof raw === 'string' ? raw : null);
}

/** What the session record of `sid` holds, read back from Redis; null when there is none. */
export function storedAuthOf(redis: Reader, sid: string, prefix = 'gh:') {
  return storedAuthAt(redis, sessionKeyOf(sid, prefix));
}
