import { createHash, randomBytes } from 'node:crypto';
import { secretMatches } from '../../../common/src/constant-time.js';
import type { RedisClient } from '../../../common/src/redis.js';
import { type Sealer, UnreadableSealError } from './sealing.js';
import { storeCall } from './store-call.js';

/**
 * What the OpenID Connect sign-in keeps between the browser leaving for the provider and coming
 * back, and what back-channel logout needs afterwards. In Redis, under the key prefix:
 *
 * - `<prefix>oidc-login:<digest of state>`: the sign-in in flight (its PKCE verifier, nonce,
 *   where the user was going), sealed (purpose `oidc-login`), for OIDC_LOGIN_TTL_MS, taken once
 *   (GETDEL: a replayed callback finds nothing). The browser that started it holds a random
 *   binding in a cookie; the record keeps only its digest, so a callback opened in another
 *   browser (login CSRF: an attacker's code in the victim's browser) is refused.
 * - `<prefix>oidc-sid:<provider>:<digest of the provider's sid>`: the Gatehouse sessions a
 *   provider session started (a sorted set of stored ids), for back-channel logout by `sid`.
 * - `<prefix>oidc-jti:<provider>:<digest of jti>`: logout tokens already used (replays refused).
 */
export const OIDC_LOGIN_TTL_MS = 10 * 60_000;

export interface OidcLogin {
  provider: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  rd: string;
  /** Digest of the browser's binding cookie. */
  binding: string;
  createdAt: number;
  /** A step-up (re-authentication at the provider) of this stored session, not a new sign-in. */
  reauthenticate?: { sessionId: string; userId: string };
}

const digest = (value: string) => createHash('sha256').update(value).digest('base64url');

const TAKE = `
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
`;

export function createOidcLogins(options: {
  redis: RedisClient;
  /** createSealer(keys, 'oidc-login'). */
  sealer: Sealer;
  prefix: string;
  now?: () => number;
}) {
  const { redis, sealer, prefix } = options;
  const now = options.now ?? Date.now;
  const loginKey = (state: string) => `${prefix}oidc-login:${digest(state)}`;
  const sidKey = (provider: string, sid: string) => `${prefix}oidc-sid:${provider}:${digest(sid)}`;
  const jtiKey = (provider: string, jti: string) => `${prefix}oidc-jti:${provider}:${digest(jti)}`;

  return {
    /** A sign-in in flight: its state, nonce, verifier and the binding for its cookie. */
    start: (
      input: Pick<OidcLogin, 'provider' | 'rd'> & { reauthenticate?: OidcLogin['reauthenticate'] },
    ) =>
      storeCall(async () => {
        const binding = randomBytes(32).toString('base64url');
        const login: OidcLogin = {
          ...input,
          state: randomBytes(32).toString('base64url'),
          nonce: randomBytes(32).toString('base64url'),
          codeVerifier: randomBytes(48).toString('base64url'),
          binding: digest(binding),
          createdAt: now(),
        };
        const key = loginKey(login.state);
        await redis.set(key, sealer.seal(JSON.stringify(login), key), {
          expiration: { type: 'PX', value: OIDC_LOGIN_TTL_MS },
          condition: 'NX',
        });
        return { login, binding };
      }),

    /**
     * The sign-in of `state`, used up, if this browser (`binding`, from its cookie) started it;
     * null otherwise (unknown, expired, used, or another browser's).
     */
    take: (state: unknown, binding: unknown) =>
      storeCall(async (): Promise<OidcLogin | null> => {
        if (typeof state !== 'string' || state.length === 0 || state.length > 128) return null;
        if (typeof binding !== 'string' || binding.length === 0 || binding.length > 128)
          return null;
        const key = loginKey(state);
        const raw = (await redis.eval(TAKE, { keys: [key] })) as string | null;
        if (raw === null) return null;
        let login: OidcLogin;
        try {
          login = JSON.parse(sealer.open(raw, key).plaintext) as OidcLogin;
        } catch (err) {
          if (err instanceof UnreadableSealError) return null;
          throw err;
        }
        if (!secretMatches(digest(binding), login.binding)) return null;
        if (now() - login.createdAt > OIDC_LOGIN_TTL_MS) return null;
        return login;
      }),

    /** Note that the provider session `sid` started Gatehouse session `storedId`. */
    indexSession: (provider: string, sid: string, storedId: string, ttlMs: number) =>
      storeCall(async () => {
        const key = sidKey(provider, sid);
        await redis.zAdd(key, { score: now(), value: storedId });
        await redis.pExpire(key, ttlMs);
      }),

    /** The Gatehouse sessions of provider session `sid` (stored ids). */
    sessionsOf: (provider: string, sid: string) =>
      storeCall(() => redis.zRange(sidKey(provider, sid), 0, -1)),

    forgetSid: (provider: string, sid: string) => storeCall(() => redis.del(sidKey(provider, sid))),

    /** True the first time a logout token's jti is seen (kept for `ttlMs`), false for a replay. */
    firstUse: (provider: string, jti: string, ttlMs: number) =>
      storeCall(
        async () =>
          (await redis.set(jtiKey(provider, jti), '1', {
            expiration: { type: 'PX', value: ttlMs },
            condition: 'NX',
          })) !== null,
      ),
  };
}

export type OidcLogins = ReturnType<typeof createOidcLogins>;
