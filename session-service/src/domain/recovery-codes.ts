import { createHmac, randomInt } from 'node:crypto';
import { derivedKeys } from './sealing.js';

/**
 * Recovery codes: ten single-use codes of 10 characters each from a 32-letter alphabet (50 random
 * bits, written `xxxxx-xxxxx`), shown once when TOTP is set up (and when regenerated), kept only
 * as keyed hashes.
 *
 * The hash is HMAC-SHA-256 with a key derived from SESSION_ENCRYPTION_KEY (HKDF, purpose
 * `recovery-code`; never in Redis), not argon2id. argon2's cost exists to slow down guessing of
 * low-entropy secrets (passwords) from a stolen hash; a recovery code has 50 random bits, and
 * without the key a dump of Redis gives nothing to guess against at all. A fast hash also keeps
 * the second step off the hasher pool, which login load already queues on. Rotation: a code is
 * looked up under every configured key (SESSION_ENCRYPTION_KEY_PREVIOUS too), so codes issued
 * before a rotation keep working until regenerated.
 */
export const RECOVERY_CODE_COUNT = 10;
/** Crockford's base32 (no i, l, o, u), lower case: 32 symbols, 5 bits each. */
const ALPHABET32 = '0123456789abcdefghjkmnpqrstvwxyz';
const LENGTH = 10;

/**
 * What a user typed as a recovery code, canonical; null if it cannot be one. Case, spaces and
 * dashes do not matter, and the look-alikes Crockford's alphabet leaves out read as what they
 * look like (o as 0, i and l as 1).
 */
export function recoveryCodeInput(input: unknown): string | null {
  if (typeof input !== 'string' || input.length > 64) return null;
  const code = input.toLowerCase().replace(/[\s-]/g, '').replace(/o/g, '0').replace(/[il]/g, '1');
  return code.length === LENGTH && [...code].every((c) => ALPHABET32.includes(c)) ? code : null;
}

export function createRecoveryCodes(secrets: readonly string[]) {
  const keys = derivedKeys(secrets, 'recovery-code');
  const digest = (key: Buffer, userId: string, code: string) =>
    createHmac('sha256', key).update(`${userId}\n${code}`).digest('base64url');
  return {
    /** Ten new codes as shown (`xxxxx-xxxxx`), and their digests under the current key. */
    generate(userId: string): { codes: string[]; digests: string[] } {
      const codes = Array.from({ length: RECOVERY_CODE_COUNT }, () => {
        const raw = Array.from({ length: LENGTH }, () => ALPHABET32[randomInt(32)]).join('');
        return `${raw.slice(0, 5)}-${raw.slice(5)}`;
      });
      const current = keys[0] as Buffer;
      return { codes, digests: codes.map((c) => digest(current, userId, c.replace('-', ''))) };
    },
    /** The digests `code` (canonical) may be stored under: one per configured key, newest first. */
    candidates(userId: string, code: string): string[] {
      return keys.map((key) => digest(key, userId, code));
    },
  };
}

export type RecoveryCodes = ReturnType<typeof createRecoveryCodes>;
