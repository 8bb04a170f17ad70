import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  SignJWT,
} from 'jose';
import type { RedisClient } from '../../../common/src/redis.js';
import type { SessionAuth } from './sessions.js';

export const ASSERTION_TTL_SECONDS = 30;
const AUDIENCE = /^[A-Za-z0-9._-]{1,64}$/;

export const isAudience = (value: unknown): value is string =>
  typeof value === 'string' && AUDIENCE.test(value);

export interface AssertionSigner {
  /** A compact EdDSA JWT: sub, name, groups, email, aud, exp <= 30 s. Cached briefly per session and audience. */
  sign(sid: string, auth: SessionAuth, audience: string): Promise<string>;
  jwks(): Promise<{ keys: JWK[] }>;
}

interface KeyMaterial {
  privateKey: CryptoKey | Uint8Array;
  kid: string;
  publicJwk: JWK;
  /** The private JWK as stored in Redis. */
  raw: string;
}

/** How often an instance checks that Redis still holds the key it signs with. */
export const KEY_CHECK_MS = 30_000;

/**
 * Signs identity assertions for backends. The signing key lives in Redis (created once with SET NX
 * by whichever instance comes first), so every session-service instance signs with the same key
 * and publishes the same JWKS; whoever can read it could forge assertions, exactly as whoever can
 * write Redis could forge sessions: protect Redis accordingly (docs/security.md).
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
  now?: () => number;
  keyCheckMs?: number;
}): AssertionSigner {
  const { redis, issuer } = options;
  const now = options.now ?? Date.now;
  const keyCheckMs = options.keyCheckMs ?? KEY_CHECK_MS;
  const keyName = `${options.prefix}jwt:signing-key`;
  let material: Promise<KeyMaterial> | null = null;
  let checkedAt = 0;
  /** Public keys signed with before a switch, published until their tokens have expired. */
  let retired: Array<{ jwk: JWK; until: number }> = [];
  const cache = new Map<string, { token: string; until: number }>();

  async function materialOf(raw: string): Promise<KeyMaterial> {
    const jwk = JSON.parse(raw) as JWK;
    const { d: _private, ...publicOnly } = jwk;
    const kid = await calculateJwkThumbprint(publicOnly);
    return {
      privateKey: await importJWK({ ...jwk, alg: 'EdDSA' }, 'EdDSA'),
      kid,
      publicJwk: { ...publicOnly, kid, alg: 'EdDSA', use: 'sig' },
      raw,
    };
  }

  async function load(): Promise<KeyMaterial> {
    let raw = await redis.get(keyName);
    if (!raw) {
      const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
      const jwk = await exportJWK(privateKey);
      await redis.set(keyName, JSON.stringify(jwk), { condition: 'NX' });
      raw = await redis.get(keyName);
      if (!raw) throw new Error('signing key vanished');
    }
    checkedAt = now();
    return materialOf(raw);
  }

  /** Is the key in Redis still ours? Puts it back when gone, follows it when replaced. */
  async function recheck(current: KeyMaterial): Promise<KeyMaterial> {
    checkedAt = now();
    try {
      let raw = await redis.get(keyName);
      if (!raw) {
        await redis.set(keyName, current.raw, { condition: 'NX' });
        raw = await redis.get(keyName);
      }
      if (!raw || raw === current.raw) return current;
      const next = await materialOf(raw);
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

  return {
    async sign(sid, auth, audience) {
      const t = now();
      const cacheKey = `${sid}\u0000${audience}`;
      const hit = cache.get(cacheKey);
      // Reuse a token while it has at least 2/3 of its life left.
      if (hit && hit.until > t) return hit.token;
      const { privateKey, kid } = await key();
      const iat = Math.floor(t / 1000);
      const token = await new SignJWT({
        name: auth.username,
        groups: auth.groups,
        email: auth.email,
      })
        .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
        .setIssuer(issuer)
        .setSubject(auth.userId)
        .setAudience(audience)
        .setIssuedAt(iat)
        .setExpirationTime(iat + ASSERTION_TTL_SECONDS)
        .sign(privateKey);
      if (cache.size > 10_000) cache.clear();
      cache.set(cacheKey, { token, until: t + (ASSERTION_TTL_SECONDS * 1000) / 3 });
      return token;
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
