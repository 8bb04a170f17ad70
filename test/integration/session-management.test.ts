/**
 * Per-user sessions and the admin API over them (list, revoke, sign out everywhere, the index).
 * Over 300 lines: both read one fixture (two services, four users, the login, listing and index
 * helpers); the audit events of the real process are in session-audit.test.ts.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/ports.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  NO_THROTTLE,
  type SessionServiceApp,
  setCookieLine,
  sidOf,
} from '../helpers/session-service.js';
import { sessionKeyOf, storedAuthAt, storedSessionId } from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';

type Service = SessionServiceApp;

const PASSWORD = 'correct horse battery';
const ADMIN_TOKEN = randomBytes(20).toString('hex'); // 40 characters

let redis: RedisServer;
let usersFile: string;
const ids: Record<string, string> = {};
/** ADMIN_TOKEN set; default lifetimes. */
let service: Service;
/** SESSION_IDLE_TIMEOUT=1, for index pruning; no ADMIN_TOKEN. */
let quick: Service;

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers(
    ['alice', 'bob', 'gina', 'hank'].map((username) => ({ username, password: PASSWORD })),
  );
  usersFile = users.path;
  for (const u of users.users) ids[u.username] = u.id ?? '';
  const build = (env: Record<string, string>) =>
    buildSessionService({ redisUrl: redis.url, usersFile, env, throttleLimits: NO_THROTTLE });
  [service, quick] = await Promise.all([
    build({ ADMIN_TOKEN }),
    build({ SESSION_IDLE_TIMEOUT: '1', SESSION_ABSOLUTE_TIMEOUT: '60' }),
  ]);
});

afterAll(async () => {
  await Promise.all([service?.close(), quick?.close()]);
  await redis?.stop();
});

const sessionKey = (sid: string) => sessionKeyOf(sid);
const userIndex = (username: string) => `gh:user:{${ids[username]}}:sessions`;

interface Browser {
  /** `gatehouse=...` */
  cookie: string;
  sid: string;
  /** The session's stored id (what Redis and the index hold): storedSessionId(sid). */
  id: string;
  userAgent: string;
  ip: string;
}

let browsers = 0;
/** A JSON login from its own user agent and address (X-Forwarded-For from loopback is trusted). */
async function login(
  app: Service,
  username: string,
  userAgent?: string,
  options: { racing?: boolean } = {},
): Promise<Browser> {
  browsers++;
  const ua = userAgent ?? `TestBrowser/${browsers}`;
  const ip = `198.51.100.${(browsers % 250) + 1}`;
  const res = await request(app.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .set('user-agent', ua)
    .set('x-forwarded-for', ip)
    .send(JSON.stringify({ username, password: PASSWORD }));
  // A login that races with "end all sessions" may be undone: 409 LOGIN_INTERRUPTED, no cookie.
  if (options.racing && res.status === 409) {
    expect(res.body.error).toBe('LOGIN_INTERRUPTED');
    expect(res.headers['set-cookie']).toBeUndefined();
  } else expect(res.status).toBe(200);
  return {
    cookie: cookiePairOf(res.headers['set-cookie']),
    sid: sidOf(res.headers['set-cookie']),
    id: storedSessionId(sidOf(res.headers['set-cookie'])),
    userAgent: ua,
    ip,
  };
}

const validate = (app: Service, browser: Browser) =>
  request(app.app).get('/auth/validate').set('cookie', browser.cookie);

interface PublicSession {
  id: string;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
  ip: string;
  userAgent: string;
  current: boolean;
}

async function listJson(app: Service, browser: Browser): Promise<PublicSession[]> {
  const res = await request(app.app)
    .get('/auth/sessions')
    .set('accept', 'application/json')
    .set('cookie', browser.cookie);
  expect(res.status).toBe(200);
  return res.body.sessions as PublicSession[];
}

/** The handle (public id) of `target`'s session, as `viewer` (same user) sees it. */
async function handleOf(app: Service, viewer: Browser, target: Browser): Promise<string> {
  const found = (await listJson(app, viewer)).find((s) => s.userAgent === target.userAgent);
  if (!found) throw new Error(`no session of ${target.userAgent} in the list`);
  return found.id;
}

/** The sessions page like a browser loads it: the CSRF cookie it sets and the form token. */
async function sessionsPage(app: Service, browser: Browser) {
  const res = await request(app.app)
    .get('/auth/sessions')
    .set('accept', 'text/html')
    .set('cookie', browser.cookie);
  expect(res.status).toBe(200);
  return {
    html: res.text,
    token: /name="_csrf" value="([^"]+)"/.exec(res.text)?.[1] ?? '',
    csrfCookie: cookiePairOf(res.headers['set-cookie'], 'gatehouse-csrf'),
  };
}

/** Stored ids of every session in Redis that belongs to `username`. */
async function liveSessionsOf(username: string): Promise<string[]> {
  const out: string[] = [];
  for await (const keys of redis.client.scanIterator({ MATCH: 'gh:sess:*', COUNT: 1000 })) {
    for (const key of keys) {
      const auth = await storedAuthAt(redis.client, key);
      if (auth?.userId === ids[username]) out.push(key.slice('gh:sess:'.length));
    }
  }
  return out.sort();
}

const indexOf = async (username: string) =>
  (await redis.client.zRange(userIndex(username), 0, -1)).sort();

/** POST /auth/logout-all with JSON from `browser`: the other sessions end, or all with `all`. */
const logoutAll = (browser: Browser, body: { all?: boolean } = {}) =>
  request(service.app)
    .post('/auth/logout-all')
    .set('content-type', 'application/json')
    .set('cookie', browser.cookie)
    .send(JSON.stringify(body.all ? { all: true } : {}));

describe('per-user sessions', () => {
  beforeEach(async () => {
    await redis.client.flushAll();
  });

  it('GET /auth/sessions lists every session of the user with one current, under handles', async () => {
    const a = await login(service, 'alice', 'Browser-A/1.0');
    const b = await login(service, 'alice', 'Browser-B/2.0');
    await login(service, 'bob', 'Bob-Browser/1.0');
    const sessions = await listJson(service, a);
    expect(sessions).toHaveLength(2);
    expect(sessions.map((s) => s.userAgent).sort()).toEqual(['Browser-A/1.0', 'Browser-B/2.0']);
    expect(sessions.filter((s) => s.current)).toHaveLength(1);
    expect(sessions.find((s) => s.current)?.userAgent).toBe('Browser-A/1.0');
    for (const s of sessions) {
      expect(Object.keys(s).sort()).toEqual(
        ['createdAt', 'current', 'expiresAt', 'id', 'ip', 'lastSeenAt', 'userAgent'].sort(),
      );
      expect(Number.isNaN(Date.parse(s.createdAt))).toBe(false);
      expect(Number.isNaN(Date.parse(s.lastSeenAt))).toBe(false);
      expect(s.ip).toBe(s.userAgent === 'Browser-A/1.0' ? a.ip : b.ip);
      // The handle is not a usable session id.
      expect(s.id).not.toBe(a.sid);
      expect(s.id).not.toBe(b.sid);
      expect(a.sid).not.toContain(s.id);
      expect(b.sid).not.toContain(s.id);
    }
    const asSeenByB = await listJson(service, b);
    expect(asSeenByB.find((s) => s.current)?.userAgent).toBe('Browser-B/2.0');
    expect(asSeenByB.map((s) => s.id).sort()).toEqual(sessions.map((s) => s.id).sort());
  });

  it('the HTML page lists the sessions with revoke forms that carry the CSRF token', async () => {
    const a = await login(service, 'alice', 'Browser-A/1.0');
    const b = await login(service, 'alice', 'Browser-B/2.0');
    const page = await sessionsPage(service, a);
    expect(page.html).toContain('Browser-A/1.0');
    expect(page.html).toContain('Browser-B/2.0');
    expect(page.token).not.toBe('');
    expect(page.csrfCookie).not.toBe('');
    for (const browser of [a, b]) {
      const handle = await handleOf(service, a, browser);
      expect(page.html).toContain(
        `<form method="post" action="/auth/sessions/${handle}/revoke"><input type="hidden" name="_csrf" value="${page.token}">`,
      );
    }
    expect(page.html).not.toContain(a.sid);
    expect(page.html).not.toContain(b.sid);
    expect(page.html).not.toContain(a.id);
  });

  it('DELETE /auth/sessions/:id revokes another session of the user', async () => {
    const a = await login(service, 'alice', 'Browser-A/1.0');
    const b = await login(service, 'alice', 'Browser-B/2.0');
    const res = await request(service.app)
      .delete(`/auth/sessions/${await handleOf(service, a, b)}`)
      .set('cookie', a.cookie);
    expect(res.status).toBe(204);
    expect((await validate(service, b)).status).toBe(401);
    expect(await redis.client.exists(sessionKey(b.sid))).toBe(0);
    expect(await redis.client.zScore(userIndex('alice'), b.id)).toBeNull();
    expect((await validate(service, a)).status).toBe(200);
    expect(await indexOf('alice')).toEqual([a.id]);
  });

  it('the revoke form works with the page token, and is refused without it or with another', async () => {
    const a = await login(service, 'alice', 'Browser-A/1.0');
    const b = await login(service, 'alice', 'Browser-B/2.0');
    const page = await sessionsPage(service, a);
    const handle = await handleOf(service, a, b);
    const revoke = (body: Record<string, string>, cookies: string[]) =>
      request(service.app)
        .post(`/auth/sessions/${handle}/revoke`)
        .type('form')
        .set('accept', 'text/html')
        .set('sec-fetch-site', 'same-origin')
        .set('cookie', cookies.join('; '))
        .send(body);

    // No token; a token that is not this page's; the page's token without its cookie; a
    // login-page token and cookie (bound to no session): all 403, nothing revoked.
    const otherBrowser = await sessionsPage(service, await login(service, 'alice', 'Other/1.0'));
    const loginPage = await request(service.app).get('/auth/login');
    const loginToken = /name="_csrf" value="([^"]+)"/.exec(loginPage.text)?.[1] ?? '';
    const loginCookie = cookiePairOf(loginPage.headers['set-cookie'], 'gatehouse-csrf');
    for (const [body, cookies] of [
      [{}, [a.cookie, page.csrfCookie]],
      [{ _csrf: 'x'.repeat(64) }, [a.cookie, page.csrfCookie]],
      [{ _csrf: otherBrowser.token }, [a.cookie, page.csrfCookie]],
      [{ _csrf: page.token }, [a.cookie]],
      [{ _csrf: loginToken }, [a.cookie, loginCookie]],
    ] as const) {
      const res = await revoke(body, [...cookies]);
      expect(res.status, JSON.stringify(body)).toBe(403);
      expect((await validate(service, b)).status).toBe(200);
    }

    const ok = await revoke({ _csrf: page.token }, [a.cookie, page.csrfCookie]);
    expect(ok.status).toBe(303);
    expect(ok.headers.location).toBe('/auth/sessions');
    expect((await validate(service, b)).status).toBe(401);
    expect(await redis.client.exists(sessionKey(b.sid))).toBe(0);
    expect((await validate(service, a)).status).toBe(200);
  });

  it("a user cannot revoke another user's session", async () => {
    const alice = await login(service, 'alice', 'Alice/1.0');
    const bob = await login(service, 'bob', 'Bob/1.0');
    const aliceHandle = await handleOf(service, alice, alice);
    for (const id of [aliceHandle, alice.sid, alice.id]) {
      const res = await request(service.app)
        .delete(`/auth/sessions/${id}`)
        .set('cookie', bob.cookie);
      expect(res.status).toBe(404);
      expect(res.body.error).toBe('SESSION_NOT_FOUND');
    }
    const page = await sessionsPage(service, bob);
    const form = await request(service.app)
      .post(`/auth/sessions/${aliceHandle}/revoke`)
      .type('form')
      .set('sec-fetch-site', 'same-origin')
      .set('cookie', [bob.cookie, page.csrfCookie].join('; '))
      .send({ _csrf: page.token });
    expect(form.status).toBe(404);
    expect((await validate(service, alice)).status).toBe(200);
    expect(await indexOf('alice')).toEqual([alice.id]);
  });

  it('POST /auth/logout-all ends every other session and keeps the current one', async () => {
    const a = await login(service, 'alice');
    const b = await login(service, 'alice');
    const c = await login(service, 'alice');
    const bob = await login(service, 'bob');
    const res = await logoutAll(a);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ revoked: 2 });
    expect((await validate(service, b)).status).toBe(401);
    expect((await validate(service, c)).status).toBe(401);
    expect((await validate(service, a)).status).toBe(200);
    expect((await validate(service, bob)).status).toBe(200);
    expect(await indexOf('alice')).toEqual([a.id]);
    expect(await liveSessionsOf('alice')).toEqual([a.id]);
  });

  it('POST /auth/logout-all with {"all":true} ends every session, the current one too', async () => {
    const a = await login(service, 'alice');
    const b = await login(service, 'alice');
    const res = await logoutAll(a, { all: true });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ revoked: 2 });
    expect(setCookieLine(res.headers['set-cookie'])).toMatch(/Expires=Thu, 01 Jan 1970/);
    expect((await validate(service, a)).status).toBe(401);
    expect((await validate(service, b)).status).toBe(401);
    expect(await indexOf('alice')).toEqual([]);
    expect(await liveSessionsOf('alice')).toEqual([]);
  });

  it('the logout-all form works with the page token and reports how many ended', async () => {
    const a = await login(service, 'alice');
    const b = await login(service, 'alice');
    const page = await sessionsPage(service, a);
    const refused = await request(service.app)
      .post('/auth/logout-all')
      .type('form')
      .set('sec-fetch-site', 'same-origin')
      .set('cookie', [a.cookie, page.csrfCookie].join('; '))
      .send({});
    expect(refused.status).toBe(403);
    expect((await validate(service, b)).status).toBe(200);
    const res = await request(service.app)
      .post('/auth/logout-all')
      .type('form')
      .set('sec-fetch-site', 'same-origin')
      .set('cookie', [a.cookie, page.csrfCookie].join('; '))
      .send({ _csrf: page.token });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/auth/sessions?revoked=1');
    expect((await validate(service, b)).status).toBe(401);
    expect((await validate(service, a)).status).toBe(200);
  });

  it('expired sessions are pruned from the list and from the index', async () => {
    const kept = await login(quick, 'alice', 'Kept/1.0');
    const idle = await login(quick, 'alice', 'Idle/1.0');
    expect(await indexOf('alice')).toEqual([kept.id, idle.id].sort());
    // Keep one session busy until the other has passed its idle timeout of 1 s.
    await waitFor(
      async () => {
        expect((await validate(quick, kept)).status).toBe(200);
        return (await redis.client.exists(sessionKey(idle.sid))) === 0;
      },
      3000,
      'the idle session to expire',
    );
    const sessions = await listJson(quick, kept);
    expect(sessions.map((s) => s.userAgent)).toEqual(['Kept/1.0']);
    expect(await indexOf('alice')).toEqual([kept.id]);
  });

  it('20 parallel logins, then logout-all, leave one index entry and one session', async () => {
    const all = await Promise.all(
      Array.from({ length: 20 }, (_, i) => login(service, 'gina', `Parallel/${i}`)),
    );
    expect(new Set(all.map((b) => b.sid)).size).toBe(20);
    expect(await indexOf('gina')).toEqual(all.map((b) => b.id).sort());
    expect(await liveSessionsOf('gina')).toEqual(all.map((b) => b.id).sort());
    const keep = all[7] as Browser;
    const res = await logoutAll(keep);
    expect(res.body).toEqual({ revoked: 19 });
    expect(await indexOf('gina')).toEqual([keep.id]);
    expect(await liveSessionsOf('gina')).toEqual([keep.id]);
    expect(await listJson(service, keep)).toHaveLength(1);
  });

  // The index must hold every live session, or "sign out everywhere" misses one.
  it.each([
    {
      racer: 'listings',
      all: true,
      meanwhile: (first: Browser) =>
        request(service.app).get('/auth/sessions').set('cookie', first.cookie),
    },
    {
      racer: '"sign out everywhere else"',
      all: false,
      meanwhile: (first: Browser) => logoutAll(first),
    },
  ])(
    'logins racing with $racer never leave a session outside the index',
    async ({ all, meanwhile }) => {
      const first = await login(service, 'hank', 'Hank/first');
      let loginsDone = false;
      const logins = Promise.all(
        Array.from({ length: 20 }, (_, i) => login(service, 'hank', `Hank/${i}`, { racing: true })),
      ).finally(() => {
        loginsDone = true;
      });
      const racer = (async () => {
        while (!loginsDone) await meanwhile(first);
      })();
      await Promise.all([logins, racer]);
      const index = await indexOf('hank');
      const outsideIndex = (await liveSessionsOf('hank')).filter((sid) => !index.includes(sid));

      expect((await logoutAll(first, { all })).status).toBe(200);
      const alive = await liveSessionsOf('hank');
      const aliveAfterLogoutAll = all ? alive : alive.filter((sid) => sid !== first.id);
      expect({ outsideIndex, aliveAfterLogoutAll }).toEqual({
        outsideIndex: [],
        aliveAfterLogoutAll: [],
      });
    },
  );
});

describe('admin API', () => {
  beforeEach(async () => {
    await redis.client.flushAll();
  });

  const admin = (method: 'get' | 'delete', path: string, token: string | null = ADMIN_TOKEN) => {
    const req = request(service.app)[method](path);
    return token === null ? req : req.set('authorization', `Bearer ${token}`);
  };

  it('lists a user’s sessions with the right bearer token', async () => {
    const a = await login(service, 'alice', 'Browser-A/1.0');
    const b = await login(service, 'alice', 'Browser-B/2.0');
    const res = await admin('get', '/admin/users/alice/sessions');
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body.user).toEqual({ id: ids.alice, username: 'alice', disabled: false });
    const sessions = res.body.sessions as PublicSession[];
    expect(sessions.map((s) => s.userAgent).sort()).toEqual(['Browser-A/1.0', 'Browser-B/2.0']);
    expect(sessions.map((s) => s.id).sort()).toEqual(
      (await listJson(service, a)).map((s) => s.id).sort(),
    );
    expect(JSON.stringify(res.body)).not.toContain(a.sid);
    expect(JSON.stringify(res.body)).not.toContain(b.sid);
    expect(JSON.stringify(res.body)).not.toContain(a.id);
  });

  it('refuses a wrong or missing token with 401 and WWW-Authenticate', async () => {
    await login(service, 'alice');
    const wrong = `${ADMIN_TOKEN.slice(0, -1)}${ADMIN_TOKEN.endsWith('0') ? '1' : '0'}`;
    const attempts = [
      admin('get', '/admin/users/alice/sessions', wrong),
      admin('get', '/admin/users/alice/sessions', null),
      admin('get', '/admin/users/alice/sessions', ''),
      request(service.app)
        .get('/admin/users/alice/sessions')
        .set('authorization', `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`),
      request(service.app).get(`/admin/users/alice/sessions?token=${ADMIN_TOKEN}`),
      admin('delete', '/admin/users/alice/sessions', wrong),
    ];
    for (const res of await Promise.all(attempts)) {
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(res.body.error).toBe('UNAUTHENTICATED');
      expect(res.body.sessions).toBeUndefined();
    }
    expect(await liveSessionsOf('alice')).toHaveLength(1);
  });

  it('is not there (404) when no ADMIN_TOKEN is configured', async () => {
    for (const method of ['get', 'delete'] as const) {
      const res = await request(quick.app)
        [method]('/admin/users/alice/sessions')
        .set('authorization', `Bearer ${ADMIN_TOKEN}`);
      expect(res.status).toBe(404);
      expect(res.headers['www-authenticate']).toBeUndefined();
    }
  });

  it('DELETE one session by id ends only that one', async () => {
    const a = await login(service, 'alice', 'Browser-A/1.0');
    const b = await login(service, 'alice', 'Browser-B/2.0');
    const handle = await handleOf(service, a, b);
    const res = await admin('delete', `/admin/users/alice/sessions/${handle}`);
    expect(res.status).toBe(204);
    expect((await validate(service, b)).status).toBe(401);
    expect((await validate(service, a)).status).toBe(200);
    expect(await indexOf('alice')).toEqual([a.id]);
    expect((await admin('delete', `/admin/users/alice/sessions/${handle}`)).status).toBe(404);
    expect((await admin('delete', `/admin/users/bob/sessions/${handle}`)).status).toBe(404);
  });

  it('DELETE all sessions of a user ends them all and no one else’s', async () => {
    const mine = [await login(service, 'alice'), await login(service, 'alice')];
    const bob = await login(service, 'bob');
    const res = await admin('delete', '/admin/users/alice/sessions');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ revoked: 2 });
    for (const b of mine) expect((await validate(service, b)).status).toBe(401);
    expect(await liveSessionsOf('alice')).toEqual([]);
    expect(await indexOf('alice')).toEqual([]);
    expect((await validate(service, bob)).status).toBe(200);
    expect((await admin('get', '/admin/users/nobody/sessions')).status).toBe(404);
  });
});
