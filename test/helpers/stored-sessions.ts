/**
 * How a test finds a session in Redis from the cookie it holds: Redis knows the session only by
 * its stored id (the SHA-256 of the cookie's id, common/src/session-id.ts), never by the id, and
 * holds its record sealed with the test services' SESSION_ENCRYPTION_KEY (domain/sealing.ts).
 */
import { storedSessionId } from '../../common/src/session-id.js';
import { createSealer } from '../../session-service/src/domain/sealing.js';
import { parseRecord } from '../../session-service/src/domain/session-records.js';
import type { SessionAuth } from '../../session-service/src/domain/session-repository.js';
import { TEST_ENCRYPTION_KEY } from './processes.js';

export { storedSessionId };

/** Seals and opens session records as every test service does (TEST_ENCRYPTION_KEY). */
export const testRecords = createSealer([TEST_ENCRYPTION_KEY], 'session-record');

/** Seals and opens the signing key in Redis as every test service does. */
export const testSigningKeys = createSealer([TEST_ENCRYPTION_KEY], 'signing-key');

/** Enough of a Redis client to read a key (the plain test client or ours). */
interface Reader {
  get(key: string): Promise<unknown>;
}

/** The Redis key of the session whose cookie carries `sid`. */
export const sessionKeyOf = (sid: string, prefix = 'gh:') =>
  `${prefix}sess:${storedSessionId(sid)}`;

/** The stored id in a session key (`<prefix>sess:<stored id>`; base64url holds no colon). */
export const storedIdOfKey = (key: string) => key.slice(key.lastIndexOf(':') + 1);

/** The JSON of the session record at `key`, decrypted; null when none or it does not open. */
export async function storedRecordAt(redis: Reader, key: string): Promise<string | null> {
  const raw = await redis.get(key);
  if (typeof raw !== 'string') return null;
  try {
    return testRecords.open(raw, storedIdOfKey(key)).plaintext;
  } catch {
    return null;
  }
}

/** What the session record at `key` holds; null when none. */
export async function storedAuthAt(redis: Reader, key: string): Promise<SessionAuth | null> {
  return parseRecord(await storedRecordAt(redis, key));
}

/** What the session record of `sid` holds, read back from Redis; null when there is none. */
export function storedAuthOf(redis: Reader, sid: string, prefix = 'gh:') {
  return storedAuthAt(redis, sessionKeyOf(sid, prefix));
}

/** A session record for the session `sid` as the service writes it (for SET in a test). */
export const sealedRecordOf = (sid: string, record: unknown) =>
  testRecords.seal(JSON.stringify(record), storedSessionId(sid));

/** The same, for the record at `key` (a session key). */
export const sealedRecordAt = (key: string, record: unknown) =>
  testRecords.seal(JSON.stringify(record), storedIdOfKey(key));
