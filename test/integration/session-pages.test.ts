/**
 * A user's sessions at scale (issue 16, point 4): the list in pages (`?limit=&cursor=`, `next`),
 * the HTML page's link to more, one session revoked by its handle without listing the others,
 * and SESSIONS_PER_USER_MAX ending the least recently active session of a login over it
 * (published, audited).
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { captureLogger } from '../helpers/logger.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  NO_THROTTLE,
  type SessionServiceApp,
  sidOf,
} from '../helpers/session-service.js';
import { storedSessionId } from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';
const ADMIN_TOKEN = randomBytes(20).toString('hex');
const MAX = 5;

let redis: RedisServer;
let service: SessionServiceApp;
const logs = captureLogger('info');

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers(
    ['alice', 'bob'].map((username) => ({ username, password: PASSWORD })),
  );
  service = await buildSessionService({
    redisUrl: redis.url,
    usersFile: users.path,
    env: { ADMIN_TOKEN, SESSIONS_PER_USER_MAX: String(MAX) },
    throttleLimits: NO_THROTTLE,
    logger: logs.logger,
  });
});

afterAll(async () => {
  await service?.close();
  await redis?.stop();
});

beforeEach(async () => {
  await redis.client.flushAll();
});

let logins = 0;
async function login(username: string) {
  logins++;
  const res = await request(service.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .set('user-agent', `Browser/${logins}`)
    .send(JSON.stringify({ username, password: PASSWORD }));
  expect(res.status).toBe(200);
  const sid = sidOf(res.headers['set-cookie']);
  return { cookie: cookiePairOf(res.headers['set-cookie']), sid, id: storedSessionId(sid) };
}

interface Page {
  sessions: Array<{ id: string; userAgent: string; lastSeenAt: string; current: boolean }>;
  next: string | null;
}

const list = (cookie: string, query = '') =>
  request(service.app)
    .get(`/auth/sessions${query}`)
    .set('accept', 'application/json')
    .set('cookie', cookie);

const admin = (method: 'get' | 'delete', path: string) =>
  request(service.app)[method](path).set('authorization', `Bearer ${ADMIN_TOKEN}`);

describe('the session list in pages', () => {
  it('follows `next` page by page, newest activity first, each session once', async () => {
    const browsers = [];
    for (let i = 0; i < MAX; i++) browsers.push(await login('alice'));
    const me = browsers.at(-1)?.cookie as string;
    const seen: Page['sessions'] = [];
    const sizes: number[] = [];
    let query = '?limit=2';
    for (;;) {
      const res = await list(me, query);
      expect(res.status).toBe(200);
      const page = res.body as Page;
      sizes.push(page.sessions.length);
      seen.push(...page.sessions);
      if (!page.next) break;
      query = `?limit=2&cursor=${encodeURIComponent(page.next)}`;
    }
    expect(sizes).toEqual([2, 2, 1]);
    expect(new Set(seen.map((s) => s.id)).size).toBe(MAX);
    const times = seen.map((s) => Date.parse(s.lastSeenAt));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    // The default page holds them all, and says there is no more.
    const all = (await list(me)).body as Page;
    expect(all.sessions.map((s) => s.id)).toEqual(seen.map((s) => s.id));
    expect(all.next).toBeNull();
    // The handle is neither the session id nor its stored id.
    for (const s of seen) {
      expect(browsers.some((b) => b.sid === s.id || b.id === s.id)).toBe(false);
      expect(s.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    }
  });

  it('refuses a malformed limit or cursor (400), and reads a limit over 200 as 200', async () => {
    const { cookie } = await login('alice');
    for (const query of ['?limit=0', '?limit=x', '?cursor=nope', '?cursor=12.abc'])
      expect((await list(cookie, query)).status).toBe(400);
    expect((await list(cookie, '?limit=100000')).status).toBe(200);
  });

  it('the HTML page shows the first page and links to the next', async () => {
    for (let i = 0; i < 3; i++) await login('alice');
    const { cookie } = await login('alice');
    const res = await request(service.app)
      .get('/auth/sessions?limit=2')
      .set('accept', 'text/html')
      .set('cookie', cookie);
    expect(res.status).toBe(200);
    expect(res.text).toContain('These are the 2 most recently active');
    const more = /<a href="([^"]+)">More sessions<\/a>/.exec(res.text)?.[1] ?? '';
    expect(more).toMatch(/^\/auth\/sessions\?cursor=/);
    const next = await request(service.app)
      .get(more.replaceAll('&amp;', '&'))
      .set('accept', 'text/html')
      .set('cookie', cookie);
    expect(next.status).toBe(200);
    expect(next.text).not.toContain('More sessions');
  });

  it('the admin list pages the same way', async () => {
    for (let i = 0; i < 3; i++) await login('bob');
    const first = await admin('get', '/admin/users/bob/sessions?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.sessions).toHaveLength(2);
    const second = await admin(
      'get',
      `/admin/users/bob/sessions?limit=2&cursor=${encodeURIComponent(first.body.next)}`,
    );
    expect(second.body.sessions).toHaveLength(1);
    expect(second.body.next).toBeNull();
  });
});

describe('revoking one session', () => {
  it('ends the session its handle names, only among the caller’s own', async () => {
    const a = await login('alice');
    const b = await login('alice');
    const bob = await login('bob');
    const handles = ((await list(a.cookie)).body as Page).sessions;
    const bHandle = handles.find((s) => !s.current)?.id as string;
    // Bob cannot end Alice's session with its handle; the admin API checks the user too.
    expect(
      (await request(service.app).delete(`/auth/sessions/${bHandle}`).set('cookie', bob.cookie))
        .status,
    ).toBe(404);
    expect((await admin('delete', `/admin/users/bob/sessions/${bHandle}`)).status).toBe(404);
    expect(await redis.client.exists(`gh:sess:${b.id}`)).toBe(1);
    const res = await request(service.app)
      .delete(`/auth/sessions/${bHandle}`)
      .set('cookie', a.cookie);
    expect(res.status).toBe(204);
    expect(await redis.client.exists(`gh:sess:${b.id}`)).toBe(0);
    expect(
      (await request(service.app).delete(`/auth/sessions/${bHandle}`).set('cookie', a.cookie))
        .status,
    ).toBe(404);
    expect(
      (await request(service.app).delete('/auth/sessions/garbage').set('cookie', a.cookie)).status,
    ).toBe(404);
  });
});

describe('SESSIONS_PER_USER_MAX', () => {
  it('a login over the limit ends the least recently active session, published and audited', async () => {
    const sub = redis.client.duplicate();
    const published: string[] = [];
    await sub.connect();
    await sub.subscribe('gh:revocations', (message) => published.push(message));
    try {
      const browsers = [];
      for (let i = 0; i < MAX; i++) browsers.push(await login('alice'));
      // The first is used again: the second is now the least recently active.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const first = browsers[0] as { cookie: string; id: string };
      expect(
        (await request(service.app).get('/auth/validate').set('cookie', first.cookie)).status,
      ).toBe(200);
      const newest = await login('alice');
      const second = browsers[1] as { cookie: string; id: string };
      expect(
        (await request(service.app).get('/auth/validate').set('cookie', second.cookie)).status,
      ).toBe(401);
      const listed = ((await list(newest.cookie)).body as Page).sessions;
      expect(listed).toHaveLength(MAX);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(published.join('\n')).toContain(second.id);
      const capped = logs.records().filter((r) => r.event === 'session.capped');
      expect(capped).toHaveLength(1);
      expect(capped[0]).toMatchObject({ limit: MAX, audit: true });
      expect(capped[0]?.sessions).toHaveLength(1);
      expect(logs.text()).not.toContain(second.id);
    } finally {
      await sub.quit();
    }
  });
});
