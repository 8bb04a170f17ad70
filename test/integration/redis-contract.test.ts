/**
 * One contract, three Redis topologies: everything Gatehouse does with Redis (the session
 * repository, whose contract suite, session-repository-contract.ts, also runs in memory; the
 * login throttle, the signing key, readiness, and a whole login → validate → logout) must behave
 * the same on standalone Redis, Redis Cluster and Sentinel (as oauth2-proxy runs one
 * session-store suite against every backend). No mocks: the real domain code on real
 * redis-server processes.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { createClient } from 'redis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, pingRedis, type RedisClient } from '../../common/src/redis.js';
import { storedSessionId } from '../../common/src/session-id.js';
import {
  loadSessionServiceConfig,
  type SessionServiceConfig,
} from '../../session-service/src/config.js';
import { createAssertionSigner } from '../../session-service/src/domain/assertions.js';
import type {
  Lifetimes,
  SessionAuth,
} from '../../session-service/src/domain/session-repository.js';
import { createRedisSessionRepository } from '../../session-service/src/domain/session-repository-redis.js';
import { createLoginThrottle } from '../../session-service/src/domain/throttle.js';
import { newUser, withId, writeUsersFile } from '../../session-service/src/domain/users.js';
import { silentLogger } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';
import { TEST_INTERNAL_TOKEN } from '../helpers/processes.js';
import { startRedis } from '../helpers/redis.js';
import { dumpRedis, occurrences, recordChannel } from '../helpers/redis-dump.js';
import { startRedisCluster, startRedisSentinel } from '../helpers/redis-topologies.js';
import {
  buildSessionService,
  cookiePairOf,
  NO_THROTTLE,
  sidOf,
  TEST_SECRET,
} from '../helpers/session-service.js';
import { testRecords, testSigningKeys } from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';
import { describeSessionRepositoryContract } from './session-repository-contract.js';

/** A running topology, as the contract sees it. */
interface Topology {
  /** The REDIS_* variables that point the session-service at it. */
  env: Record<string, string>;
  /** How many masters share the keyspace (1 but for a Cluster). */
  masters: number;
  /** How many masters hold at least one key matching `pattern`. */
  mastersWithKeys(pattern: string): Promise<number>;
  /** Every master's URL (what a dump of the whole keyspace reads). */
  masterUrls: string[];
  stop(): Promise<void>;
}

const LIFETIMES: Lifetimes = {
  idleSeconds: 60,
  absoluteSeconds: 3600,
  rememberIdleSeconds: 60,
  rememberAbsoluteSeconds: 3600,
};

const newSid = () => randomBytes(32).toString('base64url');

function authOf(userId: string, createdAt = Date.now()): SessionAuth {
  return { userId, username: userId, groups: ['dev'], email: '', createdAt };
}

/** Keys matching `pattern` on each of `urls` (one plain connection per node). */
async function countKeysPerNode(urls: string[], pattern: string): Promise<number[]> {
  return Promise.all(
    urls.map(async (url) => {
      const node = createClient({ url });
      node.on('error', () => {});
      await node.connect();
      try {
        return (await node.keys(pattern)).length;
      } finally {
        node.destroy();
      }
    }),
  );
}

const mastersWithKeysOn = (urls: string[]) => async (pattern: string) =>
  (await countKeysPerNode(urls, pattern)).filter((n) => n > 0).length;

/** A login's session, made as the login route makes it (the repository's login transaction). */
async function createLoggedInSession(
  redis: RedisClient,
  prefix: string,
  userId: string,
): Promise<string> {
  const sid = newSid();
  const repository = createRedisSessionRepository({
    redis,
    lifetimes: LIFETIMES,
    prefix,
    records: testRecords,
  });
  await repository.createSession(sid, authOf(userId));
  return sid;
}

/** Runs the users CLI as a real process with `env` on top of ours (minus any REDIS_URL). */
function usersCli(args: string[], env: Record<string, string>) {
  const { REDIS_URL: _ignored, ...inherited } = process.env;
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'session-service/src/cli/users.ts', ...args],
      {
        cwd: new URL('../..', import.meta.url).pathname,
        env: { ...inherited, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 15_000,
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function describeStoreContract(name: string, connect: () => Promise<Topology>) {
  describe(`on ${name}`, () => {
    // Each run writes under its own prefix, so nothing needs flushing (FLUSHALL is per node).
    const prefix = `contract-${randomBytes(4).toString('hex')}:`;
    let topology: Topology;
    let config: Readonly<SessionServiceConfig>;
    let redis: RedisClient;

    beforeAll(async () => {
      topology = await connect();
      config = loadSessionServiceConfig({
        NODE_ENV: 'test',
        SESSION_SECRET: TEST_SECRET,
        REDIS_PREFIX: prefix,
        ...topology.env,
      });
      redis = createRedis({ ...config.redis, commandTimeoutMs: 2000 }, silentLogger);
      await redis.connect();
    });

    afterAll(async () => {
      await redis?.close();
      await topology?.stop();
    });

    /** Redis knows a session by its stored id only (the SHA-256 of the cookie's id). */
    const sessionKey = (sid: string) => `${prefix}sess:${storedSessionId(sid)}`;
    const userKey = (userId: string) => `${prefix}user:{${userId}}:sessions`;

    describe('readiness', () => {
      it('answers PING and reports ready', async () => {
        expect(redis.isReady).toBe(true);
        expect(await pingRedis(redis)).toBe(true);
      });

      it('reports not ready once the connection is closed', async () => {
        const other = createRedis(config.redis, silentLogger);
        await other.connect();
        expect(await pingRedis(other)).toBe(true);
        await other.close();
        expect(await pingRedis(other)).toBe(false);
      });
    });

    describeSessionRepositoryContract(
      name,
      () => (options) =>
        createRedisSessionRepository({ redis, prefix, records: testRecords, ...options }),
    );

    describe('what the session repository keeps in Redis', () => {
      const repository = () =>
        createRedisSessionRepository({ redis, lifetimes: LIFETIMES, prefix, records: testRecords });

      const login = (userId: string) => createLoggedInSession(redis, prefix, userId);

      it('a session is its sealed record under its stored id, with its remaining life as TTL, and an entry in its user index', async () => {
        const userId = `user-${randomBytes(4).toString('hex')}`;
        const sid = await login(userId);
        const id = storedSessionId(sid);
        const ttl = await redis.pTTL(sessionKey(sid));
        expect(ttl).toBeGreaterThan(55_000);
        expect(ttl).toBeLessThanOrEqual(60_000);
        const raw = (await redis.get(sessionKey(sid))) ?? '';
        expect(raw).not.toContain(userId);
        expect(JSON.parse(testRecords.open(raw, id).plaintext).auth.userId).toBe(userId);
        const [entry] = await redis.zRangeWithScores(userKey(userId), 0, -1);
        expect(entry?.value).toBe(id);
        expect(entry?.score).toBeGreaterThan(0); // confirmed: live, not pending

        // validate slides the TTL back to the idle timeout; PEXPIRE never creates a key.
        await redis.pExpire(sessionKey(sid), 5000);
        expect((await repository().validateSession(sid))?.auth.userId).toBe(userId);
        expect(await redis.pTTL(sessionKey(sid))).toBeGreaterThan(55_000);
        await repository().deleteSession(sid, userId);
        expect(await repository().validateSession(sid)).toBeNull();
        expect(await redis.exists(sessionKey(sid))).toBe(0);
        expect(await redis.zRange(userKey(userId), 0, -1)).toEqual([]);
      });

      it('20 sessions of one user are spread over the keyspace, their index is one key, and all end', async () => {
        const userId = `user-${randomBytes(4).toString('hex')}`;
        const sids: string[] = [];
        for (let i = 0; i < 20; i++) sids.push(await login(userId));
        // The sessions' keys are spread over the masters; the user's index is one key.
        const spread = await topology.mastersWithKeys(`${prefix}sess:*`);
        expect(spread).toBeGreaterThanOrEqual(Math.min(topology.masters, 2));
        expect(await topology.mastersWithKeys(userKey(userId))).toBe(1);
        const store = repository();
        expect(await store.listUserSessions(userId)).toHaveLength(20);
        expect(await store.deleteUserSessions(userId)).toBe(20);
        for (const sid of sids) expect(await redis.exists(sessionKey(sid))).toBe(0);
      });

      it('prunes index entries whose session Redis has forgotten', async () => {
        const userId = `user-${randomBytes(4).toString('hex')}`;
        const live = await login(userId);
        const dead = await login(userId);
        await redis.del(sessionKey(dead)); // as its TTL would
        expect((await repository().listUserSessions(userId)).map((s) => s.id)).toEqual([
          storedSessionId(live),
        ]);
        expect(await redis.zRange(userKey(userId), 0, -1)).toEqual([storedSessionId(live)]);
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
            sids.push(await createLoggedInSession(redis, prefix, withId(user).id));
          const run = await usersCli(['disable', 'erin'], {
            ...topology.env,
            USERS_FILE: usersFile,
            REDIS_PREFIX: prefix,
          });
          expect(run.stderr).toBe('');
          expect(run.stdout).toContain('ended 3 sessions of "erin"');
          expect(run.code).toBe(0);
          for (const sid of sids) expect(await redis.exists(sessionKey(sid))).toBe(0);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    });

    describe('the login throttle', () => {
      it('blocks the account + address pair after 5 failures, and a success clears it', async () => {
        const throttle = createLoginThrottle({ redis, prefix });
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
        const options = { redis, prefix, issuer: 'gatehouse', keys: testSigningKeys };
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

    describe('the session-service (createApp)', () => {
      it('logs in with JSON, validates the cookie, logs out, then refuses it', async () => {
        const users = await writeTestUsers([{ username: 'dave', password: 'correct horse 42' }]);
        const service = await buildSessionService({
          usersFile: users.path,
          env: { ...topology.env, REDIS_PREFIX: prefix },
          throttleLimits: NO_THROTTLE,
        });
        try {
          expect((await request(service.app).get('/readyz')).status).toBe(200);
          const login = await request(service.app)
            .post('/auth/login')
            .set('content-type', 'application/json')
            .send(JSON.stringify({ username: 'dave', password: 'correct horse 42' }));
          expect(login.status).toBe(200);
          const cookie = cookiePairOf(login.headers['set-cookie']);

          const valid = await request(service.app).get('/auth/validate').set('cookie', cookie);
          expect(valid.status).toBe(200);
          expect(valid.headers['x-auth-request-user']).toBe('dave');

          const logout = await request(service.app)
            .post('/auth/logout')
            .set('cookie', cookie)
            .set('content-type', 'application/json')
            .send('{}');
          expect(logout.status).toBe(204);
          expect(
            (await request(service.app).get('/auth/validate').set('cookie', cookie)).status,
          ).toBe(401);
        } finally {
          await service.close();
        }
      });

      it('leaves nothing in Redis a reader could use: after logins, a signed identity, a logout and a revocation, no key, value or revocation event holds a session id, no session record holds the username, and nothing holds the private signing key', async () => {
        const username = `dump-${randomBytes(6).toString('hex')}`;
        const password = 'correct horse 43';
        const users = await writeTestUsers([{ username, password }]);
        const service = await buildSessionService({
          usersFile: users.path,
          env: { ...topology.env, REDIS_PREFIX: prefix },
          throttleLimits: NO_THROTTLE,
        });
        const channel = await recordChannel(
          topology.masterUrls[0] as string,
          `${prefix}revocations`,
        );
        try {
          const login = async () => {
            const res = await request(service.app)
              .post('/auth/login')
              .set('content-type', 'application/json')
              .send(JSON.stringify({ username, password }));
            expect(res.status).toBe(200);
            return {
              cookie: cookiePairOf(res.headers['set-cookie']),
              sid: sidOf(res.headers['set-cookie']),
            };
          };
          const [loggedOut, revoked, kept] = [await login(), await login(), await login()];
          // A signed identity (the gateway's internal validate): the signing key now exists.
          const signed = await request(service.app)
            .get('/internal/validate?aud=demo-app')
            .set('authorization', `Bearer ${TEST_INTERNAL_TOKEN}`)
            .set('cookie', kept.cookie);
          expect(signed.status).toBe(200);
          expect(signed.headers['x-auth-request-jwt']).toBeTruthy();
          for (const s of [loggedOut, revoked, kept])
            expect(
              (await request(service.app).get('/auth/validate').set('cookie', s.cookie)).status,
            ).toBe(200);

          const logout = await request(service.app)
            .post('/auth/logout')
            .set('cookie', loggedOut.cookie)
            .set('content-type', 'application/json')
            .send('{}');
          expect(logout.status).toBe(204);
          const list = await request(service.app).get('/auth/sessions').set('cookie', kept.cookie);
          const other = (list.body.sessions as { id: string; current: boolean }[]).find(
            (s) => !s.current,
          );
          expect(other).toBeDefined();
          const revoke = await request(service.app)
            .delete(`/auth/sessions/${other?.id}`)
            .set('cookie', kept.cookie);
          expect(revoke.status).toBe(204);
          expect(
            (await request(service.app).get('/auth/validate').set('cookie', revoked.cookie)).status,
          ).toBe(401);
          // Both ends were published (by stored id): the recording heard what a subscriber hears.
          await waitFor(
            async () =>
              [loggedOut, revoked].every((s) =>
                channel.messages.some((m) => m.includes(storedSessionId(s.sid))),
              ),
            5000,
            'both revocation events on the channel',
          );

          const dump = await dumpRedis(topology.masterUrls, prefix);
          const records = dump.filter((k) => k.key.startsWith(`${prefix}sess:`));
          expect(records.length).toBeGreaterThanOrEqual(1); // the kept session
          for (const s of [loggedOut, revoked, kept]) {
            expect(occurrences(dump, s.sid), 'session id in Redis').toEqual([]);
            expect(
              channel.messages.filter((m) => m.includes(s.sid)),
              'session id published',
            ).toEqual([]);
          }
          expect(occurrences(records, username), 'username in a session record').toEqual([]);
          expect(occurrences(records, '"auth"'), 'a session record in clear').toEqual([]);
          // The private key's `d`, known only by opening the sealed key with the test's key.
          const keyName = `${prefix}jwt:signing-key`;
          const sealedKey = dump.find((k) => k.key === keyName)?.values[0] ?? '';
          const { d } = JSON.parse(testSigningKeys.open(sealedKey, keyName).plaintext) as {
            d: string;
          };
          expect(d.length).toBeGreaterThan(20);
          expect(occurrences(dump, d), 'the private signing key in Redis').toEqual([]);
          expect(occurrences(dump, '"kty"'), 'a JWK in clear').toEqual([]);
        } finally {
          await channel.stop();
          await service.close();
        }
      });
    });
  });
}

describeStoreContract('standalone Redis', async () => {
  const server = await startRedis();
  return {
    env: { REDIS_URL: server.url },
    masters: 1,
    mastersWithKeys: mastersWithKeysOn([server.url]),
    masterUrls: [server.url],
    stop: () => server.stop(),
  };
});

describeStoreContract('Redis Cluster (3 masters)', async () => {
  const cluster = await startRedisCluster();
  return {
    env: { REDIS_CLUSTER_NODES: cluster.clusterNodes },
    masters: cluster.nodes.length,
    mastersWithKeys: mastersWithKeysOn(cluster.nodes.map((n) => n.url)),
    masterUrls: cluster.nodes.map((n) => n.url),
    stop: () => cluster.stop(),
  };
});

describeStoreContract('Redis Sentinel (primary, replica, 3 sentinels)', async () => {
  const sentinel = await startRedisSentinel();
  return {
    env: { REDIS_SENTINELS: sentinel.sentinelList, REDIS_SENTINEL_NAME: sentinel.name },
    masters: 1,
    mastersWithKeys: mastersWithKeysOn([sentinel.primary.url]),
    masterUrls: [sentinel.primary.url],
    stop: () => sentinel.stop(),
  };
});
