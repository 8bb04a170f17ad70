/**
 * Over 300 lines on purpose: the contract is one suite, and every implementation runs all of it.
 *
 * The session repository's contract: one suite, run against every implementation (in-memory in
 * test/unit/session-repository.test.ts; standalone Redis, Redis Cluster and Sentinel in
 * redis-contract.test.ts), as oauth2-proxy runs one session-store suite against every backend.
 * It speaks only the SessionRepository interface (and express-session's Store contract over
 * it); what Redis itself holds is redis-contract.test.ts's business.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SessionData } from 'express-session';
import { describe, expect, it } from 'vitest';
import type { GatehouseError } from '../../common/src/errors.js';
import { storedSessionId } from '../../common/src/session-id.js';
import {
  authenticationOfSession,
  type Lifetimes,
  type SessionAuth,
  type SessionRepository,
  type SessionRepositoryOptions,
} from '../../session-service/src/domain/session-repository.js';
import { SessionRepositoryStore } from '../../session-service/src/session-middleware.js';
import { waitFor } from '../helpers/ports.js';

/** Builds a repository of the implementation under test (each call: a fresh one). */
export type MakeRepository = (options: SessionRepositoryOptions) => SessionRepository;

export const CONTRACT_LIFETIMES: Lifetimes = {
  idleSeconds: 60,
  absoluteSeconds: 3600,
  rememberIdleSeconds: 120,
  rememberAbsoluteSeconds: 7200,
};

const newSid = () => randomBytes(32).toString('base64url');
const newUserId = () => `user-${randomBytes(4).toString('hex')}`;

export function authOf(userId: string, createdAt = Date.now(), extra: Partial<SessionAuth> = {}) {
  return { userId, username: userId, groups: ['dev'], email: '', createdAt, ...extra };
}

/** What a repository keeps of `auth`: all but the identity, which validate reads from the user. */
export function storedOf(auth: SessionAuth): SessionAuth {
  const { username: _u, groups: _g, email: _e, ...rest } = auth;
  return rest;
}

const CHROME_ON_LINUX =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

/** A clock the test moves, and the revocations the repository reported. */
function harness(make: MakeRepository, options: Partial<SessionRepositoryOptions> = {}) {
  const clock = { t: Date.now() };
  const revoked: string[] = [];
  const changed: string[] = [];
  const repository = make({
    lifetimes: CONTRACT_LIFETIMES,
    now: () => clock.t,
    slideIntervalMs: 1000,
    onRevoked: async (ids) => {
      revoked.push(...ids);
    },
    onChanged: async (ids) => {
      changed.push(...ids);
    },
    ...options,
  });
  return { clock, revoked, changed, repository };
}

const call = <T>(fn: (cb: (err?: unknown, value?: T) => void) => void) =>
  new Promise<T | undefined>((resolve, reject) =>
    fn((err, value) => (err ? reject(err) : resolve(value))),
  );

export function describeSessionRepositoryContract(name: string, make: () => MakeRepository) {
  describe(`the session repository on ${name}`, () => {
    it('createSession is the login: the session validates, lists and is known by its stored id only', async () => {
      const { clock, repository } = harness(make());
      const sid = newSid();
      const userId = newUserId();
      const auth = authOf(userId, clock.t, { ip: '203.0.113.9', ua: 'Contract/1' });
      await repository.createSession(sid, auth);

      const valid = await repository.validateSession(sid);
      expect(valid).toEqual({
        sid,
        id: storedSessionId(sid),
        auth: storedOf(auth),
        expiresAt: clock.t + 60_000,
        absoluteExpiresAt: auth.createdAt + 3600_000,
      });
      expect(await repository.getSession(sid)).toEqual(storedOf(auth));
      expect(await repository.listUserSessions(userId)).toEqual([
        {
          id: storedSessionId(sid),
          createdAt: auth.createdAt,
          lastSeenAt: clock.t,
          ip: '203.0.113.9',
          userAgent: 'Contract/1',
          expiresAt: clock.t + 60_000,
        },
      ]);
      expect(await repository.validateSession(newSid())).toBeNull();
      expect(await repository.getSession(newSid())).toBeNull();
    });

    it('keeps only what the session knows: no name, groups or email, a user-agent summary, the provider', async () => {
      const { clock, repository } = harness(make());
      const [sid, other] = [newSid(), newSid()];
      const userId = newUserId();
      const idp = { provider: 'corp', sid: 'op-session-1' };
      await repository.createSession(
        sid,
        authOf(userId, clock.t, { ua: CHROME_ON_LINUX, ip: '203.0.113.9', idp, remember: true }),
      );
      const kept = await repository.getSession(sid);
      expect(kept).toEqual({
        userId,
        createdAt: clock.t,
        ua: 'Chrome 126 on Linux',
        ip: '203.0.113.9',
        idp,
        remember: true,
      });
      expect((await repository.validateSession(sid))?.auth).toEqual(kept);
      expect((await repository.listUserSessions(userId))[0]?.userAgent).toBe('Chrome 126 on Linux');
      // An unknown user-agent is kept, up to 64 characters.
      await repository.createSession(
        other,
        authOf(userId, clock.t, { ua: `X/${'1'.repeat(200)}` }),
      );
      expect((await repository.getSession(other))?.ua).toBe(`X/${'1'.repeat(62)}`);
      // A rewrite keeps the summary as it is.
      expect(await repository.updateSession(sid, { ...(kept as SessionAuth), username: 'x' })).toBe(
        true,
      );
      expect(await repository.getSession(sid)).toEqual(kept);
    });

    it('remember-me sessions live by the remember-me limits', async () => {
      const { clock, repository } = harness(make());
      const sid = newSid();
      const auth = authOf(newUserId(), clock.t, { remember: true });
      await repository.createSession(sid, auth);
      const valid = await repository.validateSession(sid);
      expect(valid?.expiresAt).toBe(clock.t + 120_000);
      expect(valid?.absoluteExpiresAt).toBe(auth.createdAt + 7200_000);
    });

    it('createSession never takes over an existing session (a planted or colliding id)', async () => {
      const { repository } = harness(make());
      const sid = newSid();
      const mallory = newUserId();
      await repository.createSession(sid, authOf('alice'));
      // Refused like a store failure: no login is made over it (503).
      await expect(repository.createSession(sid, authOf(mallory))).rejects.toMatchObject({
        code: 'SESSION_STORE_UNAVAILABLE',
      });
      expect((await repository.getSession(sid))?.userId).toBe('alice');
      expect(await repository.listUserSessions(mallory)).toEqual([]);
    });

    it('keeps how the session was authenticated; a record without it reads as a password login', async () => {
      const { clock, repository } = harness(make());
      const [sid, legacy] = [newSid(), newSid()];
      const userId = newUserId();
      const auth = authOf(userId, clock.t, { amr: ['pwd'], authTime: clock.t });
      await repository.createSession(sid, auth);
      const valid = await repository.validateSession(sid);
      expect(valid?.auth.amr).toEqual(['pwd']);
      expect(authenticationOfSession(valid?.auth as SessionAuth)).toEqual({
        amr: ['pwd'],
        acr: 'aal1',
        authTime: clock.t,
      });
      await repository.createSession(legacy, authOf(userId, clock.t - 5000));
      const old = await repository.getSession(legacy);
      expect(old?.amr).toBeUndefined();
      expect(authenticationOfSession(old as SessionAuth)).toEqual({
        amr: ['pwd'],
        acr: 'aal1',
        authTime: clock.t - 5000,
      });
    });

    it('stepUp adds the methods and moves authTime, keeps the id, tells the change, never resurrects', async () => {
      const { clock, changed, revoked, repository } = harness(make());
      const sid = newSid();
      const userId = newUserId();
      const createdAt = clock.t;
      await repository.createSession(
        sid,
        authOf(userId, createdAt, { amr: ['pwd'], authTime: createdAt }),
      );
      clock.t += 30_000;
      expect(await repository.validateSession(sid)).not.toBeNull();
      clock.t += 1000;
      const stepped = await repository.stepUp(sid, ['otp'], clock.t);
      expect(stepped).toEqual({ amr: ['pwd', 'otp', 'mfa'], acr: 'aal2', authTime: clock.t });
      expect(changed).toEqual([storedSessionId(sid)]);
      expect(revoked).toEqual([]);
      const valid = await repository.validateSession(sid);
      expect(valid?.id).toBe(storedSessionId(sid));
      expect(valid?.auth.createdAt).toBe(createdAt); // the absolute timeout does not move
      expect(authenticationOfSession(valid?.auth as SessionAuth)).toEqual(stepped);
      expect(valid?.absoluteExpiresAt).toBe(createdAt + 3600_000);
      // The password again later (a re-authentication): only authTime moves.
      clock.t += 5000;
      expect(await repository.stepUp(sid, ['pwd'], clock.t)).toEqual({
        amr: ['pwd', 'otp', 'mfa'],
        acr: 'aal2',
        authTime: clock.t,
      });
      expect(changed).toHaveLength(2);

      await repository.deleteSession(sid, userId);
      expect(await repository.stepUp(sid, ['otp'], clock.t)).toBeNull();
      expect(await repository.getSession(sid)).toBeNull();
      expect(await repository.stepUp(newSid(), ['otp'], clock.t)).toBeNull();
      expect(changed).toHaveLength(2);
    });

    it('updateSession rewrites a live session but never resurrects an ended one', async () => {
      const { repository, revoked } = harness(make());
      const sid = newSid();
      const userId = newUserId();
      await repository.createSession(sid, authOf(userId));
      expect(await repository.updateSession(sid, { ...authOf(userId), ip: '192.0.2.7' })).toBe(
        true,
      );
      expect((await repository.getSession(sid))?.ip).toBe('192.0.2.7');

      expect(await repository.deleteSession(sid, userId)).toBe(true);
      expect(revoked).toEqual([storedSessionId(sid)]);
      // A request that loaded the session before the logout saves it afterwards.
      expect(await repository.updateSession(sid, authOf(userId))).toBe(false);
      expect(await repository.getSession(sid)).toBeNull();
      expect(await repository.validateSession(sid)).toBeNull();
      expect(await repository.listUserSessions(userId)).toEqual([]);
      // Ending it again ends nothing and tells nobody.
      expect(await repository.deleteSession(sid, userId)).toBe(false);
      expect(revoked).toHaveLength(1);
      // And an id never created is never created by an update.
      const planted = newSid();
      expect(await repository.updateSession(planted, authOf(userId))).toBe(false);
      expect(await repository.getSession(planted)).toBeNull();
    });

    it('slides the idle timeout at most once per interval, and never past the absolute limit', async () => {
      const { clock, repository } = harness(make());
      const sid = newSid();
      const userId = newUserId();
      const auth = authOf(userId, clock.t);
      await repository.createSession(sid, auth);
      const slidAt = clock.t;
      expect((await repository.validateSession(sid))?.expiresAt).toBe(slidAt + 60_000);

      clock.t += 500; // within the interval: read, not slid
      expect((await repository.validateSession(sid))?.expiresAt).toBe(slidAt + 60_000);
      expect((await repository.listUserSessions(userId))[0]?.lastSeenAt).toBe(slidAt);

      clock.t += 600; // past it: slid
      expect((await repository.validateSession(sid))?.expiresAt).toBe(clock.t + 60_000);
      expect((await repository.listUserSessions(userId))[0]?.lastSeenAt).toBe(clock.t);

      // Near the absolute limit the idle timeout no longer slides past it; then it is over.
      const old = newSid();
      const late = authOf(userId, clock.t - 3600_000 + 20_000);
      await repository.createSession(old, late);
      expect((await repository.validateSession(old))?.expiresAt).toBe(late.createdAt + 3600_000);
      clock.t += 20_001;
      expect(await repository.validateSession(old)).toBeNull();
      expect(await repository.getSession(old)).toBeNull();
      expect((await repository.listUserSessions(userId)).map((s) => s.id)).toEqual([
        storedSessionId(sid),
      ]);
    });

    it('forgets a session left idle past its idle timeout, and keeps one in use', async () => {
      const short = { ...CONTRACT_LIFETIMES, idleSeconds: 1 };
      const repository = make()({ lifetimes: short, onRevoked: async () => {} });
      const [idle, busy] = [newSid(), newSid()];
      const userId = newUserId();
      await repository.createSession(idle, authOf(userId));
      await repository.createSession(busy, authOf(userId));
      // In use for twice the idle timeout: every validate slides it (at most every 50 ms).
      const until = Date.now() + 2000;
      while (Date.now() < until) {
        expect(await repository.validateSession(busy)).not.toBeNull();
        await sleep(100);
      }
      await waitFor(async () => (await repository.getSession(idle)) === null, 5000, 'idle gone');
      expect(await repository.getSession(busy)).not.toBeNull();
      expect((await repository.listUserSessions(userId)).map((s) => s.id)).toEqual([
        storedSessionId(busy),
      ]);
    });

    it('ends one session by its stored id, then all but one, then all, telling each end', async () => {
      const { repository, revoked } = harness(make());
      const userId = newUserId();
      const sids: string[] = [];
      for (let i = 0; i < 5; i++) {
        sids.push(newSid());
        await repository.createSession(sids[i] as string, authOf(userId));
      }
      const ids = sids.map(storedSessionId);
      expect((await repository.listUserSessions(userId)).map((s) => s.id).sort()).toEqual(
        [...ids].sort(),
      );
      expect(await repository.deleteSessionById(ids[0] as string, userId)).toBe(true);
      expect(await repository.getSession(sids[0] as string)).toBeNull();
      expect(await repository.listUserSessions(userId)).toHaveLength(4);

      const kept = sids[1] as string;
      expect(await repository.deleteUserSessions(userId, kept)).toBe(3);
      expect((await repository.listUserSessions(userId)).map((s) => s.id)).toEqual([
        storedSessionId(kept),
      ]);
      expect(await repository.deleteUserSessions(userId)).toBe(1);
      expect(await repository.listUserSessions(userId)).toEqual([]);
      expect(await repository.deleteUserSessions(userId)).toBe(0);
      for (const sid of sids) expect(await repository.validateSession(sid)).toBeNull();
      expect([...revoked].sort()).toEqual([...ids].sort());
      expect(revoked.some((id) => sids.includes(id))).toBe(false);
    });

    it('a login racing with "end all sessions" is interrupted (409) or ended: no session outlives its index entry', async () => {
      const { repository } = harness(make(), { now: Date.now });
      const userId = newUserId();
      for (let i = 0; i < 20; i++) {
        const sid = newSid();
        const [login] = await Promise.allSettled([
          repository.createSession(sid, authOf(userId)),
          repository.deleteUserSessions(userId),
        ]);
        if (login.status === 'rejected') {
          expect((login.reason as GatehouseError).code).toBe('LOGIN_INTERRUPTED');
          expect((login.reason as GatehouseError).status).toBe(409);
        }
        const alive = (await repository.getSession(sid)) !== null;
        const listed = (await repository.listUserSessions(userId)).some(
          (s) => s.id === storedSessionId(sid),
        );
        expect(alive).toBe(listed);
        if (login.status === 'rejected') expect(alive).toBe(false);
      }
    });

    it('pages the list newest activity first with a keyset cursor that neither repeats nor skips', async () => {
      const { clock, repository } = harness(make());
      const userId = newUserId();
      const sids: string[] = [];
      for (let i = 0; i < 7; i++) {
        sids.push(newSid());
        await repository.createSession(sids[i] as string, authOf(userId, clock.t));
        if (i % 3 !== 2) clock.t += 1000; // some share a millisecond: ties go by id
      }
      const all = await repository.listUserSessions(userId);
      expect(all).toHaveLength(7);
      const pages: string[][] = [];
      let after: { lastSeenAt: number; id: string } | undefined;
      for (;;) {
        const page = await repository.listUserSessions(userId, {
          limit: 3,
          ...(after ? { after } : {}),
        });
        pages.push(page.map((s) => s.id));
        const last = page.at(-1);
        if (page.length < 3 || !last) break;
        after = { lastSeenAt: last.lastSeenAt, id: last.id };
      }
      expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
      expect(pages.flat()).toEqual(all.map((s) => s.id));
      // Ended sessions met on a page are pruned and the page still fills up.
      await repository.deleteSessionById(all[1]?.id as string);
      const first = await repository.listUserSessions(userId, { limit: 3 });
      expect(first.map((s) => s.id)).toEqual([all[0], all[2], all[3]].map((s) => s?.id));
    });

    it('caps the sessions of a user: a login past the limit ends the least recently active, told like a revocation', async () => {
      const capped: Array<[string, string[]]> = [];
      const { clock, revoked, repository } = harness(make(), {
        maxSessionsPerUser: 3,
        onCapped: (userId, ids) => capped.push([userId, [...ids]]),
      });
      const userId = newUserId();
      const sids = [newSid(), newSid(), newSid(), newSid(), newSid()];
      for (const sid of sids.slice(0, 3)) {
        await repository.createSession(sid, authOf(userId, clock.t));
        clock.t += 2000;
      }
      // The first one is used again: the second is now the least recently active.
      expect(await repository.validateSession(sids[0] as string)).not.toBeNull();
      clock.t += 2000;
      await repository.createSession(sids[3] as string, authOf(userId, clock.t));
      const second = storedSessionId(sids[1] as string);
      expect(capped).toEqual([[userId, [second]]]);
      expect(revoked).toEqual([second]);
      expect(await repository.getSession(sids[1] as string)).toBeNull();
      expect(await repository.validateSession(sids[1] as string)).toBeNull();
      expect((await repository.listUserSessions(userId)).map((s) => s.id).sort()).toEqual(
        [sids[0], sids[2], sids[3]].map((s) => storedSessionId(s as string)).sort(),
      );
      // Another user is not counted with this one.
      await repository.createSession(sids[4] as string, authOf(newUserId(), clock.t));
      expect(capped).toHaveLength(1);
      expect(await repository.getSession(sids[3] as string)).not.toBeNull();
    });

    it('no limit when maxSessionsPerUser is 0', async () => {
      const { repository, revoked } = harness(make(), { maxSessionsPerUser: 0 });
      const userId = newUserId();
      for (let i = 0; i < 5; i++) await repository.createSession(newSid(), authOf(userId));
      expect(await repository.listUserSessions(userId)).toHaveLength(5);
      expect(revoked).toEqual([]);
    });

    it('deleteSessionById with a user ends only a session of that user', async () => {
      const { repository, revoked } = harness(make());
      const [alice, bob] = [newUserId(), newUserId()];
      const sid = newSid();
      await repository.createSession(sid, authOf(alice));
      const id = storedSessionId(sid);
      expect(await repository.deleteSessionById(id, bob)).toBe(false);
      expect(await repository.getSession(sid)).not.toBeNull();
      expect(revoked).toEqual([]);
      expect(await repository.deleteSessionById(id, alice)).toBe(true);
      expect(await repository.getSession(sid)).toBeNull();
      expect(revoked).toEqual([id]);
      expect(await repository.deleteSessionById(id, alice)).toBe(false);
    });

    it('counts the live sessions: created, ended and expired ones', async () => {
      const short = { ...CONTRACT_LIFETIMES, idleSeconds: 1 };
      const repository = make()({ lifetimes: short, onRevoked: async () => {} });
      // A store shared with the tests before may still be forgetting their short sessions.
      const settled = async () => {
        const first = await repository.countLiveSessions();
        await sleep(1100);
        return first === (await repository.countLiveSessions());
      };
      await waitFor(settled, 10_000, 'a steady count');
      const before = await repository.countLiveSessions();
      const userId = newUserId();
      const [a, b, c] = [newSid(), newSid(), newSid()];
      for (const sid of [a, b, c]) await repository.createSession(sid, authOf(userId));
      expect(await repository.countLiveSessions()).toBe(before + 3);
      await repository.deleteSession(a, userId);
      expect(await repository.countLiveSessions()).toBe(before + 2);
      await repository.deleteUserSessions(userId, c);
      expect(await repository.countLiveSessions()).toBe(before + 1);
      // Left idle past its timeout, it is no longer counted.
      await waitFor(async () => (await repository.countLiveSessions()) === before, 5000, 'idle');
    });

    describe("express-session's Store over it (SessionRepositoryStore)", () => {
      it('loads, updates, destroys and touches through the repository; a save never creates', async () => {
        const { repository } = harness(make());
        const store = new SessionRepositoryStore(repository);
        const sid = newSid();
        const userId = newUserId();
        await repository.createSession(sid, authOf(userId));

        const loaded = await call<SessionData | null>((cb) => store.get(sid, cb));
        expect(loaded?.auth.userId).toBe(userId);
        expect(loaded?.cookie).toBeDefined(); // express-session needs one on every load
        const changed = { ...loaded, auth: { ...authOf(userId), ip: '192.0.2.7' } } as SessionData;
        await call((cb) => store.set(sid, changed, cb));
        expect((await repository.getSession(sid))?.ip).toBe('192.0.2.7');
        await call((cb) => store.touch?.(sid, changed, cb));
        expect(await repository.getSession(sid)).not.toBeNull();

        await call((cb) => store.destroy(sid, cb));
        expect(await call((cb) => store.get(sid, cb))).toBeNull();
        // The slow request that loaded it before the logout, saving and touching afterwards.
        await call((cb) => store.set(sid, changed, cb));
        await call((cb) => store.touch?.(sid, changed, cb));
        expect(await repository.getSession(sid)).toBeNull();
        // A planted id is never made into a session by a save.
        const planted = newSid();
        await call((cb) => store.set(planted, changed, cb));
        expect(await call((cb) => store.get(planted, cb))).toBeNull();
      });
    });
  });
}
