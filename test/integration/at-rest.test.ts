/**
 * What Redis holds of a session is sealed (AES-256-GCM, domain/sealing.ts) and bound to the
 * session's stored id: a record moved, altered, written in clear (an older version) or sealed
 * with a key this service no longer has is no session (401, never a 500), and the service logs
 * it. Key rotation: SESSION_ENCRYPTION_KEY seals, SESSION_ENCRYPTION_KEY_PREVIOUS still opens.
 * Real Redis, real session-service (createApp).
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storedSessionId } from '../../common/src/session-id.js';
import { createSealer } from '../../session-service/src/domain/sealing.js';
import { TEST_ENCRYPTION_KEY } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  jsonLogout,
  NO_THROTTLE,
  type SessionServiceApp,
  sidOf,
  signedSessionCookie,
} from '../helpers/session-service.js';
import { sessionKeyOf, storedAuthOf } from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';

type Service = SessionServiceApp;

const PASSWORD = 'correct horse battery';
const NEW_KEY = 'the-next-encryption-key-the-next-encryption-key';

let redis: RedisServer;
let usersFile: string;
let service: Service;
/** What `service` logged (pino JSON lines). */
const logged: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  redis = await startRedis();
  usersFile = (
    await writeTestUsers([
      { username: 'alice', password: PASSWORD },
      { username: 'bob', password: PASSWORD },
    ])
  ).path;
  const logger = pino(
    { level: 'warn' },
    { write: (line: string) => logged.push(JSON.parse(line) as Record<string, unknown>) },
  );
  service = await buildSessionService({
    redisUrl: redis.url,
    usersFile,
    throttleLimits: NO_THROTTLE,
    logger,
  });
});

afterAll(async () => {
  await service?.close();
  await redis?.stop();
});

async function login(app: Service, username = 'alice') {
  const res = await request(app.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .send(JSON.stringify({ username, password: PASSWORD }));
  expect(res.status).toBe(200);
  return { cookie: cookiePairOf(res.headers['set-cookie']), sid: sidOf(res.headers['set-cookie']) };
}

const validate = (app: Service, cookie: string) =>
  request(app.app).get('/auth/validate').set('cookie', cookie);

/** The service's log lines about the session with stored id `id` not opening. */
const unreadableLogged = (sid: string) =>
  logged.filter((l) => l.session === storedSessionId(sid) && String(l.msg).includes('unreadable'));

describe('a session record in Redis', () => {
  it('holds neither the username nor anything else in clear', async () => {
    const { sid } = await login(service);
    const raw = (await redis.client.get(sessionKeyOf(sid))) ?? '';
    expect(raw).toMatch(/^g1\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]+$/);
    expect(raw).not.toContain('alice');
    expect((await storedAuthOf(redis.client, sid))?.userId).toMatch(/\S/);
  });

  it("copied under another session's key does not open: 401, not a 500, and it is logged", async () => {
    const alice = await login(service, 'alice');
    const bob = await login(service, 'bob');
    // Someone who can write Redis puts alice's record under bob's key, hoping to become alice.
    const record = (await redis.client.get(sessionKeyOf(alice.sid))) ?? '';
    await redis.client.set(sessionKeyOf(bob.sid), record, { KEEPTTL: true });
    const res = await validate(service, bob.cookie);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('UNAUTHENTICATED');
    expect(unreadableLogged(bob.sid).map((l) => l.reason)).toContain('forged or damaged');
    // The sessions page, logout and the list go through the express-session store: same answer.
    expect(
      (await request(service.app).get('/auth/sessions').set('cookie', bob.cookie)).status,
    ).toBe(401);
    expect((await validate(service, alice.cookie)).status).toBe(200);
  });

  it('altered by one character is refused (401) and logged', async () => {
    const { cookie, sid } = await login(service);
    const key = sessionKeyOf(sid);
    const record = (await redis.client.get(key)) ?? '';
    const at = record.length - 5;
    const flipped = record[at] === 'A' ? 'B' : 'A';
    await redis.client.set(key, record.slice(0, at) + flipped + record.slice(at + 1), {
      KEEPTTL: true,
    });
    expect((await validate(service, cookie)).status).toBe(401);
    expect(unreadableLogged(sid).map((l) => l.reason)).toContain('forged or damaged');
  });
});

describe('sessions stored by the previous version (session id as key, record in clear)', () => {
  it('are ended: the old cookie gets 401 and the user signs in again', async () => {
    const sid = randomBytes(24).toString('base64url');
    const auth = {
      userId: 'alice',
      username: 'alice',
      groups: [],
      email: '',
      createdAt: Date.now(),
    };
    await redis.client.set(`gh:sess:${sid}`, JSON.stringify({ auth }), { EX: 600 });
    const cookie = `gatehouse=${signedSessionCookie(sid)}`;
    expect((await validate(service, cookie)).status).toBe(401);
    // A clear record where a sealed one belongs (written by anyone but us): refused and logged.
    await redis.client.set(sessionKeyOf(sid), JSON.stringify({ auth }), { EX: 600 });
    expect((await validate(service, cookie)).status).toBe(401);
    expect(unreadableLogged(sid).map((l) => l.reason)).toContain('not sealed');
    await redis.client.del([`gh:sess:${sid}`, sessionKeyOf(sid)]);
  });
});

describe('rotating SESSION_ENCRYPTION_KEY', () => {
  it('keeps sessions sealed with the previous key, seals new ones with the new key, and a service without the old key refuses the old sessions', async () => {
    const before = await login(service);
    const oldKeyId = createSealer([TEST_ENCRYPTION_KEY], 'session-record').keyId;
    const newKeyId = createSealer([NEW_KEY], 'session-record').keyId;
    expect((await redis.client.get(sessionKeyOf(before.sid)))?.split('.')[1]).toBe(oldKeyId);

    const rotated = await buildSessionService({
      redisUrl: redis.url,
      usersFile,
      throttleLimits: NO_THROTTLE,
      env: {
        SESSION_ENCRYPTION_KEY: NEW_KEY,
        SESSION_ENCRYPTION_KEY_PREVIOUS: TEST_ENCRYPTION_KEY,
      },
    });
    const dropped = await buildSessionService({
      redisUrl: redis.url,
      usersFile,
      throttleLimits: NO_THROTTLE,
      env: { SESSION_ENCRYPTION_KEY: NEW_KEY },
    });
    try {
      expect((await validate(rotated, before.cookie)).status).toBe(200);
      const after = await login(rotated);
      expect((await redis.client.get(sessionKeyOf(after.sid)))?.split('.')[1]).toBe(newKeyId);
      expect((await validate(rotated, after.cookie)).status).toBe(200);
      // Logout through the rotated service reads the old record too (express-session store).
      const out = await jsonLogout(rotated.app, before.cookie);
      expect(out.status).toBe(204);
      expect(await redis.client.exists(sessionKeyOf(before.sid))).toBe(0);

      // Once the old key is gone from every instance, what it sealed no longer opens.
      const stale = await login(service);
      expect((await validate(dropped, stale.cookie)).status).toBe(401);
      expect((await validate(dropped, after.cookie)).status).toBe(200);
    } finally {
      await Promise.all([rotated.close(), dropped.close()]);
    }
  });
});
