import type { Amr, Authentication } from '../../../common/src/authentication.js';
import { GatehouseError, isGatehouseError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/logger.js';
import { escapeGlob, type RedisClient } from '../../../common/src/redis.js';
import { storedSessionId } from '../../../common/src/session-id.js';
import { publishChanges, publishRevocations } from './revocation-channel.js';
import type { Sealer } from './sealing.js';
import {
  createExpiry,
  endOneSession,
  logUnreadable,
  openRecord,
  parseRecord,
  recordJson,
  remainingMs,
  storedIdExcept,
  summaryOf,
} from './session-records.js';
import {
  authenticationOfSession,
  LOGIN_GRACE_MS,
  loginInterrupted,
  type SessionAuth,
  type SessionRepository,
  type SessionRepositoryOptions,
  type SessionSummary,
  steppedUp,
  type ValidSession,
} from './session-repository.js';
import { storeCall } from './store-call.js';

export interface RedisSessionRepositoryOptions extends SessionRepositoryOptions {
  redis: RedisClient;
  /**
   * Seals and opens session records (createSealer(keys, 'session-record')). Needed by everything
   * that writes or reads a record; deleteUserSessions alone (the users CLI) works without it.
   */
  records?: Sealer;
  /** Told about records that do not open (tampered, swapped, unknown key). */
  logger?: Pick<Logger, 'warn'>;
  /** Key prefix (REDIS_PREFIX). */
  prefix?: string;
}

export type RedisSessionRepository = ReturnType<typeof createRedisSessionRepository>;

/**
 * The session repository on Redis (standalone, Cluster, Sentinel: common/src/redis.ts).
 *
 * Keys: `<prefix>sess:<stored id>` holds the sealed record with the session's remaining life as
 * its TTL, so Redis itself forgets idle sessions; `<prefix>user:{<user id>}:sessions` is the
 * per-user index, a sorted set of stored ids scored by last activity (negative while a login is
 * pending). Every command names one key, so all of it works on a Cluster (the index carries the
 * user id as a hash tag). Only stored ids reach Redis: a Redis reader gets no session.
 *
 * No resurrection: only createSession makes a record (SET NX); every other write is SET XX or
 * PEXPIRE, which do nothing to a deleted key, so a request that loaded a session before a logout
 * cannot write it back (connect-redis #286, express-session #793).
 */
export function createRedisSessionRepository(options: RedisSessionRepositoryOptions) {
  const { redis, lifetimes } = options;
  const prefix = options.prefix ?? 'gh:';
  const now = options.now ?? Date.now;
  const onRevoked =
    options.onRevoked ?? ((ids: readonly string[]) => publishRevocations(redis, prefix, ids));
  const onChanged =
    options.onChanged ?? ((ids: readonly string[]) => publishChanges(redis, prefix, ids));
  /** The key of the session whose stored id is `id`. */
  const sessionKey = (id: string) => `${prefix}sess:${id}`;
  const userKey = (userId: string) => `${prefix}user:{${userId}}:sessions`;
  const expiry = createExpiry(options, deleteById);
  const { slides } = expiry;
  const userIndexTtlMs =
    Math.max(lifetimes.absoluteSeconds, lifetimes.rememberAbsoluteSeconds) * 1000;
  const onUnreadable = logUnreadable(options.logger);

  function sealer(): Sealer {
    if (!options.records) throw new Error('session records need a sealer (records)');
    return options.records;
  }
  /** The auth in the record `raw` of the session `id`; null: none, or it does not open. */
  const authOf = (id: string, raw: string | null): SessionAuth | null =>
    raw ? parseRecord(openRecord(sealer(), id, raw, onUnreadable)) : null;
  const seal = (id: string, auth: SessionAuth) => sealer().seal(recordJson(auth), id);

  async function deleteById(id: string, userId?: string): Promise<boolean> {
    slides.forget(id);
    return storeCall(async () => {
      const [deleted] = await Promise.all([
        redis.del(sessionKey(id)),
        userId ? redis.zRem(userKey(userId), id) : 0,
      ]);
      if (deleted > 0) await onRevoked([id]);
      return deleted > 0;
    });
  }

  /**
   * Write `auth` over the live record of `id` with the time it has left: SET XX, so a session
   * ended meanwhile stays ended (never created here). False when it is gone or ran out.
   */
  async function rewrite(id: string, auth: SessionAuth): Promise<boolean> {
    const left = await expiry.timeLeft(id, auth);
    if (left === 0) return false;
    return storeCall(async () => {
      const reply = await redis.set(sessionKey(id), seal(id, auth), {
        expiration: { type: 'PX', value: left },
        condition: 'XX',
      });
      return reply !== null;
    });
  }

  async function createSession(sid: string, auth: SessionAuth): Promise<void> {
    const id = storedSessionId(sid);
    const index = userKey(auth.userId);
    let created = false;
    try {
      // Indexed as pending (a negative score, minus the time) before the record exists, so a
      // listing meanwhile neither shows nor prunes it, and "end all sessions" sees it.
      await redis.zAdd(index, { score: -now(), value: id });
      await redis.pExpire(index, userIndexTtlMs);
      const reply = await redis.set(sessionKey(id), seal(id, auth), {
        expiration: { type: 'PX', value: Math.max(1, remainingMs(auth, lifetimes, now())) },
        condition: 'NX',
      });
      // NX refused: an id collision (never with 256 random bits) must not become a login.
      if (reply === null) throw new Error('session id already exists');
      created = true;
      // Live now, unless "end all sessions" removed the entry meanwhile: then undo (below).
      const changed = await redis.zAdd(
        index,
        { score: now(), value: id },
        { condition: 'XX', CH: true },
      );
      if (changed !== 1) throw loginInterrupted();
    } catch (err) {
      slides.forget(id);
      await Promise.all([created ? redis.del(sessionKey(id)) : 0, redis.zRem(index, id)]).catch(
        () => {},
      );
      throw isGatehouseError(err)
        ? err
        : new GatehouseError('SESSION_STORE_UNAVAILABLE', { cause: err });
    }
  }

  const repository = {
    createSession,

    async validateSession(sid: string): Promise<ValidSession | null> {
      const id = storedSessionId(sid);
      return storeCall(async () => {
        const auth = authOf(id, await redis.get(sessionKey(id)));
        if (!auth) return null;
        // PEXPIRE never creates a key; ZADD XX never re-adds a revoked entry.
        return expiry.validate(sid, id, auth, (left, t) =>
          Promise.all([
            redis.pExpire(sessionKey(id), left),
            redis.zAdd(userKey(auth.userId), { score: t, value: id }, { condition: 'XX' }),
          ]),
        );
      });
    },

    async getSession(sid: string): Promise<SessionAuth | null> {
      const id = storedSessionId(sid);
      return storeCall(async () => {
        const auth = authOf(id, await redis.get(sessionKey(id)));
        return auth && remainingMs(auth, lifetimes, now()) > 0 ? auth : null;
      });
    },

    updateSession: (sid: string, auth: SessionAuth) => rewrite(storedSessionId(sid), auth),

    async stepUp(sid: string, methods: readonly Amr[], t: number): Promise<Authentication | null> {
      const id = storedSessionId(sid);
      const current = await storeCall(async () => authOf(id, await redis.get(sessionKey(id))));
      if (!current) return null;
      const next = steppedUp(current, methods, t);
      if (!(await rewrite(id, next))) return null;
      await storeCall(() => onChanged([id]));
      return authenticationOfSession(next);
    },

    ...endOneSession(deleteById),

    async deleteUserSessions(userId: string, exceptSid?: string): Promise<number> {
      const except = storedIdExcept(exceptSid);
      return storeCall(async () => {
        const ids = (await redis.zRange(userKey(userId), 0, -1)).filter((s) => s !== except);
        if (ids.length === 0) return 0;
        // Unindex first: a login racing with us then finds its entry gone after creating its
        // session (createSession) and undoes itself, so no session survives outside the index.
        await redis.zRem(userKey(userId), ids);
        for (const id of ids) slides.forget(id);
        // One DEL per key: keys of different sessions live in different Cluster slots.
        const deleted = await Promise.all(ids.map((s) => redis.del(sessionKey(s))));
        await onRevoked(ids);
        return deleted.reduce((a, b) => a + b, 0);
      });
    },

    async listUserSessions(userId: string): Promise<SessionSummary[]> {
      return storeCall(async () => {
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
          if (pending || !auth || auth.userId !== userId || remainingMs(auth, lifetimes, t) <= 0)
            dead.push(entry.value);
          else out.push(summaryOf(entry.value, auth, entry.score, lifetimes));
        });
        if (dead.length > 0) await redis.zRem(userKey(userId), dead);
        return out;
      });
    },
  } satisfies SessionRepository;

  return Object.assign(repository, {
    /** The key format, for tests and tools that look at Redis itself. */
    sessionKey,
    userKey,
    /** A SCAN pattern of every session key (the active-sessions gauge counts them). */
    sessionKeyPattern: `${escapeGlob(prefix)}sess:*`,
  });
}
