import { StoreUnavailableError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/logger.js';
import type { RedisClient } from '../../../common/src/redis.js';
import { storedSessionId } from '../../../common/src/session-id.js';
import { publishRevocations } from './revocations.js';
import { type Sealer, UnreadableSealError } from './sealing.js';

/** What a session holds: who, since when, from where. Never a password. */
export interface SessionAuth {
  userId: string;
  username: string;
  groups: string[];
  email: string;
  /** ms since the epoch: the absolute timeout counts from here and nothing moves it. */
  createdAt: number;
  remember?: boolean;
  ip?: string;
  ua?: string;
}

export interface Lifetimes {
  idleSeconds: number;
  absoluteSeconds: number;
  /** "Remember me" limits; 0 turns the option off. */
  rememberIdleSeconds: number;
  rememberAbsoluteSeconds: number;
}

export interface ValidSession {
  /** The id the cookie carries: a secret, never written to Redis. */
  sid: string;
  /** The session's name in Redis and on the revocation feed (storedSessionId(sid)). */
  id: string;
  auth: SessionAuth;
  /** ms since the epoch: when the session ends if it stays idle (never past the absolute limit). */
  expiresAt: number;
  absoluteExpiresAt: number;
}

/** How long a per-user index entry may exist before its session does (a login in progress). */
export const LOGIN_GRACE_MS = 10_000;

export interface SessionSummary {
  /** The stored id (a hash of the session id), never the session id itself. */
  id: string;
  createdAt: number;
  lastSeenAt: number;
  ip: string;
  userAgent: string;
  expiresAt: number;
}

/**
 * Milliseconds this session may still live: the idle allowance, capped by what is left of the
 * absolute lifetime. This is the Redis TTL we set, so Redis itself forgets idle sessions.
 */
export function remainingMs(auth: SessionAuth, lifetimes: Lifetimes, now: number): number {
  const idle = (auth.remember ? lifetimes.rememberIdleSeconds : lifetimes.idleSeconds) * 1000;
  const absolute =
    (auth.remember ? lifetimes.rememberAbsoluteSeconds : lifetimes.absoluteSeconds) * 1000;
  return Math.min(idle, auth.createdAt + absolute - now);
}

export function absoluteExpiry(auth: SessionAuth, lifetimes: Lifetimes): number {
  const absolute = auth.remember ? lifetimes.rememberAbsoluteSeconds : lifetimes.absoluteSeconds;
  return auth.createdAt + absolute * 1000;
}

/** The auth of a session record's JSON (decrypted); null when it holds no valid one. */
export function parseRecord(raw: string | null): SessionAuth | null {
  if (!raw) return null;
  try {
    const record = JSON.parse(raw) as { auth?: SessionAuth };
    const auth = record.auth;
    if (!auth || typeof auth.userId !== 'string' || typeof auth.createdAt !== 'number') return null;
    return auth;
  } catch {
    return null;
  }
}

export interface SessionStoreOptions {
  redis: RedisClient;
  lifetimes: Lifetimes;
  /**
   * Opens session records (createSealer(keys, 'session-record')). Needed by everything that reads
   * a record (validate, list, owner); revokeAll alone (the users CLI) works without it.
   */
  records?: Sealer;
  /** Told about records that do not open (tampered, swapped, unknown key). */
  logger?: Pick<Logger, 'warn'>;
  /** Key prefix shared with the express-session store. */
  prefix?: string;
  now?: () => number;
  /**
   * Told about sessions ended before their time (destroy, revokeAll, found expired), after they
   * are deleted, so gateways drop them from their caches at once. Default: publish them on the
   * revocation channel (domain/revocations.ts), which every writer (service, users CLI) shares.
   * Sessions are named by their stored ids (storedSessionId), never by the cookie's id.
   */
  onRevoked?: (ids: readonly string[]) => Promise<void>;
  /**
   * The idle timeout slides at most this often per session (and process): validate reads the
   * session every time, but writes (PEXPIRE, the index's last-seen) only when the last slide is
   * older than this. Default: 1 s, or a twentieth of the idle timeout when that is shorter. A
   * busy session may thus end up to this much before its idle timeout, never after it.
   */
  slideIntervalMs?: number;
}

/**
 * A session record as Redis holds it: sealed (domain/sealing.ts) with its stored id as context,
 * so a record copied under another session's key does not open. Null when there is no record or
 * it does not open (forged, swapped, written in clear by an older version, or under a key no
 * longer configured): that is no session, and `onUnreadable` says why. Never the record itself.
 */
export function openRecord(
  sealer: Sealer,
  id: string,
  raw: string | null,
  onUnreadable?: (id: string, err: UnreadableSealError) => void,
): string | null {
  if (!raw) return null;
  try {
    return sealer.open(raw, id).plaintext;
  } catch (err) {
    if (!(err instanceof UnreadableSealError)) throw err;
    onUnreadable?.(id, err);
    return null;
  }
}

/** Log a session record that did not open (by stored id, never the session id). */
export const logUnreadable =
  (logger: Pick<Logger, 'warn'> | undefined) => (id: string, err: UnreadableSealError) =>
    logger?.warn(
      { session: id, reason: err.reason },
      'session record unreadable (forged, moved, or sealed with an unknown key): refused',
    );

/** Sessions whose last slide this process remembers; past it, the memory starts over. */
const SLIDE_MEMORY = 100_000;

export type SessionStore = ReturnType<typeof createSessionStore>;

/**
 * Session reads and the per-user index. Every command names one key, so all of this works on
 * Redis Cluster; the per-user index key carries the user id as a hash tag.
 *
 * Methods that take a `sid` take the cookie's id and hash it (storedSessionId); Redis keys, index
 * members and revocation events carry only that hash (`id`), so a Redis reader gets no session.
 */
export function createSessionStore(options: SessionStoreOptions) {
  const { redis, lifetimes } = options;
  const prefix = options.prefix ?? 'gh:';
  const now = options.now ?? Date.now;
  const onRevoked =
    options.onRevoked ?? ((ids: readonly string[]) => publishRevocations(redis, prefix, ids));
  /** The key of the session whose stored id is `id`. */
  const sessionKey = (id: string) => `${prefix}sess:${id}`;
  const userKey = (userId: string) => `${prefix}user:{${userId}}:sessions`;
  const slideIntervalMs =
    options.slideIntervalMs ??
    Math.min(1000, (Math.min(lifetimes.idleSeconds, lifetimes.rememberIdleSeconds) * 1000) / 20);
  /** id -> when this process last slid its idle timeout (a hint: forgetting costs one write). */
  const slidAt = new Map<string, number>();
  const userIndexTtlMs =
    Math.max(lifetimes.absoluteSeconds, lifetimes.rememberAbsoluteSeconds) * 1000;

  const onUnreadable = logUnreadable(options.logger);
  /** The auth in the record `raw` of the session `id`; null: none, or it does not open. */
  function authOf(id: string, raw: string | null): SessionAuth | null {
    if (!raw) return null;
    if (!options.records) throw new Error('session records cannot be read without a sealer');
    return parseRecord(openRecord(options.records, id, raw, onUnreadable));
  }

  async function guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new StoreUnavailableError(err);
    }
  }

  async function destroyById(id: string, userId?: string): Promise<boolean> {
    slidAt.delete(id);
    return guard(async () => {
      const deleted = await redis.del(sessionKey(id));
      if (userId) await redis.zRem(userKey(userId), id);
      await onRevoked([id]);
      return deleted > 0;
    });
  }

  return {
    sessionKey,
    userKey,

    /**
     * The validate path: one GET, then slide the idle timeout (PEXPIRE never creates a key, so a
     * session destroyed meanwhile stays destroyed) and note "last seen" in the user's index
     * (ZADD XX: a revoked entry is never re-added), at most every slideIntervalMs per session.
     * expiresAt is when Redis forgets the session if it stays idle, as of the last slide.
     * Returns null for no session.
     */
    async validate(sid: string): Promise<ValidSession | null> {
      const id = storedSessionId(sid);
      return guard(async () => {
        const auth = authOf(id, await redis.get(sessionKey(id)));
        if (!auth) return null;
        const t = now();
        const left = remainingMs(auth, lifetimes, t);
        if (left <= 0) {
          slidAt.delete(id);
          await Promise.all([redis.del(sessionKey(id)), redis.zRem(userKey(auth.userId), id)]);
          await onRevoked([id]);
          return null;
        }
        const absoluteExpiresAt = absoluteExpiry(auth, lifetimes);
        const last = slidAt.get(id);
        if (last !== undefined && t - last < slideIntervalMs && t >= last)
          return {
            sid,
            id,
            auth,
            expiresAt: last + remainingMs(auth, lifetimes, last),
            absoluteExpiresAt,
          };
        await Promise.all([
          redis.pExpire(sessionKey(id), left),
          redis.zAdd(userKey(auth.userId), { score: t, value: id }, { condition: 'XX' }),
        ]);
        if (slidAt.size >= SLIDE_MEMORY) slidAt.clear();
        slidAt.set(id, t);
        return { sid, id, auth, expiresAt: t + left, absoluteExpiresAt };
      });
    },

    /**
     * Before a login creates its session: index it as pending (a negative score, minus the
     * time), so a listing meanwhile neither shows nor prunes it; `confirm` makes it live.
     */
    async register(sid: string, auth: SessionAuth): Promise<void> {
      await guard(async () => {
        await redis.zAdd(userKey(auth.userId), { score: -now(), value: storedSessionId(sid) });
        await redis.pExpire(userKey(auth.userId), userIndexTtlMs);
      });
    },

    /** Destroy one session, by the cookie's id. True when it existed. */
    async destroy(sid: string, userId?: string): Promise<boolean> {
      return destroyById(storedSessionId(sid), userId);
    },

    /** Destroy one session by its stored id (a SessionSummary's `id`). True when it existed. */
    destroyById,

    /** The user's live sessions, newest activity first; entries whose session expired are pruned. */
    async list(userId: string): Promise<SessionSummary[]> {
      return guard(async () => {
        const entries = await redis.zRangeWithScores(userKey(userId), 0, -1, { REV: true });
        const records = await Promise.all(entries.map((e) => redis.get(sessionKey(e.value))));
        const t = now();
        const out: SessionSummary[] = [];
        const dead: string[] = [];
        entries.forEach((entry, i) => {
          const auth = authOf(entry.value, records[i] ?? null);
          // A pending entry (negative score) is a login in progress: leave it alone unless it
          // is older than LOGIN_GRACE_MS (that login failed half-way).
          const pending = entry.score < 0;
          if (pending && t + entry.score < LOGIN_GRACE_MS) return;
          if (pending || !auth || auth.userId !== userId || remainingMs(auth, lifetimes, t) <= 0) {
            dead.push(entry.value);
            return;
          }
          out.push({
            id: entry.value,
            createdAt: auth.createdAt,
            lastSeenAt: entry.score,
            ip: auth.ip ?? '',
            userAgent: auth.ua ?? '',
            expiresAt: Math.min(
              entry.score + remainingMs(auth, lifetimes, entry.score),
              absoluteExpiry(auth, lifetimes),
            ),
          });
        });
        if (dead.length > 0) await redis.zRem(userKey(userId), dead);
        return out;
      });
    },

    /** Revoke every session of a user, or every one but `exceptSid`. Returns how many ended. */
    async revokeAll(userId: string, exceptSid?: string): Promise<number> {
      const except = exceptSid === undefined ? undefined : storedSessionId(exceptSid);
      return guard(async () => {
        const ids = (await redis.zRange(userKey(userId), 0, -1)).filter((s) => s !== except);
        // Unindex first: a login racing with us then finds its entry gone after creating its
        // session (see `indexed`) and undoes itself, so no session survives outside the index.
        if (ids.length > 0) await redis.zRem(userKey(userId), ids);
        // One DEL per key: keys of different sessions live in different Cluster slots.
        const deleted = await Promise.all(ids.map((s) => redis.del(sessionKey(s))));
        if (ids.length > 0) await onRevoked(ids);
        return deleted.reduce((a, b) => a + b, 0);
      });
    },

    /**
     * After a login created its session: turn its pending index entry into a live one. False
     * when a concurrent "end all sessions" removed the entry meanwhile (the login must undo).
     */
    async confirm(sid: string, userId: string): Promise<boolean> {
      return guard(async () => {
        const changed = await redis.zAdd(
          userKey(userId),
          { score: now(), value: storedSessionId(sid) },
          { condition: 'XX', CH: true },
        );
        return changed === 1;
      });
    },

    /** Does the session `sid` belong to `userId`? (For revoking by id without leaking others'.) */
    async owner(sid: string): Promise<string | null> {
      const id = storedSessionId(sid);
      return guard(async () => authOf(id, await redis.get(sessionKey(id)))?.userId ?? null);
    },
  };
}
