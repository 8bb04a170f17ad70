import type { Amr, Authentication } from '../../../common/src/authentication.js';
import { GatehouseError } from '../../../common/src/errors.js';
import { storedSessionId } from '../../../common/src/session-id.js';
import {
  createExpiry,
  deadBefore,
  endOneSession,
  remainingMs,
  storedAuth,
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

interface Entry {
  auth: SessionAuth;
  /** ms since the epoch: the record's expiry (Redis's TTL). */
  expiresAt: number;
}

/**
 * The session repository in this process's memory: a real second implementation, held to the
 * same contract as the Redis one (test/integration/session-repository-contract.ts), for tests
 * that need sessions at unit speed and for a single process that keeps nothing across restarts.
 * It is not shared between processes and keeps nothing at rest, so records are not sealed (but
 * hold what a Redis record holds: storedAuth); like
 * the Redis repository it knows sessions only by their stored ids, and each step of the login
 * transaction is its own turn of the event loop, so a concurrent "end all sessions" interleaves
 * with a login exactly as it does on Redis.
 */
export function createMemorySessionRepository(
  options: SessionRepositoryOptions,
): SessionRepository {
  const { lifetimes } = options;
  const now = options.now ?? Date.now;
  const onRevoked = options.onRevoked ?? (async () => {});
  const onChanged = options.onChanged ?? (async () => {});
  const records = new Map<string, Entry>();
  /** user id -> stored id -> last seen (negative: a pending login, minus the time). */
  const indexes = new Map<string, Map<string, number>>();
  const expiry = createExpiry(options, deleteById);
  const { slides } = expiry;
  /** One step per turn of the event loop, as a round trip to Redis would be. */
  const step = () => new Promise<void>((resolve) => setImmediate(resolve));

  const indexOf = (userId: string) => {
    const index = indexes.get(userId) ?? new Map<string, number>();
    indexes.set(userId, index);
    return index;
  };
  const unindex = (userId: string, ids: readonly string[]) => {
    const index = indexes.get(userId);
    for (const id of ids) index?.delete(id);
    if (index?.size === 0) indexes.delete(userId);
  };
  /** The live record of `id` (an expired one is forgotten, as Redis forgets it). */
  function live(id: string): Entry | null {
    const entry = records.get(id);
    if (entry && entry.expiresAt > now()) return entry;
    records.delete(id);
    return null;
  }
  const copy = (auth: SessionAuth): SessionAuth => structuredClone(auth);
  const maxPerUser = options.maxSessionsPerUser ?? 0;

  /**
   * The end of the login transaction past the confirmation, as CONFIRM_LOGIN does it on Redis:
   * entries of ended sessions and failed logins dropped, then the least recently active live
   * entries beyond the limit (never `id`, the new one) unindexed. Their stored ids.
   */
  function capped(index: Map<string, number>, id: string, t: number): string[] {
    const dead = deadBefore(lifetimes, t);
    for (const [other, score] of index)
      if ((score >= 0 && score < dead) || (score < 0 && score > -(t - LOGIN_GRACE_MS)))
        index.delete(other);
    if (maxPerUser <= 0) return [];
    const live = [...index].filter(([, score]) => score >= 0);
    const over = live.length - maxPerUser;
    if (over <= 0) return [];
    const oldest = live
      .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([other]) => other)
      .filter((other) => other !== id)
      .slice(0, over);
    for (const other of oldest) index.delete(other);
    return oldest;
  }
  /** Sessions already unindexed, ended: records forgotten, then the revocation. */
  async function endUnindexed(ids: readonly string[]): Promise<number> {
    let deleted = 0;
    for (const id of ids) {
      slides.forget(id);
      if (live(id)) deleted++;
      records.delete(id);
    }
    await onRevoked(ids);
    return deleted;
  }

  async function deleteById(id: string, userId?: string): Promise<boolean> {
    await step();
    slides.forget(id);
    const existed = live(id) !== null;
    records.delete(id);
    if (userId) unindex(userId, [id]);
    if (existed) await onRevoked([id]);
    return existed;
  }

  return {
    async createSession(sid: string, auth: SessionAuth): Promise<void> {
      const id = storedSessionId(sid);
      await step();
      indexOf(auth.userId).set(id, -now());
      await step();
      const created = live(id) === null;
      try {
        // Refused as the Redis repository refuses it: the login is not made (503).
        if (!created)
          throw new GatehouseError('SESSION_STORE_UNAVAILABLE', {
            cause: new Error('session id already exists'),
          });
        records.set(id, {
          auth: copy(storedAuth(auth)),
          expiresAt: now() + Math.max(1, remainingMs(auth, lifetimes, now())),
        });
        await step();
        const index = indexes.get(auth.userId);
        if (!index?.has(id)) throw loginInterrupted();
        index.set(id, now());
        const ended = capped(index, id, now());
        if (ended.length > 0) {
          await step();
          await endUnindexed(ended);
          options.onCapped?.(auth.userId, ended);
        }
      } catch (err) {
        slides.forget(id);
        if (created) records.delete(id);
        unindex(auth.userId, [id]);
        throw err;
      }
    },

    async validateSession(sid: string): Promise<ValidSession<SessionAuth> | null> {
      const id = storedSessionId(sid);
      await step();
      const entry = live(id);
      if (!entry) return null;
      const auth = copy(entry.auth);
      return expiry.validate(sid, id, auth, (left, t) => {
        entry.expiresAt = t + left;
        const index = indexes.get(auth.userId);
        if (index?.has(id)) index.set(id, t);
        return undefined;
      });
    },

    async getSession(sid: string): Promise<SessionAuth | null> {
      await step();
      const entry = live(storedSessionId(sid));
      return entry && remainingMs(entry.auth, lifetimes, now()) > 0 ? copy(entry.auth) : null;
    },

    async updateSession(sid: string, auth: SessionAuth): Promise<boolean> {
      const id = storedSessionId(sid);
      const left = await expiry.timeLeft(id, auth);
      if (left === 0) return false;
      await step();
      if (!live(id)) return false;
      records.set(id, { auth: copy(storedAuth(auth)), expiresAt: now() + left });
      return true;
    },

    async stepUp(sid: string, methods: readonly Amr[], t: number): Promise<Authentication | null> {
      const id = storedSessionId(sid);
      await step();
      const entry = live(id);
      if (!entry) return null;
      const next = steppedUp(entry.auth, methods, t);
      const left = await expiry.timeLeft(id, next);
      if (left === 0 || !live(id)) return null;
      records.set(id, { auth: copy(storedAuth(next)), expiresAt: now() + left });
      await onChanged([id]);
      return authenticationOfSession(next);
    },

    ...endOneSession(deleteById),

    async deleteSessionById(id: string, userId?: string): Promise<boolean> {
      if (userId === undefined) return deleteById(id);
      await step();
      const index = indexes.get(userId);
      if (!index?.has(id)) return false;
      unindex(userId, [id]);
      return deleteById(id);
    },

    async deleteUserSessions(userId: string, exceptSid?: string): Promise<number> {
      const except = storedIdExcept(exceptSid);
      await step();
      const ids = [...(indexes.get(userId)?.keys() ?? [])].filter((id) => id !== except);
      if (ids.length === 0) return 0;
      unindex(userId, ids);
      await step();
      return endUnindexed(ids);
    },

    async listUserSessions(userId: string, page?: SessionPage): Promise<SessionSummary[]> {
      await step();
      const t = now();
      const byListing = (a: [string, number], b: [string, number]) =>
        listedBefore({ id: a[0], lastSeenAt: a[1] }, { id: b[0], lastSeenAt: b[1] }) ? -1 : 1;
      const entries = [...(indexes.get(userId)?.entries() ?? [])]
        .filter(([id, score]) => {
          const after = page?.after;
          if (!page) return true;
          return score >= 0 && (!after || listedBefore(after, { id, lastSeenAt: score }));
        })
        .sort(byListing);
      const limit = page ? Math.max(1, Math.floor(page.limit)) : Number.POSITIVE_INFINITY;
      const out: SessionSummary[] = [];
      const dead: string[] = [];
      for (const [id, score] of entries) {
        if (out.length >= limit) break;
        const auth = live(id)?.auth;
        const pending = score < 0;
        if (pending && t + score < LOGIN_GRACE_MS) continue;
        if (pending || !auth || auth.userId !== userId || remainingMs(auth, lifetimes, t) <= 0)
          dead.push(id);
        else out.push(summaryOf(id, copy(auth), score, lifetimes));
      }
      unindex(userId, dead);
      return out;
    },

    async countLiveSessions(): Promise<number> {
      await step();
      let count = 0;
      for (const id of [...records.keys()]) if (live(id)) count++;
      return count;
    },
  };
}
