/**
 * The Redis contract's parts that use the domain directly (run on every topology by
 * redis-contract.test.ts): what the session repository keeps in Redis, the users CLI ending
 * sessions, the login throttle and the shared assertion signing key.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { storedSessionId } from '../../common/src/session-id.js';
import { writeUsersFile } from '../../session-service/src/adapters/users-file.js';
import { createAssertionSigner } from '../../session-service/src/domain/assertions.js';
import { createRedisSessionRepository } from '../../session-service/src/domain/session-repository-redis.js';
import { createLoginThrottle } from '../../session-service/src/domain/throttle.js';
import { newUser, withId } from '../../session-service/src/domain/users.js';
import { sealedRecordOf, testRecords, testSigningKeys } from '../helpers/stored-sessions.js';
import { runUsersCli } from '../helpers/users-cli.js';
import {
  authOf,
  type ContractContext,
  createLoggedInSession,
  LIFETIMES,
  newSid,
} from './redis-contract-context.js';

export function describeDomainContract(ctx: ContractContext) {
  const { prefix, sessionKey, userKey } = ctx;

  describe('what the session repository keeps in Redis', () => {
    const repository = () =>
      createRedisSessionRepository({
        redis: ctx.redis,
        lifetimes: LIFETIMES,
        prefix,
        records: testRecords,
      });

    const login = (userId: string) => createLoggedInSession(ctx.redis, prefix, userId);

    it('a session is its sealed record under its stored id, with its remaining life as TTL, and an entry in its user index', async () => {
      const userId = `user-${randomBytes(4).toString('hex')}`;
      const sid = await login(userId);
      const id = storedSessionId(sid);
      const ttl = await ctx.redis.pTTL(sessionKey(sid));
      expect(ttl).toBeGreaterThan(55_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
      const raw = (await ctx.redis.get(sessionKey(sid))) ?? '';
      expect(raw).not.toContain(userId);
      expect(JSON.parse(testRecords.open(raw, id).plaintext).auth.userId).toBe(userId);
      const [entry] = await ctx.redis.zRangeWithScores(userKey(userId), 0, -1);
      expect(entry?.value).toBe(id);
      expect(entry?.score).toBeGreaterThan(0); // confirmed: live, not pending

      // validate slides the TTL back to the idle timeout; PEXPIRE never creates a key.
      await ctx.redis.pExpire(sessionKey(sid), 5000);
      expect((await repository().validateSession(sid))?.auth.userId).toBe(userId);
      expect(await ctx.redis.pTTL(sessionKey(sid))).toBeGreaterThan(55_000);
      await repository().deleteSession(sid, userId);
      expect(await repository().validateSession(sid)).toBeNull();
      expect(await ctx.redis.exists(sessionKey(sid))).toBe(0);
      expect(await ctx.redis.zRange(userKey(userId), 0, -1)).toEqual([]);
    });

    it('20 sessions of one user are spread over the keyspace, their index is one key, and all end', async () => {
      const userId = `user-${randomBytes(4).toString('hex')}`;
      const sids: string[] = [];
      for (let i = 0; i < 20; i++) sids.push(await login(userId));
      // The sessions' keys are spread over the masters; the user's index is one key.
      const spread = await ctx.topology.mastersWithKeys(`${prefix}sess:*`);
      expect(spread).toBeGreaterThanOrEqual(Math.min(ctx.topology.masters, 2));
      expect(await ctx.topology.mastersWithKeys(userKey(userId))).toBe(1);
      const store = repository();
      expect(await store.listUserSessions(userId)).toHaveLength(20);
      expect(await store.deleteUserSessions(userId)).toBe(20);
      for (const sid of sids) expect(await ctx.redis.exists(sessionKey(sid))).toBe(0);
    });

    it('reads a record written before issue 16 (name, groups, email, a whole user-agent) as it is', async () => {
      const userId = `user-${randomBytes(4).toString('hex')}`;
      const sid = randomBytes(32).toString('base64url');
      const t = Date.now();
      const ua = `Mozilla/5.0 (Windows NT 10.0; Win64; x64) ${'x'.repeat(100)}`;
      const legacy = {
        userId,
        username: 'old',
        groups: ['dev'],
        email: 'o@example.com',
        createdAt: t,
        ua,
      };
      const record = { cookie: { originalMaxAge: null, expires: null, path: '/' }, auth: legacy };
      await ctx.redis.set(sessionKey(sid), sealedRecordOf(sid, record), {
        expiration: { type: 'PX', value: 60_000 },
      });
      await ctx.redis.zAdd(userKey(userId), { score: t, value: storedSessionId(sid) });
      expect((await repository().validateSession(sid))?.auth).toEqual(legacy);
      expect((await repository().listUserSessions(userId))[0]?.userAgent).toBe(ua);
      // Rewritten (a step-up), it keeps only what a record now keeps.
      expect(await repository().stepUp(sid, ['otp'], Date.now())).not.toBeNull();
      const now = await repository().getSession(sid);
      expect(now).not.toHaveProperty('username');
      expect(now).not.toHaveProperty('groups');
      expect(now?.ua).toBe(
        `Mozilla/5.0 (Windows NT 10.0; Win64; x64) ${'x'.repeat(100)}`.slice(0, 64),
      );
    });

    it('prunes index entries whose session Redis has forgotten', async () => {
      const userId = `user-${randomBytes(4).toString('hex')}`;
      const live = await login(userId);
      const dead = await login(userId);
      await ctx.redis.del(sessionKey(dead)); // as its TTL would
      expect((await repository().listUserSessions(userId)).map((s) => s.id)).toEqual([
        storedSessionId(live),
      ]);
      expect(await ctx.redis.zRange(userKey(userId), 0, -1)).toEqual([storedSessionId(live)]);
    });
  });

  describe('the users CLI', () => {
    it('ends every session of a disabled user', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gatehouse-contract-'));
      try {
        // The CLI never checks the hash of a user it disables: any argon2id-shaped one does.
        const passwordHash = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo';
        const user = newUser({ username: 'erin', passwordHash });
        const usersFile = join(dir, 'users.json');
        await writeUsersFile(usersFile, [user]);
        const sids: string[] = [];
        for (let i = 0; i < 3; i++)
          sids.push(await createLoggedInSession(ctx.redis, prefix, withId(user).id));
        const env = { ...ctx.topology.env, USERS_FILE: usersFile, REDIS_PREFIX: prefix };
        // Only the topology's variables point the CLI at Redis: an inherited REDIS_URL goes.
        const run = await runUsersCli(['disable', 'erin'], {
          env: { REDIS_URL: undefined, ...env },
        });
        expect(run.stderr).toBe('');
        expect(run.stdout).toContain('ended 3 sessions of "erin"');
        expect(run.code).toBe(0);
        for (const sid of sids) expect(await ctx.redis.exists(sessionKey(sid))).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('the login throttle', () => {
    it('blocks the account + address pair after 5 failures, and a success clears it', async () => {
      const throttle = createLoginThrottle({ redis: ctx.redis, prefix });
      const account = `acct-${randomBytes(4).toString('hex')}`;
      const address = '203.0.113.7';
      for (let i = 0; i < 5; i++) {
        expect((await throttle.check(account, address)).allowed).toBe(true);
        await throttle.recordFailure(account, address);
      }
      expect(await throttle.check(account, address)).toEqual({
        allowed: false,
        retryAfterSeconds: 30,
        reason: 'pair',
      });
      await throttle.recordSuccess(account, address);
      expect((await throttle.check(account, address)).allowed).toBe(true);
    });
  });

  describe('the assertion signing key', () => {
    it('is created once and shared: two instances sign and publish with the same key', async () => {
      const options = { redis: ctx.redis, prefix, issuer: 'gatehouse', keys: testSigningKeys };
      const [a, b] = [createAssertionSigner(options), createAssertionSigner(options)];
      // Both load at once: SET NX lets exactly one key win.
      const [jwksA, jwksB] = await Promise.all([a.jwks(), b.jwks()]);
      expect(jwksA).toEqual(jwksB);
      const token = await a.sign(newSid(), authOf('carol'), 'demo-app');
      const { payload } = await jwtVerify(token, createLocalJWKSet(jwksB), {
        issuer: 'gatehouse',
        audience: 'demo-app',
      });
      expect(payload.sub).toBe('carol');
    });
  });
}
