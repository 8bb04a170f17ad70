import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';
import { LRUCache } from 'lru-cache';
import { authenticationClaims } from '../../../common/src/authentication.js';
import type { Logger } from '../../../common/src/logger.js';
import type { RedisClient } from '../../../common/src/redis.js';
import { type Opened, type Sealer, UnreadableSealError } from './sealing.js';
import { authenticationOfSession, type SessionAuth } from './sessions.js';

export const ASSERTION_TTL_SECONDS = 30;
/** Tokens kept for reuse (per session and audience); the least recently used go first. */
const SIGNED_CACHE_MAX = 10_000;
const AUDIENCE = /^[A-Za-z0-9._-]{1,64}$/;

export const isAudience = (value: unknown): value is string =>
  typeof value === 'string' && AUDIENCE.test(value);

export interface AssertionSigner {
  /**
   * A compact EdDSA JWT: sub, name, groups, email, amr, acr, auth_time, aud, exp <= 30 s. Cached
   * briefly per session, audience, authentication and identity (a step-up or a changed group
   * signs anew).
   */
  sign(sid: string, auth: SessionAuth, audience: string): Promise<string>;
  /**
   * The same for an access token's use: sub, name, groups, email, and `tok` (the token's id: the
   * SHA-256 of the token, never the token) with `tok_kind` (`pat` or `sat`) in place of amr, acr
   * and auth_time (a token proves no sign-in).
   */
  signToken(
    token: { id: string; kind: 'personal' | 'service' },
    identity: { id: string; username: string; groups: string[]; email: string },
    audience: string,
  ): Promise<string>;
  jwks(): Promise<{ keys: JWK[] }>;
}

interface KeyMaterial {
  privateKey: CryptoKey | Uint8Array;
  kid: string;
  publicJwk: JWK;
  /** The private JWK (JSON), to seal again (put back, or seal with a new encryption key). */
  json: string;
  /** The sealed value as read from (or written to) Redis. */
  raw: string;
}

/** Replace the value of KEYS[1] by ARGV[2] only if it is still ARGV[1] (one key: Cluster-safe). */
const REPLACE_IF_UNCHANGED = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/** How often an instance checks that Redis still holds the key it signs with. */
export const KEY_CHECK_MS = 30_000;

/**
 * Signs identity assertions for backends. The signing key lives in Redis (created once with SET NX
 * by whichever instance comes first), so every session-service instance signs with the same key
 * and publishes the same JWKS. It is sealed there (`keys`: AES-256-GCM with a key derived from
 * SESSION_ENCRYPTION_KEY, the Redis key name as additional data), so a reader of Redis (a dump, a
 * backup, a replica) gets no private key. A key sealed with a previous SESSION_ENCRYPTION_KEY is
 * sealed again with the current one by the first instance that loads it. A value that does not
 * open (written in clear by an earlier version, altered, or sealed with a key no instance has)
 * is replaced by a new key and logged: never trusted, and a private key once stored in clear is
 * never used again.
 *
 * Every KEY_CHECK_MS an instance checks the key in Redis: gone (Redis restarted empty), it puts
 * its own back (SET NX); replaced (an instance started meanwhile made a new one), it switches to
 * it and keeps publishing the old public key until every token signed with it has expired. So
 * instances that disagree after a Redis loss agree again within KEY_CHECK_MS.
 */
export function createAssertionSigner(options: {
  redis: RedisClient;
  prefix: string;
  issuer: string;
  /** Seals the private key in Redis: createSealer(keys, 'signing-key'). */
  keys: Sealer;
  logger?: Pick<Logger, 'warn' | 'info'>;
  now?: () => number;
  keyCheckMs?: number;
  /** Most signed tokens kept for reuse (default 10,000). */
  cacheMax?: number;
}): AssertionSigner {
  const { redis, issuer } = options;
  const now = options.now ?? Date.now;
  const keyCheckMs = options.keyCheckMs ?? KEY_CHECK_MS;
  const keyName = `${options.prefix}jwt:signing-key`;
  let material: Promise<KeyMaterial> | null = null;
  let checkedAt = 0;
  /** Public keys signed with before a switch, published until their tokens have expired. */
  let retired: Array<{ jwk: JWK; until: number }> = [];
  // Reuse is ours to time (`until`, on the injectable clock); lru-cache only caps the count.
  const cache = new LRUCache<string, { token: string; until: number }>({
    max: options.cacheMax ?? SIGNED_CACHE_MAX,
  });

  const { keys, logger } = options;

  async function materialOf(json: string, raw: string): Promise<KeyMaterial> {
    const jwk = JSON.parse(json) as JWK;
    const { d: _private, ...publicOnly } = jwk;
    const kid = await calculateJwkThumbprint(publicOnly);
    return {
      privateKey: await importJWK({ ...jwk, alg: 'EdDSA' }, 'EdDSA'),
      kid,
      publicJwk: { ...publicOnly, kid, alg: 'EdDSA', use: 'sig' },
      json,
      raw,
    };
  }

  /** The private JWK in the sealed value `raw`; null (and logged) when it does not open. */
  function open(raw: string): Opened | null {
    try {
      return keys.open(raw, keyName);
    } catch (err) {
      if (!(err instanceof UnreadableSealError)) throw err;
      logger?.warn(
        { key: keyName, reason: err.reason },
        'signing key in Redis unreadable (written in clear, altered, or sealed with an unknown key): replacing it',
      );
      return null;
    }
  }

  /** Put `next` where `seen` is, unless someone changed it meanwhile. Returns what Redis holds. */
  async function replace(seen: string, next: string): Promise<string | null> {
    await redis.eval(REPLACE_IF_UNCHANGED, { keys: [keyName], arguments: [seen, next] });
    return redis.get(keyName);
  }

  async function newKeyJson(): Promise<string> {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    return JSON.stringify(await exportJWK(privateKey));
  }

  async function load(): Promise<KeyMaterial> {
    for (let attempt = 0; attempt < 3; attempt++) {
      let raw = await redis.get(keyName);
      if (!raw) {
        await redis.set(keyName, keys.seal(await newKeyJson(), keyName), { condition: 'NX' });
        raw = await redis.get(keyName);
        if (!raw) throw new Error('signing key vanished');
      }
      const opened = open(raw);
      if (!opened) {
        await replace(raw, keys.seal(await newKeyJson(), keyName));
        continue; // read again what won
      }
      if (!opened.current) {
        // Sealed with a previous SESSION_ENCRYPTION_KEY: seal it with the current one.
        const resealed = keys.seal(opened.plaintext, keyName);
        raw = (await replace(raw, resealed)) ?? resealed;
        if (raw !== resealed) continue;
      }
      checkedAt = now();
      return materialOf(opened.plaintext, raw);
    }
    throw new Error('signing key keeps changing');
  }

  /** Is the key in Redis still ours? Puts it back when gone, follows it when replaced. */
  async function recheck(current: KeyMaterial): Promise<KeyMaterial> {
    checkedAt = now();
    try {
      let raw = await redis.get(keyName);
      if (!raw) {
        await redis.set(keyName, keys.seal(current.json, keyName), { condition: 'NX' });
        raw = await redis.get(keyName);
      }
      if (!raw || raw === current.raw) return current;
      const opened = open(raw);
      if (!opened) {
        // Not ours to trust: put ours back (unless someone else got there first).
        const back = keys.seal(current.json, keyName);
        if ((await replace(raw, back)) === back) {
          const kept = { ...current, raw: back };
          material = Promise.resolve(kept);
          return kept;
        }
        return current;
      }
      const next = await materialOf(opened.plaintext, raw);
      if (next.kid === current.kid) {
        // The same key, sealed again by another instance. Sealed with a key that is previous to
        // us: seal it with ours. During a rotation's rolling restart instances of two steps may
        // take turns (the same private key each time); once every instance has the new key
        // first, the last seal is with it, so dropping the old key later loses nothing.
        const kept = opened.current
          ? raw
          : ((await replace(raw, keys.seal(opened.plaintext, keyName))) ?? raw);
        const same = { ...current, raw: kept };
        material = Promise.resolve(same);
        return same;
      }
      const t = now();
      retired = [
        ...retired.filter((r) => r.until > t && r.jwk.kid !== next.kid),
        { jwk: current.publicJwk, until: t + ASSERTION_TTL_SECONDS * 1000 * 2 },
      ];
      cache.clear(); // tokens of the old key: sign anew
      material = Promise.resolve(next);
      return next;
    } catch {
      return current; // Redis unreachable: keep signing with what we have
    }
  }

  async function key(): Promise<KeyMaterial> {
    if (!material) {
      material = load().catch((err) => {
        material = null; // try again next time (Redis may have been down)
        throw err;
      });
    }
    const current = await material;
    return now() - checkedAt >= keyCheckMs ? recheck(current) : current;
  }

  /**
   * A compact JWT of `claims` for `subject` and `audience`, reused while it has at least 2/3 of
   * its life left. `cacheKey` names everything the token says (a changed group or a step-up signs
   * anew, so a backend never reads a group the headers no longer carry).
   */
  async function signed(
    cacheKey: ReadonlyArray<string | number>,
    subject: string,
    audience: string,
    claims: JWTPayload,
  ): Promise<string> {
    const t = now();
    const keyOf = cacheKey.join('\u0000');
    const hit = cache.get(keyOf);
    if (hit && hit.until > t) return hit.token;
    const { privateKey, kid } = await key();
    const iat = Math.floor(t / 1000);
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
      .setIssuer(issuer)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ASSERTION_TTL_SECONDS)
      .sign(privateKey);
    cache.set(keyOf, { token, until: t + (ASSERTION_TTL_SECONDS * 1000) / 3 });
    return token;
  }

  return {
    async sign(sid, auth, audience) {
      const authentication = authenticationOfSession(auth);
      const { amr, authTime } = authentication;
      return signed(
        [
          'ses',
          sid,
          audience,
          authTime,
          amr.join(),
          auth.username ?? '',
          auth.email ?? '',
          ...(auth.groups ?? []),
        ],
        auth.userId,
        audience,
        {
          name: auth.username,
          groups: auth.groups,
          email: auth.email,
          ...authenticationClaims(authentication),
        },
      );
    },
    async signToken(tokenRecord, identity, audience) {
      return signed(
        ['tok', tokenRecord.id, audience, identity.username, identity.email, ...identity.groups],
        identity.id,
        audience,
        {
          name: identity.username,
          groups: identity.groups,
          email: identity.email,
          tok: tokenRecord.id,
          tok_kind: tokenRecord.kind === 'service' ? 'sat' : 'pat',
        },
      );
    },
    async jwks() {
      const current = await key();
      const t = now();
      return {
        keys: [
          current.publicJwk,
          ...retired.filter((r) => r.until > t && r.jwk.kid !== current.kid).map((r) => r.jwk),
        ],
      };
    },
  };
}
