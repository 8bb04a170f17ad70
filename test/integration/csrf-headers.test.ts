import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  NO_THROTTLE,
  setCookieLine,
  sidOf,
} from '../helpers/session-service.js';
import { writeTestUsers } from '../helpers/users.js';

type Service = Awaited<ReturnType<typeof buildSessionService>>;

const PASSWORD = 'correct horse battery';
const TOKEN = /name="_csrf" value="([^"]+)"/;

let redis: RedisServer;
let service: Service;
/** PUBLIC_URL=https://gatehouse.example: the cookie is __Host-gatehouse, HSTS is on. */
let secure: Service;

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([{ username: 'alice', password: PASSWORD }]);
  [service, secure] = await Promise.all([
    buildSessionService({
      redisUrl: redis.url,
      usersFile: users.path,
      throttleLimits: NO_THROTTLE,
    }),
    buildSessionService({
      redisUrl: redis.url,
      usersFile: users.path,
      env: { PUBLIC_URL: 'https://gatehouse.example' },
      throttleLimits: NO_THROTTLE,
    }),
  ]);
});

afterAll(async () => {
  await Promise.all([service?.close(), secure?.close()]);
  await redis?.stop();
});

const sessionKeys = async () => (await redis.client.keys('gh:sess:*')).length;

const jsonLogin = (headers: Record<string, string> = {}, app: Service = service) =>
  request(app.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .set(headers)
    .send(JSON.stringify({ username: 'alice', password: PASSWORD }));

async function loggedIn() {
  const res = await jsonLogin();
  expect(res.status).toBe(200);
  return { cookie: cookiePairOf(res.headers['set-cookie']), sid: sidOf(res.headers['set-cookie']) };
}

const validate = (cookie: string) =>
  request(service.app).get('/auth/validate').set('cookie', cookie);

/** One browser's login page: its CSRF cookie and the token of its form. */
async function loginPage() {
  const page = await request(service.app).get('/auth/login').set('accept', 'text/html');
  return {
    res: page,
    token: TOKEN.exec(page.text)?.[1] ?? '',
    csrfCookie: cookiePairOf(page.headers['set-cookie'], 'gatehouse-csrf'),
  };
}

function formLogin(
  fields: Record<string, string>,
  cookie: string,
  headers: Record<string, string>,
) {
  const req = request(service.app)
    .post('/auth/login')
    .type('form')
    .set('accept', 'text/html')
    .set(headers);
  if (cookie) req.set('cookie', cookie);
  return req.send({ username: 'alice', password: PASSWORD, rd: '/', ...fields });
}

describe('Cache-Control: no-store on every answer that sets, reads or clears a session', () => {
  it('login, logout, validate, the sessions list, revocation and logout-all', async () => {
    const answers: [string, request.Response][] = [];
    const note = (what: string, res: request.Response) => {
      answers.push([what, res]);
      return res;
    };

    note('login page', await request(service.app).get('/auth/login'));
    const ok = note('JSON login 200', await jsonLogin());
    expect(ok.status).toBe(200);
    const cookie = cookiePairOf(ok.headers['set-cookie']);
    const page = await loginPage();
    const form = note(
      'form login 303',
      await formLogin({ _csrf: page.token }, page.csrfCookie, { 'sec-fetch-site': 'same-origin' }),
    );
    expect(form.status).toBe(303);
    note(
      'JSON login 401',
      await request(service.app)
        .post('/auth/login')
        .send({ username: 'alice', password: 'wrong password' }),
    );
    note(
      'form login 401',
      await formLogin({ _csrf: page.token, password: 'wrong password' }, page.csrfCookie, {
        'sec-fetch-site': 'same-origin',
      }),
    );
    note('form login 403 (no token)', await formLogin({}, '', {}));
    note('login 403 (cross-site)', await jsonLogin({ 'sec-fetch-site': 'cross-site' }));
    note('login 400', await request(service.app).post('/auth/login').send({ username: 'alice' }));
    note('validate 200', await validate(cookie));
    note('validate 401', await request(service.app).get('/auth/validate'));
    note('sessions JSON', await request(service.app).get('/auth/sessions').set('cookie', cookie));
    note(
      'sessions HTML',
      await request(service.app)
        .get('/auth/sessions')
        .set('cookie', cookie)
        .set('accept', 'text/html'),
    );
    note('sessions 401', await request(service.app).get('/auth/sessions'));
    const other = await loggedIn();
    const list = await request(service.app).get('/auth/sessions').set('cookie', cookie);
    const otherHandle = (list.body.sessions as { id: string; current: boolean }[]).find(
      (s) => !s.current,
    )?.id;
    note(
      'revoke 204',
      await request(service.app).delete(`/auth/sessions/${otherHandle}`).set('cookie', cookie),
    );
    note(
      'logout-all 200',
      await request(service.app).post('/auth/logout-all').set('cookie', cookie).send({}),
    );
    note(
      'logout confirmation 200',
      await request(service.app).post('/auth/logout').type('form').set('cookie', cookie).send({}),
    );
    note(
      'form logout 303',
      await request(service.app)
        .post('/auth/logout')
        .type('form')
        .set('sec-fetch-site', 'same-origin')
        .set('cookie', other.cookie)
        .send({}),
    );
    note(
      'JSON logout 204',
      await request(service.app).post('/auth/logout').set('cookie', cookie).send({}),
    );
    note(
      'logout-all {"all":true}',
      await request(service.app)
        .post('/auth/logout-all')
        .set('cookie', (await loggedIn()).cookie)
        .send({ all: true }),
    );

    for (const [what, res] of answers) {
      expect(res.headers['cache-control'], `${what} (${res.status})`).toBe('no-store');
    }
  });
});

describe('CSRF on login', () => {
  it('refuses a cross-site login (Sec-Fetch-Site: cross-site) and creates no session', async () => {
    const before = await sessionKeys();
    const page = await loginPage();
    for (const res of [
      await jsonLogin({ 'sec-fetch-site': 'cross-site' }),
      await formLogin({ _csrf: page.token }, page.csrfCookie, { 'sec-fetch-site': 'cross-site' }),
    ]) {
      expect(res.status).toBe(403);
      expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
    }
    expect(await sessionKeys()).toBe(before);
  });

  it('refuses a foreign Origin without Fetch Metadata, a null Origin, and same-site', async () => {
    const before = await sessionKeys();
    const attempts: Record<string, string>[] = [
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'same-site', origin: 'https://app.gatehouse.example' },
    ];
    for (const headers of attempts) {
      const res = await jsonLogin(headers);
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.body.error).toBe('CROSS_SITE_REQUEST');
      expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
    }
    expect(await sessionKeys()).toBe(before);
  });

  it('refuses a form login without the token, or with a token from another browser', async () => {
    const before = await sessionKeys();
    const mine = await loginPage();
    const theirs = await loginPage();
    for (const [fields, cookie] of [
      [{}, mine.csrfCookie],
      [{}, ''],
      [{ _csrf: '' }, mine.csrfCookie],
      [{ _csrf: theirs.token }, mine.csrfCookie],
      [{ _csrf: theirs.token }, ''],
      [{ _csrf: mine.token }, ''],
    ] as const) {
      const res = await formLogin({ ...fields }, cookie, { 'sec-fetch-site': 'same-origin' });
      expect(res.status, JSON.stringify([fields, cookie])).toBe(403);
      expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
    }
    expect(await sessionKeys()).toBe(before);
    const ok = await formLogin({ _csrf: mine.token }, mine.csrfCookie, {
      'sec-fetch-site': 'same-origin',
    });
    expect(ok.status).toBe(303);
  });

  it('lets an API client (no Sec-Fetch-Site, no Origin) and the own origin log in with JSON', async () => {
    expect((await jsonLogin()).status).toBe(200);
    expect((await jsonLogin({ 'sec-fetch-site': 'same-origin' })).status).toBe(200);
    const viaPublicOrigin = await jsonLogin(
      { origin: 'https://gatehouse.example', 'x-forwarded-proto': 'https' },
      secure,
    );
    expect(viaPublicOrigin.status).toBe(200);
    expect(setCookieLine(viaPublicOrigin.headers['set-cookie'], '__Host-gatehouse')).toBeDefined();
  });
});

describe('CSRF on logout and state changes', () => {
  it('refuses a logout form posted from another site, and the session stays', async () => {
    const { cookie, sid } = await loggedIn();
    const crossSite: Record<string, string>[] = [
      { 'sec-fetch-site': 'cross-site' },
      { origin: 'https://evil.example' },
    ];
    for (const headers of crossSite) {
      const res = await request(service.app)
        .post('/auth/logout')
        .type('form')
        .set(headers)
        .set('cookie', cookie)
        .send({});
      expect(res.status).toBe(403);
    }
    expect(await redis.client.exists(`gh:sess:${sid}`)).toBe(1);
    expect((await validate(cookie)).status).toBe(200);
  });

  it('asks for confirmation when a logout form has no token and no proven origin', async () => {
    const { cookie, sid } = await loggedIn();
    const unproven: Record<string, string>[] = [{}, { 'sec-fetch-site': 'none' }];
    for (const headers of unproven) {
      const res = await request(service.app)
        .post('/auth/logout')
        .type('form')
        .set(headers)
        .set('cookie', cookie)
        .send({});
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.text).toContain('<form method="post" action="/auth/logout">');
      expect(res.text).toMatch(TOKEN);
      expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
      expect(await redis.client.exists(`gh:sess:${sid}`)).toBe(1);
    }
    expect((await validate(cookie)).status).toBe(200);

    // Confirming (the page's token and CSRF cookie) signs out.
    const confirm = await request(service.app)
      .post('/auth/logout')
      .type('form')
      .set('cookie', cookie)
      .send({});
    const token = TOKEN.exec(confirm.text)?.[1] ?? '';
    const csrfCookie = cookiePairOf(confirm.headers['set-cookie'], 'gatehouse-csrf');
    const done = await request(service.app)
      .post('/auth/logout')
      .type('form')
      .set('cookie', [cookie, csrfCookie].filter(Boolean).join('; '))
      .send({ _csrf: token });
    expect(done.status).toBe(303);
    expect(done.headers.location).toBe('/auth/login');
    expect(await redis.client.exists(`gh:sess:${sid}`)).toBe(0);
  });

  it('a same-origin logout form (a backend sign-out button) signs out without a token', async () => {
    const { cookie, sid } = await loggedIn();
    const res = await request(service.app)
      .post('/auth/logout')
      .type('form')
      .set('sec-fetch-site', 'same-origin')
      .set('cookie', cookie)
      .send({});
    expect(res.status).toBe(303);
    expect(await redis.client.exists(`gh:sess:${sid}`)).toBe(0);
  });

  it('GET never changes state', async () => {
    const { cookie, sid } = await loggedIn();
    const other = await loggedIn();
    const list = await request(service.app).get('/auth/sessions').set('cookie', cookie);
    const handle = (list.body.sessions as { id: string; current: boolean }[]).find(
      (s) => !s.current,
    )?.id;
    for (const path of [
      '/auth/logout',
      '/auth/logout-all',
      '/auth/logout-all?all=true',
      `/auth/sessions/${handle}/revoke`,
    ]) {
      const res = await request(service.app).get(path).set('cookie', cookie);
      expect(res.status, path).toBe(404);
      expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
    }
    expect(await redis.client.exists(`gh:sess:${sid}`)).toBe(1);
    expect((await validate(cookie)).status).toBe(200);
    expect((await validate(other.cookie)).status).toBe(200);
  });
});

describe('security headers', () => {
  function expectPageHeaders(res: request.Response, what: string) {
    expect(res.status, what).toBe(200);
    const csp = String(res.headers['content-security-policy'] ?? '');
    const directives = new Map(
      csp
        .split(';')
        .map((d) => d.trim().split(/\s+/))
        .map(([name = '', ...values]) => [name, values] as const),
    );
    expect(directives.get('default-src'), what).toEqual(["'none'"]);
    expect(directives.get('frame-ancestors'), what).toEqual(["'none'"]);
    expect(csp, what).not.toContain("'unsafe-inline'");
    expect(csp, what).not.toContain("'unsafe-eval'");
    expect(res.headers['x-content-type-options'], what).toBe('nosniff');
    expect(res.headers['referrer-policy'], what).toBe('no-referrer');
  }

  it('the login, sessions and logout-confirmation pages: CSP, nosniff, no-referrer, no HSTS over HTTP', async () => {
    const { cookie } = await loggedIn();
    const pages = {
      login: await request(service.app).get('/auth/login').set('accept', 'text/html'),
      sessions: await request(service.app)
        .get('/auth/sessions')
        .set('accept', 'text/html')
        .set('cookie', cookie),
      confirm: await request(service.app)
        .post('/auth/logout')
        .type('form')
        .set('accept', 'text/html')
        .set('cookie', cookie)
        .send({}),
    };
    for (const [what, res] of Object.entries(pages)) {
      expectPageHeaders(res, what);
      expect(res.headers['strict-transport-security'], what).toBeUndefined();
    }
  });

  it('HSTS when PUBLIC_URL is https', async () => {
    const login = await jsonLogin({ 'x-forwarded-proto': 'https' }, secure);
    const cookie = cookiePairOf(login.headers['set-cookie'], '__Host-gatehouse');
    expect(cookie).not.toBe('');
    const pages = {
      login: await request(secure.app).get('/auth/login').set('accept', 'text/html'),
      sessions: await request(secure.app)
        .get('/auth/sessions')
        .set('accept', 'text/html')
        .set('x-forwarded-proto', 'https')
        .set('cookie', cookie),
    };
    for (const [what, res] of Object.entries(pages)) {
      expectPageHeaders(res, what);
      const hsts = String(res.headers['strict-transport-security'] ?? '');
      expect(Number(/max-age=(\d+)/.exec(hsts)?.[1]), what).toBeGreaterThanOrEqual(31_536_000);
    }
  });
});
