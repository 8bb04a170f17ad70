/**
 * A session's life from login to its end: lifetimes, remember me, identity, users disabled or
 * with a changed password, and how often validate writes. Over 300 lines on purpose: every part
 * reads one fixture (four session-service apps with different lifetimes over one Redis, and the
 * users they log in), which split files would each repeat. The logout race is in
 * session-resurrection.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readUsersFile, writeUsersFile } from '../../session-service/src/adapters/users-file.js';
import { createRedisSessionRepository } from '../../session-service/src/domain/session-repository-redis.js';
import type { Lifetimes } from '../../session-service/src/domain/sessions.js';
import { waitFor } from '../helpers/ports.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  NO_THROTTLE,
  type SessionServiceApp,
  setCookieLine,
  sidOf,
  signedSessionCookie,
} from '../helpers/session-service.js';
import {
  sealedRecordOf,
  sessionKeyOf,
  storedAuthOf,
  storedSessionId,
  testRecords,
} from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';

type Service = SessionServiceApp;

const PASSWORD = 'correct horse battery';
/** 256 random bits, base64url. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

let redis: RedisServer;
let usersFile: string;
let revocableUsersFile: string;
const ids: Record<string, string> = {};
/** SESSION_IDLE_TIMEOUT=2, SESSION_ABSOLUTE_TIMEOUT=4. */
let short: Service;
/** The same, plus REMEMBER_ME_TIMEOUT=6, REMEMBER_ME_IDLE_TIMEOUT=3. */
let remember: Service;
/** Default lifetimes. */
let plain: Service;
/** Its users file is rewritten by the tests (disable, password change). */
let revocable: Service;

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    { username: 'alice', password: PASSWORD },
    { username: 'bob', password: PASSWORD },
  ]);
  usersFile = users.path;
  const revocableUsers = await writeTestUsers([
    { username: 'carol', password: PASSWORD },
    { username: 'dave', password: PASSWORD },
  ]);
  revocableUsersFile = revocableUsers.path;
  for (const u of [...users.users, ...revocableUsers.users]) ids[u.username] = u.id ?? '';
  const build = (env: Record<string, string>, file = usersFile) =>
    buildSessionService({ redisUrl: redis.url, usersFile: file, env, throttleLimits: NO_THROTTLE });
  const lifetimes = { SESSION_IDLE_TIMEOUT: '2', SESSION_ABSOLUTE_TIMEOUT: '4' };
  [short, remember, plain, revocable] = await Promise.all([
    build(lifetimes),
    build({ ...lifetimes, REMEMBER_ME_TIMEOUT: '6', REMEMBER_ME_IDLE_TIMEOUT: '3' }),
    build({}),
    build({}, revocableUsersFile),
  ]);
});

afterAll(async () => {
  await Promise.all([short, remember, plain, revocable].map((s) => s?.close()));
  await redis?.stop();
});

const sessionKey = (sid: string) => sessionKeyOf(sid);
const userIndex = (username: string) => `gh:user:{${ids[username]}}:sessions`;

function jsonLogin(
  service: Service,
  username: string,
  password = PASSWORD,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
) {
  return request(service.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .set(headers)
    .send(JSON.stringify({ username, password, ...extra }));
}

/** Logs in with JSON and returns the cookie pair (`gatehouse=...`) and the session id. */
async function loggedIn(service: Service, username = 'alice') {
  const res = await jsonLogin(service, username);
  expect(res.status).toBe(200);
  return { pair: cookiePairOf(res.headers['set-cookie']), sid: sidOf(res.headers['set-cookie']) };
}

/** Like a browser: the login page (CSRF cookie + token), then the form, with `cookies` sent along. */
async function formLogin(service: Service, fields: Record<string, string>, cookies: string[] = []) {
  const page = request(service.app).get('/auth/login').set('accept', 'text/html');
  if (cookies.length > 0) page.set('cookie', cookies.join('; '));
  const shown = await page;
  const token = /name="_csrf" value="([^"]+)"/.exec(shown.text)?.[1] ?? '';
  const csrfCookie = cookiePairOf(shown.headers['set-cookie'], 'gatehouse-csrf');
  return request(service.app)
    .post('/auth/login')
    .type('form')
    .set('accept', 'text/html')
    .set('sec-fetch-site', 'same-origin')
    .set('cookie', [...cookies, csrfCookie].join('; '))
    .send({ _csrf: token, rd: '/', ...fields });
}

const validate = (service: Service, cookie: string) =>
  request(service.app).get('/auth/validate').set('cookie', cookie);

async function storedAuth(sid: string) {
  return storedAuthOf(redis.client, sid);
}

describe.concurrent('session lifetimes (idle 2 s, absolute 4 s)', () => {
  it('validate slides the idle timeout: the Redis PTTL is what is left of it', async ({
    expect,
  }) => {
    const { pair, sid } = await loggedIn(short);
    const atLogin = await redis.client.pTTL(sessionKey(sid));
    expect(atLogin).toBeGreaterThan(1500);
    expect(atLogin).toBeLessThanOrEqual(2000);

    await sleep(1000);
    const idle = await redis.client.pTTL(sessionKey(sid));
    expect(idle).toBeLessThanOrEqual(1000);

    const res = await validate(short, pair);
    expect(res.status).toBe(200);
    const slid = await redis.client.pTTL(sessionKey(sid));
    expect(slid).toBeGreaterThan(1500);
    expect(slid).toBeLessThanOrEqual(2000);
    const expiresAt = Date.parse(res.body.session.expiresAt);
    expect(expiresAt - Date.now()).toBeGreaterThan(1500);
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(2000);
  });

  it('a session left idle for over 2 s is gone from Redis and its cookie is refused', async ({
    expect,
  }) => {
    const { pair, sid } = await loggedIn(short);
    const started = Date.now();
    expect(await redis.client.exists(sessionKey(sid))).toBe(1);
    await waitFor(
      async () => (await redis.client.exists(sessionKey(sid))) === 0,
      3500,
      'the idle session to expire',
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    const replay = await validate(short, pair);
    expect(replay.status).toBe(401);
    expect(replay.body.error).toBe('UNAUTHENTICATED');
  });

  it('ends at the absolute timeout even when validated every 0.5 s, and the TTL never outlives it', async ({
    expect,
  }) => {
    const { pair, sid } = await loggedIn(short);
    const createdAt = (await storedAuth(sid))?.createdAt ?? 0;
    expect(createdAt).toBeGreaterThan(0);
    const absoluteEnd = createdAt + 4000;
    let lastOk = 0;
    let refusedAt = 0;
    let cappedSeen = false;
    while (Date.now() < absoluteEnd + 1500) {
      const res = await validate(short, pair);
      const answeredAt = Date.now();
      if (res.status !== 200) {
        expect(res.status).toBe(401);
        refusedAt = answeredAt;
        break;
      }
      lastOk = answeredAt;
      expect(Date.parse(res.body.session.expiresAt)).toBeLessThanOrEqual(absoluteEnd);
      const before = Date.now();
      const pttl = await redis.client.pTTL(sessionKey(sid));
      if (pttl > 0) {
        expect(pttl).toBeLessThanOrEqual(2000);
        // never longer than what is left of the absolute lifetime (Redis's cached clock can lag
        // Node's by a few ms on a loaded machine; 25 ms of slack, far below any timeout)
        expect(pttl).toBeLessThanOrEqual(absoluteEnd - before + 25);
        if (pttl < 1500) cappedSeen = true;
      }
      await sleep(500);
    }
    expect(lastOk - createdAt).toBeGreaterThan(3000); // kept alive well past the idle timeout
    expect(cappedSeen).toBe(true);
    expect(refusedAt).toBeGreaterThan(0);
    expect(refusedAt).toBeGreaterThanOrEqual(absoluteEnd - 50);
    expect(await redis.client.exists(sessionKey(sid))).toBe(0);
  });

  it('a remembered session follows the remember-me limits: idle 3 s, absolute 6 s', async ({
    expect,
  }) => {
    const res = await formLogin(remember, { username: 'alice', password: PASSWORD, remember: '1' });
    expect(res.status).toBe(303);
    const sid = sidOf(res.headers['set-cookie']);
    const pair = cookiePairOf(res.headers['set-cookie']);
    const createdAt = (await storedAuth(sid))?.createdAt ?? 0;
    const atLogin = await redis.client.pTTL(sessionKey(sid));
    expect(atLogin).toBeGreaterThan(2000); // longer than the ordinary idle timeout of 2 s
    expect(atLogin).toBeLessThanOrEqual(3000);

    let lastOk = 0;
    let refusedAt = 0;
    while (Date.now() < createdAt + 9000) {
      const v = await validate(remember, pair);
      if (v.status !== 200) {
        refusedAt = Date.now();
        break;
      }
      lastOk = Date.now();
      const before = Date.now();
      const pttl = await redis.client.pTTL(sessionKey(sid));
      if (pttl > 0) {
        expect(pttl).toBeLessThanOrEqual(3000);
        // the same 25 ms of slack for Redis's cached clock as in the test above
        expect(pttl).toBeLessThanOrEqual(createdAt + 6000 - before + 25);
      }
      await sleep(750);
    }
    expect(lastOk - createdAt).toBeGreaterThan(4500); // past the ordinary absolute timeout
    expect(refusedAt).toBeGreaterThanOrEqual(createdAt + 6000 - 50);
    expect(refusedAt).toBeGreaterThan(0);
  });
});

describe('remember me', () => {
  it('the login form offers the checkbox only when REMEMBER_ME_TIMEOUT is set', async () => {
    const off = await request(short.app).get('/auth/login');
    expect(off.text).not.toContain('name="remember"');
    const on = await request(remember.app).get('/auth/login');
    expect(on.text).toMatch(/<input type="checkbox" id="remember" name="remember" value="1">/);
    expect(on.text).toContain('<label for="remember">');
  });

  it('with remember=1 the cookie is persistent and expires with the remember-me lifetime', async () => {
    const res = await formLogin(remember, { username: 'alice', password: PASSWORD, remember: '1' });
    expect(res.status).toBe(303);
    const line = setCookieLine(res.headers['set-cookie']) ?? '';
    const expires = /;\s*Expires=([^;]+)/i.exec(line)?.[1];
    const maxAge = /;\s*Max-Age=(\d+)/i.exec(line)?.[1];
    expect(expires ?? maxAge).toBeDefined();
    const endsAt = maxAge ? Date.now() + Number(maxAge) * 1000 : Date.parse(expires ?? '');
    expect(endsAt - Date.now()).toBeGreaterThan(4000);
    expect(endsAt - Date.now()).toBeLessThanOrEqual(7000);
    expect((await storedAuth(sidOf(res.headers['set-cookie'])))?.remember).toBe(true);
  });

  it('without remember the cookie is a browser-session cookie and the ordinary limits apply', async () => {
    const res = await formLogin(remember, { username: 'alice', password: PASSWORD });
    expect(res.status).toBe(303);
    const line = setCookieLine(res.headers['set-cookie']) ?? '';
    expect(line).not.toMatch(/Expires=/i);
    expect(line).not.toMatch(/Max-Age=/i);
    const pttl = await redis.client.pTTL(sessionKey(sidOf(res.headers['set-cookie'])));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(2000);
  });

  it('remember=1 is ignored when remember me is not configured', async () => {
    const res = await formLogin(short, { username: 'alice', password: PASSWORD, remember: '1' });
    expect(res.status).toBe(303);
    const line = setCookieLine(res.headers['set-cookie']) ?? '';
    expect(line).not.toMatch(/Expires=|Max-Age=/i);
    const sid = sidOf(res.headers['set-cookie']);
    expect((await storedAuth(sid))?.remember).toBeUndefined();
    expect(await redis.client.pTTL(sessionKey(sid))).toBeLessThanOrEqual(2000);
  });
});

describe('session identity', () => {
  it('every login gets a new random id of 43 base64url characters (256 bits)', async () => {
    const sids: string[] = [];
    for (let i = 0; i < 5; i++) sids.push((await loggedIn(plain)).sid);
    expect(new Set(sids).size).toBe(5);
    for (const sid of sids) expect(sid).toMatch(SESSION_ID);
  });

  it('a login from a browser that already has a session replaces its id', async () => {
    const first = await formLogin(plain, { username: 'alice', password: PASSWORD });
    const firstSid = sidOf(first.headers['set-cookie']);
    const second = await formLogin(plain, { username: 'bob', password: PASSWORD }, [
      cookiePairOf(first.headers['set-cookie']),
    ]);
    expect(second.status).toBe(303);
    const secondSid = sidOf(second.headers['set-cookie']);
    expect(secondSid).toMatch(SESSION_ID);
    expect(secondSid).not.toBe(firstSid);
    expect(await redis.client.exists(sessionKey(firstSid))).toBe(0);
    expect((await validate(plain, cookiePairOf(first.headers['set-cookie']))).status).toBe(401);
    const now = await validate(plain, cookiePairOf(second.headers['set-cookie']));
    expect(now.body.user.username).toBe('bob');
  });

  it('a planted session id that Redis does not know never becomes authenticated', async () => {
    const planted = randomBytes(24).toString('base64url');
    const tossed = `gatehouse=${signedSessionCookie(planted)}`;
    const res = await formLogin(plain, { username: 'alice', password: PASSWORD }, [tossed]);
    expect(res.status).toBe(303);
    const sid = sidOf(res.headers['set-cookie']);
    expect(sid).toMatch(SESSION_ID);
    expect(sid).not.toBe(planted);
    expect(await redis.client.exists(sessionKey(planted))).toBe(0);
    expect(await redis.client.zScore(userIndex('alice'), storedSessionId(planted))).toBeNull();
    expect((await validate(plain, tossed)).status).toBe(401);
    expect((await validate(plain, cookiePairOf(res.headers['set-cookie']))).status).toBe(200);
  });

  it('a planted id that exists in Redis as an anonymous record is not reused by the login', async () => {
    const planted = randomBytes(24).toString('base64url');
    const anonymous = {
      cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' },
    };
    await redis.client.set(sessionKey(planted), sealedRecordOf(planted, anonymous), { EX: 60 });
    const tossed = `gatehouse=${signedSessionCookie(planted)}`;

    for (const login of [
      () => formLogin(plain, { username: 'alice', password: PASSWORD }, [tossed]),
      () =>
        request(plain.app)
          .post('/auth/login')
          .set('content-type', 'application/json')
          .set('cookie', tossed)
          .send(JSON.stringify({ username: 'alice', password: PASSWORD })),
    ]) {
      const res = await login();
      expect([200, 303]).toContain(res.status);
      const sid = sidOf(res.headers['set-cookie']);
      expect(sid).toMatch(SESSION_ID);
      expect(sid).not.toBe(planted);
      expect(await storedAuth(planted)).toBeNull();
      expect(await redis.client.zScore(userIndex('alice'), storedSessionId(planted))).toBeNull();
      expect((await validate(plain, tossed)).status).toBe(401);
    }
  });

  it('a failed login with a planted id leaves it unauthenticated', async () => {
    const planted = randomBytes(24).toString('base64url');
    const anonymous = {
      cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' },
    };
    await redis.client.set(sessionKey(planted), sealedRecordOf(planted, anonymous), { EX: 60 });
    const tossed = `gatehouse=${signedSessionCookie(planted)}`;
    const res = await formLogin(plain, { username: 'alice', password: 'wrong password' }, [tossed]);
    expect(res.status).toBe(401);
    expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
    expect(await storedAuth(planted)).toBeNull();
    expect((await validate(plain, tossed)).status).toBe(401);
  });

  it('over HTTPS (PUBLIC_URL https) the cookie is __Host-gatehouse: Secure, Path=/, no Domain', async () => {
    const https = await buildSessionService({
      redisUrl: redis.url,
      usersFile,
      env: { PUBLIC_URL: 'https://gatehouse.example' },
      throttleLimits: NO_THROTTLE,
    });
    try {
      const res = await jsonLogin(https, 'alice', PASSWORD, {}, { 'x-forwarded-proto': 'https' });
      expect(res.status).toBe(200);
      const line = setCookieLine(res.headers['set-cookie'], '__Host-gatehouse') ?? '';
      expect(line).not.toBe('');
      expect(setCookieLine(res.headers['set-cookie'], 'gatehouse')).toBeUndefined();
      expect(line).toMatch(/;\s*Secure/i);
      expect(line).toMatch(/;\s*Path=\/(;|$)/i);
      expect(line).toMatch(/;\s*HttpOnly/i);
      expect(line).not.toMatch(/Domain=/i);
      const pair = cookiePairOf(res.headers['set-cookie'], '__Host-gatehouse');
      expect((await validate(https, pair)).status).toBe(200);
      // The same value under the prefix-less name (settable from a sibling subdomain) is ignored.
      expect((await validate(https, pair.replace(/^__Host-/, ''))).status).toBe(401);
      // Logout clears it with the attributes a browser needs to accept the deletion.
      const out = await request(https.app)
        .post('/auth/logout')
        .set('content-type', 'application/json')
        .set('x-forwarded-proto', 'https')
        .set('cookie', pair)
        .send('{}');
      expect(out.status).toBe(204);
      const cleared = setCookieLine(out.headers['set-cookie'], '__Host-gatehouse') ?? '';
      expect(cleared).toMatch(/Expires=Thu, 01 Jan 1970/);
      expect(cleared).toMatch(/;\s*Secure/i);
      expect(cleared).toMatch(/;\s*Path=\/(;|$)/i);
      expect(cleared).not.toMatch(/Domain=/i);
    } finally {
      await https.close();
    }
  });

  it('with COOKIE_DOMAIN the cookie is named gatehouse and carries the Domain', async () => {
    const sso = await buildSessionService({
      redisUrl: redis.url,
      usersFile,
      env: { PUBLIC_URL: 'https://gatehouse.example', COOKIE_DOMAIN: 'gatehouse.example' },
      throttleLimits: NO_THROTTLE,
    });
    try {
      const res = await jsonLogin(sso, 'alice', PASSWORD, {}, { 'x-forwarded-proto': 'https' });
      expect(res.status).toBe(200);
      expect(setCookieLine(res.headers['set-cookie'], '__Host-gatehouse')).toBeUndefined();
      const line = setCookieLine(res.headers['set-cookie'], 'gatehouse') ?? '';
      expect(line).toMatch(/;\s*Domain=gatehouse\.example/i);
      expect(line).toMatch(/;\s*Secure/i);
      expect(line).toMatch(/;\s*Path=\//i);
    } finally {
      await sso.close();
    }
  });

  it('GET /auth/sessions ignores a session id sent anywhere but the session cookie', async () => {
    const { pair, sid } = await loggedIn(plain);
    const value = pair.slice('gatehouse='.length);
    const res = await request(plain.app)
      .get(`/auth/sessions?gatehouse=${value}&sid=${sid}&session=${sid}`)
      .set('accept', 'application/json')
      .set('authorization', `Bearer ${value}`)
      .set('x-session-id', sid)
      .set('cookie', `connect.sid=${value}; session=${value}; sid=${sid}`);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('UNAUTHENTICATED');
    expect((await request(plain.app).get('/auth/sessions').set('cookie', pair)).status).toBe(200);
  });

  it('POST /auth/logout ignores a session id in the body or headers', async () => {
    const { pair, sid } = await loggedIn(plain);
    const value = pair.slice('gatehouse='.length);
    const res = await request(plain.app)
      .post(`/auth/logout?gatehouse=${value}`)
      .set('content-type', 'application/json')
      .set('x-session-id', sid)
      .send(JSON.stringify({ gatehouse: value, sid }));
    expect(res.status).toBe(204);
    expect(await redis.client.exists(sessionKey(sid))).toBe(1);
    expect((await validate(plain, pair)).status).toBe(200);
  });
});

/** Rewrite the users file in place (same ids and hashes), as `npm run users` does. */
async function editUser(username: string, change: Record<string, unknown>) {
  const users = await readUsersFile(revocableUsersFile);
  await writeUsersFile(
    revocableUsersFile,
    users.map((u) => (u.username === username ? { ...u, ...change } : u)),
  );
}

describe('users disabled or with a changed password', () => {
  it('a disabled user loses an existing session within a second, and its key is deleted', async () => {
    const { pair, sid } = await loggedIn(revocable, 'carol');
    expect((await validate(revocable, pair)).status).toBe(200);
    await editUser('carol', { disabled: true });
    await waitFor(
      async () => (await validate(revocable, pair)).status === 401,
      1000,
      'the disabled user to be refused',
    );
    expect(await redis.client.exists(sessionKey(sid))).toBe(0);
    expect(await redis.client.zScore(userIndex('carol'), storedSessionId(sid))).toBeNull();
  });

  it('sessions created before sessionsNotBefore end within a second; a new login works', async () => {
    const first = await loggedIn(revocable, 'dave');
    const second = await loggedIn(revocable, 'dave');
    await editUser('dave', { sessionsNotBefore: Date.now() });
    for (const s of [first, second]) {
      await waitFor(
        async () => (await validate(revocable, s.pair)).status === 401,
        1000,
        'the old session to be refused',
      );
      expect(await redis.client.exists(sessionKey(s.sid))).toBe(0);
    }
    const fresh = await loggedIn(revocable, 'dave');
    const res = await validate(revocable, fresh.pair);
    expect(res.status).toBe(200);
    expect(res.body.user.username).toBe('dave');
  });
});

describe('validate writes to Redis at most once per slide interval', () => {
  it('reads the session every time, slides its idle timeout at most every slideIntervalMs, and reports the expiry Redis has', async () => {
    let t = Date.now();
    const prefix = `slide-${randomBytes(4).toString('hex')}:`;
    const lifetimes: Lifetimes = {
      idleSeconds: 60,
      absoluteSeconds: 3600,
      rememberIdleSeconds: 60,
      rememberAbsoluteSeconds: 3600,
    };
    const repository = createRedisSessionRepository({
      redis: redis.client,
      lifetimes,
      prefix,
      now: () => t,
      slideIntervalMs: 1000,
      onRevoked: async () => {},
      records: testRecords,
    });
    const sid = randomBytes(24).toString('base64url');
    const id = storedSessionId(sid);
    const key = repository.sessionKey(id);
    const index = repository.userKey('u1');
    const auth = { userId: 'u1', username: 'alice', groups: [], email: '', createdAt: t };
    await redis.client.set(key, sealedRecordOf(sid, { auth }), { PX: 60_000 });
    await redis.client.zAdd(index, { score: 1, value: id });

    // First validate: slides (PTTL back to the idle timeout, last seen = now).
    const first = await repository.validateSession(sid);
    expect(first?.expiresAt).toBe(t + 60_000);
    expect(await redis.client.zScore(index, id)).toBe(t);
    const slidAt = t;

    // Within the interval: read, not written. Redis keeps the TTL it had; the answer says so.
    await redis.client.pExpire(key, 30_000);
    t += 500;
    const second = await repository.validateSession(sid);
    expect(second?.expiresAt).toBe(slidAt + 60_000);
    expect(await redis.client.pTTL(key)).toBeLessThanOrEqual(30_000);
    expect(await redis.client.zScore(index, id)).toBe(slidAt);

    // Every validate reads: a session deleted meanwhile is refused within the interval too.
    const other = randomBytes(24).toString('base64url');
    const otherKey = repository.sessionKey(storedSessionId(other));
    await redis.client.set(otherKey, sealedRecordOf(other, { auth }), { PX: 60_000 });
    expect(await repository.validateSession(other)).not.toBeNull();
    await redis.client.del(otherKey);
    t += 10;
    expect(await repository.validateSession(other)).toBeNull();

    // Past the interval: slides again.
    t += 600;
    const third = await repository.validateSession(sid);
    expect(third?.expiresAt).toBe(t + 60_000);
    expect(await redis.client.pTTL(key)).toBeGreaterThan(55_000);
    expect(await redis.client.zScore(index, id)).toBe(t);

    // The absolute timeout still rules: never slid past it, refused once it passed.
    t = auth.createdAt + 3600_000 - 20_000;
    const late = await repository.validateSession(sid);
    expect(late?.expiresAt).toBe(auth.createdAt + 3600_000);
    expect(await redis.client.pTTL(key)).toBeLessThanOrEqual(20_000);
    t = auth.createdAt + 3600_000 + 1;
    expect(await repository.validateSession(sid)).toBeNull();
    expect(await redis.client.exists(key)).toBe(0);
  });

  it('slides at most every second by default, or every twentieth of a short idle timeout', async () => {
    // SESSION_IDLE_TIMEOUT=2 (the `short` service): every 100 ms. Two validates 150 ms apart
    // both slide; the TTL after the second is the full idle timeout again.
    const { pair, sid } = await loggedIn(short);
    expect((await validate(short, pair)).status).toBe(200);
    await sleep(150);
    await redis.client.pExpire(sessionKey(sid), 1000);
    expect((await validate(short, pair)).status).toBe(200);
    expect(await redis.client.pTTL(sessionKey(sid))).toBeGreaterThan(1500);
  });
});
