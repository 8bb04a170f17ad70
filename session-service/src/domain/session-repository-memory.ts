import type { Amr, Authentication } from '../../../common/src/authentication.js';
import { GatehouseError } from '../../../common/src/errors.js';
import { storedSessionId } from '../../../common/src/session-id.js';
import {
  createExpiry,
  endOneSession,
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

interface Entry {
  auth: SessionAuth;
  /** ms since the epoch: the record's expiry (Redis's TTL). */
  expiresAt: number;
}

/**
 * The session repository in this process's memory: a real second implementation, held to the
 * same contract as the Redis one (test/integration/session-repository-contract.ts), for tests
 * that need sessions at unit speed and for a single process that keeps nothing across restarts.
 * It is not shared between processes and keeps nothing at rest, so records are not sealed; like
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
          auth: copy(auth),
          expiresAt: now() + Math.max(1, remainingMs(auth, lifetimes, now())),
        });
        await step();
        const index = indexes.get(auth.userId);
        if (!index?.has(id)) throw loginInterrupted();
        index.set(id, now());
      } catch (err) {
        slides.forget(id);
        if (created) records.delete(id);
        unindex(auth.userId, [id]);
        throw err;
      }
    },

    async validateSession(sid: string): Promise<ValidSession | null> {
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
      records.set(id, { auth: copy(auth), expiresAt: now() + left });
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
      records.set(id, { auth: copy(next), expiresAt: now() + left });
      await onChanged([id]);
      return authenticationOfSession(next);
    },

    ...endOneSession(deleteById),

    async deleteUserSessions(userId: string, exceptSid?: string): Promise<number> {
      const except = storedIdExcept(exceptSid);
      await step();
      const ids = [...(indexes.get(userId)?.keys() ?? [])].filter((id) => id !== except);
      if (ids.length === 0) return 0;
      unindex(userId, ids);
      await step();
      let deleted = 0;
      for (const id of ids) {
        slides.forget(id);
        if (live(id)) deleted++;
        records.delete(id);
      }
      await onRevoked(ids);
      return deleted;
    },

    async listUserSessions(userId: string): Promise<SessionSummary[]> {
      await step();
      const t = now();
      const entries = [...(indexes.get(userId)?.entries() ?? [])].sort((a, b) => b[1] - a[1]);
      const out: SessionSummary[] = [];
      const dead: string[] = [];
      for (const [id, score] of entries) {
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
  };
}
