import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';

/**
 * The id a user sees for one of their sessions (GET /auth/sessions, the admin list, the audit
 * log): its stored id (itself a SHA-256 of the session id) encrypted with a key derived from the
 * cookie secret, so listing sessions never discloses a usable session id (to a script on the
 * page, a screenshot, a log), nor the name the session has in Redis; and, unlike a keyed hash,
 * the server turns a handle back into the stored id, so revoking one session reads one index
 * entry instead of listing all of them.
 *
 * AES-256 on the 32 bytes of the stored id, two blocks without a mode: deterministic on purpose
 * (a session keeps its handle across listings), and safe here because every plaintext is a
 * uniformly random, never-repeated 256-bit value. A forged or spliced handle opens to an id in
 * nobody's index, so at worst it ends nothing (ownership is the index entry: deleteSessionById).
 */
export function createSessionHandles(secrets: readonly string[]) {
  const keys = (secrets.length > 0 ? secrets : ['']).map((secret) =>
    createHmac('sha256', secret).update('gatehouse session handle').digest(),
  );
  const [current] = keys as [Buffer, ...Buffer[]];
  return {
    /** The handle of the stored id `id` (43 base64url characters). */
    handleOf(id: string): string {
      const cipher = createCipheriv('aes-256-ecb', current, null).setAutoPadding(false);
      const bytes = Buffer.from(id, 'base64url');
      return Buffer.concat([cipher.update(bytes), cipher.final()]).toString('base64url');
    },
    /**
     * The stored ids `handle` may stand for: one per secret (the current one first), so a
     * handle shown before SESSION_SECRET rotated still ends its session. Empty when malformed.
     */
    idsOf(handle: string): string[] {
      if (!/^[A-Za-z0-9_-]{43}$/.test(handle)) return [];
      const bytes = Buffer.from(handle, 'base64url');
      return keys.map((key) => {
        const decipher = createDecipheriv('aes-256-ecb', key, null).setAutoPadding(false);
        return Buffer.concat([decipher.update(bytes), decipher.final()]).toString('base64url');
      });
    },
  };
}
