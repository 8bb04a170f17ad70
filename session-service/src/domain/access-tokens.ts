import { createHash, randomBytes } from 'node:crypto';
import { GatehouseError } from '../../../common/src/errors.js';
import type { RedisClient } from '../../../common/src/redis.js';
import { storedSessionId } from '../../../common/src/session-id.js';
import { type Sealer, UnreadableSealError } from './sealing.js';
import { storeCall } from './store-call.js';

/**
 * Access tokens: what scripts, CLIs, CI jobs and services present instead of a session cookie
 * (`Authorization: Bearer <token>`). Personal access tokens belong to a user and are made by them;
 * service account tokens belong to a service account an admin made. The one owner of the token
 * record.
 *
 * A token is `gatehouse_pat_` (personal) or `gatehouse_sat_` (service account), then 43
 * characters of base64url (256 random bits), then `_` and 6 characters of a CRC-32 check of
 * what comes before. The prefix lets secret scanners find leaked ones; the check lets them (and
 * us, before asking Redis) tell a token from a typo. A token is shown once, when made.
 *
 * In Redis, under the key prefix:
 * - `<prefix>tok:<stored id>`: the record, sealed (purpose `access-token`), expiring with the
 *   token. The stored id is the SHA-256 of the token (common/src/session-id.ts): Redis never
 *   holds a usable token, and a gateway names a token the same way from the header it reads, so
 *   a revocation (published under the stored id) drops it from every gateway's cache.
 * - `<prefix>toks:<owner id>`: a sorted set of the owner's stored ids, scored by expiry, for the
 *   list, revoke-all and the cap.
 */
export const TOKEN_PREFIXES = { personal: 'gatehouse_pat_', service: 'gatehouse_sat_' } as const;
export type TokenKind = keyof typeof TOKEN_PREFIXES;
/** How a token looks: what the validate paths accept before asking Redis. */
export const TOKEN_PATTERN = /^gatehouse_(pat|sat)_[A-Za-z0-9_-]{43}_[A-Za-z0-9]{6}$/;
/** Tokens one owner may hold at once. */
export const TOKENS_PER_OWNER_MAX = 100;
export const TOKEN_NAME_MAX = 64;
/** "Last used" is written at most this often per token. */
const LAST_USED_EVERY_MS = 60_000;

export interface TokenScope {
  /** Route ids the token may reach (the gateway checks them); absent: any route. */
  routes?: string[];
  /** Groups the token carries, a subset of its owner's; absent: the owner's groups. */
  groups?: string[];
  /** Only GET, HEAD and OPTIONS. */
  readOnly?: boolean;
}

export interface TokenRecord {
  /** The stored id (SHA-256 of the token): in lists, on the revocation feed, in JWT claims. */
  id: string;
  kind: TokenKind;
  ownerId: string;
  name: string;
  scope: TokenScope;
  createdAt: number;
  expiresAt: number;
  lastUsedAt?: number;
  lastUsedFrom?: string;
}

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

function crc32(text: string): number {
  let crc = -1;
  for (const byte of Buffer.from(text))
    crc = (CRC_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

const check = (body: string) => crc32(body).toString(36).padStart(6, '0').slice(-6);

/** A new token of `kind`: prefix, 256 random bits, check. */
export function newToken(kind: TokenKind): string {
  const body = `${TOKEN_PREFIXES[kind]}${randomBytes(32).toString('base64url')}`;
  return `${body}_${check(body)}`;
}

/** Whether `value` is shaped like a token and its check matches (no Redis asked). */
export function looksLikeToken(value: string): boolean {
  if (!TOKEN_PATTERN.test(value)) return false;
  const cut = value.lastIndexOf('_');
  return check(value.slice(0, cut)) === value.slice(cut + 1);
}

export const storedTokenId = (token: string) => storedSessionId(token);

export interface AccessTokens {
  /** Make a token; returns it (shown once) with its record. Throws BAD_REQUEST past the cap. */
  create(
    input: Omit<TokenRecord, 'id' | 'createdAt'>,
  ): Promise<{ token: string; record: TokenRecord }>;
  /** The live record of a presented token, noting its use; null when unknown or expired. */
  use(token: string, from: string): Promise<TokenRecord | null>;
  /** The owner's live tokens, newest first (expired ones pruned). */
  list(ownerId: string): Promise<TokenRecord[]>;
  /** End one token of the owner's by its stored id; published. False when it was not theirs. */
  revoke(ownerId: string, id: string): Promise<boolean>;
  /** End every token of the owner; published. How many ended. */
  revokeAll(ownerId: string): Promise<number>;
}

const recordKeyOf = (prefix: string, id: string) => `${prefix}tok:${id}`;
const ownerKeyOf = (prefix: string, ownerId: string) =>
  `${prefix}toks:${createHash('sha256').update(ownerId).digest('base64url').slice(0, 22)}`;

/**
 * Ending every token of an owner, which needs no key (records are deleted, never opened): what
 * the users CLI does when it disables, removes or changes the password of a user. Published as
 * createAccessTokens' revokeAll is.
 */
export function createTokenRevoker(options: {
  redis: RedisClient;
  prefix: string;
  onRevoked?: (ids: readonly string[]) => Promise<void>;
}) {
  const { redis, prefix } = options;
  /** End these tokens of the owner; how many were live. */
  async function end(ownerId: string, ids: readonly string[]): Promise<number> {
    let ended = 0;
    for (const id of ids) if ((await redis.del(recordKeyOf(prefix, id))) === 1) ended++;
    if (ids.length > 0) await redis.zRem(ownerKeyOf(prefix, ownerId), [...ids]);
    if (ids.length > 0) await options.onRevoked?.(ids);
    return ended;
  }
  return {
    end,
    revokeAll: (ownerId: string) =>
      storeCall(async () => {
        const key = ownerKeyOf(prefix, ownerId);
        const ids = (await redis.zRange(key, 0, -1)) as string[];
        const ended = await end(ownerId, ids);
        await redis.del(key);
        return ended;
      }),
  };
}

export function createAccessTokens(options: {
  redis: RedisClient;
  /** createSealer(keys, 'access-token'). */
  sealer: Sealer;
  prefix: string;
  now?: () => number;
  /** Told about ended tokens by stored id (the revocation channel, as for sessions). */
  onRevoked?: (ids: readonly string[]) => Promise<void>;
  /** Told about each token made (its owner must outlive it: external-users.ts keepUntil). */
  onCreated?: (record: TokenRecord) => Promise<void>;
}): AccessTokens {
  const { redis, sealer, prefix } = options;
  const now = options.now ?? Date.now;
  const recordKey = (id: string) => recordKeyOf(prefix, id);
  const ownerKey = (ownerId: string) => ownerKeyOf(prefix, ownerId);
  const revoker = createTokenRevoker(options);
  const end = revoker.end;

  async function read(id: string): Promise<TokenRecord | null> {
    const key = recordKey(id);
    const raw = await redis.get(key);
    if (raw === null) return null;
    try {
      const record = JSON.parse(sealer.open(raw, key).plaintext) as TokenRecord;
      return record.expiresAt > now() ? record : null;
    } catch (err) {
      if (err instanceof UnreadableSealError) return null;
      throw err;
    }
  }

  /** NX for a new token, XX for an update (a token revoked meanwhile is never written back). */
  async function write(record: TokenRecord, condition: 'NX' | 'XX'): Promise<boolean> {
    const key = recordKey(record.id);
    const ttl = record.expiresAt - now();
    if (ttl <= 0) return false;
    const reply = await redis.set(key, sealer.seal(JSON.stringify(record), key), {
      expiration: { type: 'PX', value: ttl },
      condition,
    });
    return reply !== null;
  }

  async function live(ownerId: string): Promise<string[]> {
    const key = ownerKey(ownerId);
    const entries = await redis.zRangeWithScores(key, 0, -1);
    const t = now();
    const gone = entries.filter((e) => e.score <= t).map((e) => e.value);
    if (gone.length > 0) await redis.zRem(key, gone);
    return entries.filter((e) => e.score > t).map((e) => e.value);
  }

  return {
    create: (input) =>
      storeCall(async () => {
        if ((await live(input.ownerId)).length >= TOKENS_PER_OWNER_MAX)
          throw new GatehouseError('BAD_REQUEST', {
            message: `At most ${TOKENS_PER_OWNER_MAX} tokens at once: revoke one first.`,
          });
        const token = newToken(input.kind);
        const record: TokenRecord = { ...input, id: storedTokenId(token), createdAt: now() };
        const key = ownerKey(input.ownerId);
        await redis.zAdd(key, { score: record.expiresAt, value: record.id });
        const longest = await redis.zRangeWithScores(key, -1, -1);
        await redis.pExpire(key, Math.max(1, (longest[0]?.score ?? record.expiresAt) - now()));
        await write(record, 'NX');
        await options.onCreated?.(record);
        return { token, record };
      }),

    use: (token, from) =>
      storeCall(async () => {
        if (!looksLikeToken(token)) return null;
        const record = await read(storedTokenId(token));
        if (!record) return null;
        const t = now();
        if (record.lastUsedAt === undefined || t - record.lastUsedAt >= LAST_USED_EVERY_MS) {
          const used = { ...record, lastUsedAt: t, lastUsedFrom: from.slice(0, 64) };
          await write(used, 'XX');
          return used;
        }
        return record;
      }),

    list: (ownerId) =>
      storeCall(async () => {
        const records: TokenRecord[] = [];
        for (const id of await live(ownerId)) {
          const record = await read(id);
          if (record) records.push(record);
        }
        return records.sort((a, b) => b.createdAt - a.createdAt);
      }),

    revoke: (ownerId, id) =>
      storeCall(async () => {
        const record = await read(id);
        if (!record || record.ownerId !== ownerId) return false;
        return (await end(ownerId, [id])) === 1;
      }),

    revokeAll: revoker.revokeAll,
  };
}
