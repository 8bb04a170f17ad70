import { createHash } from 'node:crypto';

/**
 * The name a session goes by in Redis and on the revocation feed: the SHA-256 of the id the
 * cookie carries, base64url. The cookie's id itself is never written to Redis, so whoever reads
 * Redis (a dump, a backup, a replica) learns no usable session id (Lucia's "store the SHA-256 of
 * the session token", lucia-auth.com/sessions/basic-api). A plain hash, not a keyed one: the id
 * is 256 random bits, so there is nothing to guess offline, and a gateway can name a session the
 * same way from the cookie it reads without holding any secret.
 */
export function storedSessionId(sid: string): string {
  return createHash('sha256').update(sid).digest('base64url');
}
