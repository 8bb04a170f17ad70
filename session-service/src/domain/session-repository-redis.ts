import type { Amr, Authentication } from '../../../common/src/authentication.js';
import { GatehouseError, isGatehouseError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/logger.js';
import type { RedisClient } from '../../../common/src/redis.js';
import { storedSessionId } from '../../../common/src/session-id.js';
import { publishChanges, publishRevocations } from './revocation-channel.js';
import type { Sealer } from './sealing.js';
import {
  createExpiry,
  deadBefore,
  endOneSession,
  LIVE_SHARDS,
  liveMember,
  liveShardOf,
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
  listedBefore,
  loginInterrupted,
  type SessionAuth,
  type SessionPage,
  type SessionRepository,
  type SessionRepositoryOptions,
  type SessionSummary,
  steppedUp,
  type ValidSession,
} from './session-repository.js';
import { ADD_LIVE, CONFIRM_LOGIN, COUNT_LIVE } from './session-repository-scripts.js';
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
 * pending); `<prefix>sessions:live:<0-15>` are the live-session count's shards, sorted sets of
 * (shortened) stored ids scored by when each record expires, so the active-sessions gauge counts
 * with ZCOUNT instead of scanning the keyspace. Every command names one key, so all of it works
 * on a Cluster (the index carries the user id as a hash tag; the shards are 16 keys spread over
 * the masters). Only stored ids reach Redis: a Redis reader gets no session.
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
  const liveKey = (shard: number) => `${prefix}sessions:live:${shard}`;
  const liveKeyOf = (id: string) => liveKey(liveShardOf(id));
  /** Note (or move) when the session `id` expires, in its live-session shard. */
  const markLive = (id: string, expiresAt: number) =>
    redis.zAdd(liveKeyOf(id), { score: expiresAt, value: liveMember(id) });
  /** Forget sessions in the live-session count: one ZREM per shard they fall in. */
  const unmarkLive = (ids: readonly string[]) => {
    const byShard = new Map<number, string[]>();
    for (const id of ids) {
      const shard = liveShardOf(id);
      byShard.set(shard, [...(byShard.get(shard) ?? []), liveMember(id)]);
    }
    return Promise.all([...byShard].map(([shard, members]) => redis.zRem(liveKey(shard), members)));
  };
  const maxPerUser = options.maxSessionsPerUser ?? 0;
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
        unmarkLive([id]),
      ]);
      if (deleted > 0) await onRevoked([id]);
      return deleted > 0;
    });
  }

  /** deleteSessionById with an owner: ended only when its entry was in `userId`'s index. */
  async function deleteOwned(id: string, userId: string): Promise<boolean> {
    const owned = await storeCall(() => redis.zRem(userKey(userId), id));
    return owned > 0 ? deleteById(id) : false;
  }

  /**
   * End sessions already taken out of their user's index: their records, their live-session
   * entries, then the revocation (one DEL per key: different sessions, different Cluster slots).
   */
  async function endUnindexed(ids: readonly string[]): Promise<number> {
    for (const id of ids) slides.forget(id);
    const [deleted] = await Promise.all([
      Promise.all(ids.map((s) => redis.del(sessionKey(s)))),
      unmarkLive(ids),
    ]);
    await onRevoked(ids);
    return deleted.reduce((a, b) => a + b, 0);
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
      if (reply !== null) await markLive(id, now() + left);
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
      const t = now();
      const life = Math.max(1, remainingMs(auth, lifetimes, t));
      const [reply] = await Promise.all([
        redis.set(sessionKey(id), seal(id, auth), {
          expiration: { type: 'PX', value: life },
          condition: 'NX',
        }),
        // Counted live (and up to 100 of its shard's expired entries dropped), in parallel.
        redis.eval(ADD_LIVE, {
          keys: [liveKeyOf(id)],
          arguments: [String(t + life), liveMember(id), String(t), '100'],
        }),
      ]);
      // NX refused: an id collision (never with 256 random bits) must not become a login.
      if (reply === null) throw new Error('session id already exists');
      created = true;
      // Live now, unless "end all sessions" removed the entry meanwhile: then undo (below). Over
      // the user's limit, the least recently active sessions are unindexed here, ended below.
      const c = now();
      const capped = await redis.eval(CONFIRM_LOGIN, {
        keys: [index],
        arguments: [
          id,
          String(c),
          String(maxPerUser),
          String(deadBefore(lifetimes, c)),
          String(-(c - LOGIN_GRACE_MS)),
        ],
      });
      if (!Array.isArray(capped)) throw loginInterrupted();
      const ended = capped.map(String);
      if (ended.length > 0) {
        await endUnindexed(ended);
        options.onCapped?.(auth.userId, ended);
      }
    } catch (err) {
      slides.forget(id);
      await Promise.all([
        created ? redis.del(sessionKey(id)) : 0,
        redis.zRem(index, id),
        unmarkLive([id]),
      ]).catch(() => {});
      throw isGatehouseError(err)
        ? err
        : new GatehouseError('SESSION_STORE_UNAVAILABLE', { cause: err });
    }
  }

  const repository = {
    createSession,

    async validateSession(sid: string): Promise<ValidSession<SessionAuth> | null> {
      const id = storedSessionId(sid);
      return storeCall(async () => {
        const auth = authOf(id, await redis.get(sessionKey(id)));
        if (!auth) return null;
        // PEXPIRE never creates a key; ZADD XX never re-adds a revoked entry. The live-session
        // count's entry moves with the expiry in the same round trip (a plain ZADD: a session
        // from before the count joins it here; one ended in between is counted until this
        // expiry passes, an upper bound of one idle timeout).
        return expiry.validate(sid, id, auth, (left, t) =>
          Promise.all([
            redis.pExpire(sessionKey(id), left),
            redis.zAdd(userKey(auth.userId), { score: t, value: id }, { condition: 'XX' }),
            markLive(id, t + left),
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
    deleteSessionById: (id: string, userId?: string) =>
      userId === undefined ? deleteById(id) : deleteOwned(id, userId),

    async deleteUserSessions(userId: string, exceptSid?: string): Promise<number> {
      const except = storedIdExcept(exceptSid);
      return storeCall(async () => {
        const ids = (await redis.zRange(userKey(userId), 0, -1)).filter((s) => s !== except);
        if (ids.length === 0) return 0;
        // Unindex first: a login racing with us then finds its entry gone after creating its
        // session (createSession) and undoes itself, so no session survives outside the index.
        await redis.zRem(userKey(userId), ids);
        return endUnindexed(ids);
      });
    },

    async listUserSessions(userId: string, page?: SessionPage): Promise<SessionSummary[]> {
      if (page) return listPage(userId, page);
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

    async countLiveSessions(): Promise<number> {
      const t = String(now());
      const counts = await Promise.all(
        Array.from({ length: LIVE_SHARDS }, (_, shard) =>
          redis.eval(COUNT_LIVE, { keys: [liveKey(shard)], arguments: [t, '10000'] }),
        ),
      );
      return counts.reduce<number>((sum, n) => sum + Number(n), 0);
    },
  } satisfies SessionRepository;

  /**
   * One page of listUserSessions: the index read by score, newest first, from the cursor on, in
   * batches the size of what is still missing; then one GET per entry of the batch. Entries of
   * ended sessions are pruned once the page is complete (pruning between batches would move the
   * offsets). O(limit) commands, whatever the user's session count.
   */
  async function listPage(userId: string, page: SessionPage): Promise<SessionSummary[]> {
    const key = userKey(userId);
    const limit = Math.max(1, Math.floor(page.limit));
    const { after } = page;
    return storeCall(async () => {
      const t = now();
      const out: SessionSummary[] = [];
      const dead: string[] = [];
      let offset = 0;
      while (out.length < limit) {
        const count = limit - out.length;
        const batch = await redis.zRangeWithScores(key, after ? after.lastSeenAt : '+inf', 0, {
          BY: 'SCORE',
          REV: true,
          LIMIT: { offset, count },
        });
        offset += batch.length;
        const entries = after
          ? batch.filter((e) => listedBefore(after, { lastSeenAt: e.score, id: e.value }))
          : batch;
        const records = await Promise.all(entries.map((e) => redis.get(sessionKey(e.value))));
        entries.forEach((entry, i) => {
          const auth = authOf(entry.value, records[i] ?? null);
          if (!auth || auth.userId !== userId || remainingMs(auth, lifetimes, t) <= 0)
            dead.push(entry.value);
          else if (out.length < limit)
            out.push(summaryOf(entry.value, auth, entry.score, lifetimes));
        });
        if (batch.length < count) break;
      }
      if (dead.length > 0) await redis.zRem(key, dead);
      return out;
    });
  }

  return Object.assign(repository, {
    /** The key format, for tests and tools that look at Redis itself. */
    sessionKey,
    userKey,
    /** The live-session count's shard that holds the session `id`. */
    liveKeyOf,
  });
}
