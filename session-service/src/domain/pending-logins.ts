import { createHash, randomBytes } from 'node:crypto';
import type { Amr } from '../../../common/src/authentication.js';
import type { RedisClient } from '../../../common/src/redis.js';
import { type Sealer, UnreadableSealError } from './sealing.js';
import type { IdentityProviderSession } from './session-repository.js';
import { storeCall } from './store-call.js';

/**
 * A login whose password was right and that waits for its second step (a code, or enrolling
 * one): never a session, nothing validate or the gateways would take for one. It lives in Redis
 * for PENDING_LOGIN_TTL_MS, sealed (purpose `pending-login`), under the SHA-256 of a random
 * 256-bit token that only its own cookie carries, and it is used once: completing it deletes it,
 * and only the request whose DEL removed it gets the session (two instances racing with the same
 * cookie: one wins). Too many wrong codes end it (the user starts over with the password).
 */
export const PENDING_LOGIN_TTL_MS = 5 * 60_000;
/** Wrong codes one pending login may take before it ends (throttling counts them too). */
export const PENDING_LOGIN_MAX_FAILURES = 5;

export interface PendingLogin {
  userId: string;
  username: string;
  /** What the login still needs: a code, or to enrol a factor (REQUIRE_SECOND_FACTOR). */
  needs: 'second-factor' | 'enrolment';
  /** ms since the epoch: when the password was checked. */
  passwordAt: number;
  rd: string;
  remember: boolean;
  ip: string;
  ua: string;
  failures: number;
  /** How the first step was proven (a provider's methods); absent: a password (`['pwd']`). */
  firstFactor?: Amr[];
  /** The identity provider the first step came from (domain/session-repository.ts SessionAuth.idp). */
  idp?: IdentityProviderSession;
}

export function createPendingLogins(options: {
  redis: RedisClient;
  /** createSealer(keys, 'pending-login'). */
  sealer: Sealer;
  prefix?: string;
}) {
  const { redis, sealer } = options;
  const prefix = options.prefix ?? 'gh:';
  const keyOf = (token: string) =>
    `${prefix}login:${createHash('sha256').update(token).digest('base64url')}`;

  return {
    keyOf,
    /** Store a pending login; returns the token for its cookie. */
    create: (login: PendingLogin) =>
      storeCall(async () => {
        const token = randomBytes(32).toString('base64url');
        const key = keyOf(token);
        await redis.set(key, sealer.seal(JSON.stringify(login), key), {
          expiration: { type: 'PX', value: PENDING_LOGIN_TTL_MS },
          condition: 'NX',
        });
        return token;
      }),
    /** The pending login of `token`, or null (none, expired, used, or not ours). */
    get: (token: unknown) =>
      storeCall(async (): Promise<PendingLogin | null> => {
        if (typeof token !== 'string' || token.length === 0 || token.length > 64) return null;
        const key = keyOf(token);
        const raw = await redis.get(key);
        if (raw === null) return null;
        try {
          return JSON.parse(sealer.open(raw, key).plaintext) as PendingLogin;
        } catch (err) {
          if (err instanceof UnreadableSealError) return null;
          throw err;
        }
      }),
    /**
     * Count a wrong code. Returns false when the login has no tries left (it is then ended) or
     * is gone.
     */
    fail: (token: string, login: PendingLogin) =>
      storeCall(async () => {
        const key = keyOf(token);
        const failures = login.failures + 1;
        if (failures >= PENDING_LOGIN_MAX_FAILURES) {
          await redis.del(key);
          return false;
        }
        const reply = await redis.set(
          key,
          sealer.seal(JSON.stringify({ ...login, failures }), key),
          { expiration: 'KEEPTTL', condition: 'XX' },
        );
        return reply !== null;
      }),
    /** Use it up: true for exactly one caller. */
    consume: (token: string) => storeCall(async () => (await redis.del(keyOf(token))) === 1),
  };
}

export type PendingLogins = ReturnType<typeof createPendingLogins>;
