/**
 * What the session-service's answers tell a browser: no-store on session answers, CSRF on login,
 * logout and state changes, security headers, the origin policy. Over 300 lines: one service
 * fixture and its login and page helpers serve every part, each a table of cases.
 */
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  NO_THROTTLE,
  type SessionServiceApp,
  setCookieLine,
  sidOf,
} from '../helpers/session-service.js';
import { writeTestUsers } from '../helpers/users.js';

type Service = SessionServiceApp;

const PASSWORD = 'correct horse battery';
const TOKEN = /name="_csrf" value="([^"]+)"/;

let redis: RedisServer;
let service: Service;
/** PUBLIC_URL=https://gatehouse.example: the cookie is __Host-gatehouse, HSTS is on. */
let secure: Service;
/** TRUST_PROXY=false: X-Forwarded-* from any peer (this test's 127.0.0.1 too) is ignored. */
let untrusting: Service;

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([{ username: 'alice', password: PASSWORD }]);
  const build = (env: Record<string, string>) =>
    buildSessionService({
      redisUrl: redis.url,
      usersFile: users.path,
      env,
      throttleLimits: NO_THROTTLE,
    });
  [service, secure, untrusting] = await Promise.all([
    build({}),
    build({ PUBLIC_URL: 'https://gatehouse.example' }),
    build({ TRUST_PROXY: 'false' }),
  ]);
});

afterAll(async () => {
  await Promise.all([service?.close(), secure?.close(), untrusting?.close()]);
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

/** A logout form (no token) posted with the cookie pair(s) `cookie` and `headers`. */
const formLogout = (cookie: string, headers: Record<string, string> = {}) =>
  request(service.app)
    .post('/auth/logout')
    .type('form')
    .set(headers)
    .set('cookie', cookie)
    .send({});

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
    note('logout confirmation 200', await formLogout(cookie));
    note('form logout 303', await formLogout(other.cookie, { 'sec-fetch-site': 'same-origin' }));
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
    const { cookie } = await loggedIn();
    const crossSite: Record<string, string>[] = [
      { 'sec-fetch-site': 'cross-site' },
      { origin: 'https://evil.example' },
    ];
    for (const headers of crossSite) {
      const res = await formLogout(cookie, headers);
      expect(res.status).toBe(403);
    }
    expect((await validate(cookie)).status).toBe(200);
    expect((await validate(cookie)).status).toBe(200);
  });

  it('asks for confirmation when a logout form has no token and no proven origin', async () => {
    const { cookie } = await loggedIn();
    const unproven: Record<string, string>[] = [{}, { 'sec-fetch-site': 'none' }];
    for (const headers of unproven) {
      const res = await formLogout(cookie, headers);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.text).toContain('<form method="post" action="/auth/logout">');
      expect(res.text).toMatch(TOKEN);
      expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
      expect((await validate(cookie)).status).toBe(200);
    }
    expect((await validate(cookie)).status).toBe(200);

    // Confirming (the page's token and CSRF cookie) signs out.
    const confirm = await formLogout(cookie);
    const token = TOKEN.exec(confirm.text)?.[1] ?? '';
    const csrfCookie = cookiePairOf(confirm.headers['set-cookie'], 'gatehouse-csrf');
    const done = await request(service.app)
      .post('/auth/logout')
      .type('form')
      .set('cookie', [cookie, csrfCookie].filter(Boolean).join('; '))
      .send({ _csrf: token });
    expect(done.status).toBe(303);
    expect(done.headers.location).toBe('/auth/login');
    expect((await validate(cookie)).status).toBe(401);
  });

  it('a same-origin logout form (a backend sign-out button) signs out without a token', async () => {
    const { cookie } = await loggedIn();
    const res = await formLogout(cookie, { 'sec-fetch-site': 'same-origin' });
    expect(res.status).toBe(303);
    expect((await validate(cookie)).status).toBe(401);
  });

  it('GET never changes state', async () => {
    const { cookie } = await loggedIn();
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
    expect((await validate(cookie)).status).toBe(200);
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
    // Not no-referrer: under it a same-origin form post carries `Origin: null` (see below).
    expect(res.headers['referrer-policy'], what).toBe('same-origin');
  }

  it('the login, sessions and logout-confirmation pages: CSP, nosniff, same-origin referrer, no HSTS over HTTP', async () => {
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

/**
 * Where a state-changing request comes from, as each deployment the docs allow shows it: plain
 * HTTP on a LAN name (no Fetch Metadata: browsers send Sec-Fetch-* only to HTTPS and localhost),
 * HTTPS, behind the gateway or nginx (X-Forwarded-* from a TRUST_PROXY peer), PUBLIC_URL.
 */
describe('the origin policy for state-changing requests', () => {
  type Row = [what: string, headers: Record<string, string | string[]>, app?: () => Service];
  const LAN = 'intranet-host:8080';
  const ours: Row[] = [
    ['plain HTTP on a LAN name, no Fetch Metadata', { host: LAN, origin: `http://${LAN}` }],
    ['Host in capitals', { host: 'INTRANET-HOST:8080', origin: `http://${LAN}` }],
    ['port 80 left out', { host: 'intranet-host', origin: 'http://intranet-host' }],
    ['port 80 spelled out in Host', { host: 'intranet-host:80', origin: 'http://intranet-host' }],
    ['an IPv4 address', { host: '10.1.2.3:8080', origin: 'http://10.1.2.3:8080' }],
    ['an IPv6 address', { host: '[fd00::1]:8080', origin: 'http://[fd00::1]:8080' }],
    [
      'through the gateway (X-Forwarded-Host/-Proto from a trusted peer)',
      {
        host: '127.0.0.1:4000',
        'x-forwarded-host': LAN,
        'x-forwarded-proto': 'http',
        origin: `http://${LAN}`,
      },
    ],
    [
      'behind a TLS edge (nginx)',
      {
        host: '127.0.0.1:4000',
        'x-forwarded-host': 'login.example.com',
        'x-forwarded-proto': 'https',
        origin: 'https://login.example.com',
      },
    ],
    ['Sec-Fetch-Site: same-origin', { 'sec-fetch-site': 'same-origin' }],
    [
      'Sec-Fetch-Site: same-origin with Origin: null (HTTPS page under no-referrer)',
      { 'sec-fetch-site': 'same-origin', origin: 'null' },
    ],
    ['an API client: neither Sec-Fetch-Site nor Origin', {}],
    [
      "PUBLIC_URL's origin, whatever the last hop's Host",
      { host: '127.0.0.1:4000', origin: 'https://gatehouse.example' },
      () => secure,
    ],
    [
      'X-Forwarded-Host from an untrusted peer is ignored: Host decides',
      { host: LAN, 'x-forwarded-host': 'evil.test', origin: `http://${LAN}` },
      () => untrusting,
    ],
  ];
  const foreign: Row[] = [
    ['Origin: null (sandboxed frame, data: URL)', { host: LAN, origin: 'null' }],
    ['another site', { host: LAN, origin: 'http://evil.test' }],
    ['another port on our host (same-site)', { host: LAN, origin: 'http://intranet-host:9999' }],
    ['our host on port 80 when we are on 8080', { host: LAN, origin: 'http://intranet-host' }],
    [
      'a sibling subdomain (same-site)',
      { host: 'app.corp.test:8080', origin: 'http://wiki.corp.test:8080' },
    ],
    ['a subdomain of ours', { host: 'corp.test:8080', origin: 'http://app.corp.test:8080' }],
    ['https Origin when we are served over http', { host: LAN, origin: `https://${LAN}` }],
    [
      'http Origin when the edge says https (a downgraded page)',
      {
        host: '127.0.0.1:4000',
        'x-forwarded-host': LAN,
        'x-forwarded-proto': 'https',
        origin: `http://${LAN}`,
      },
    ],
    ['a trailing slash (not a serialized origin)', { host: LAN, origin: `http://${LAN}/` }],
    ['capitals (not a serialized origin)', { host: LAN, origin: 'HTTP://INTRANET-HOST:8080' }],
    ['two origins', { host: LAN, origin: `http://${LAN}, http://evil.test` }],
    ['our name as a prefix of another', { host: LAN, origin: `http://${LAN}.evil.test` }],
    ['userinfo in Origin', { host: LAN, origin: `http://user@${LAN}` }],
    ['an empty Origin', { host: LAN, origin: '' }],
    [
      'a Host with userinfo that parses to another host',
      { host: `${LAN}@evil.test`, origin: 'http://evil.test' },
    ],
    [
      'Sec-Fetch-Site: cross-site beats a matching Origin',
      { host: LAN, origin: `http://${LAN}`, 'sec-fetch-site': 'cross-site' },
    ],
    [
      'Sec-Fetch-Site: same-site (a sibling subdomain over HTTPS)',
      { 'sec-fetch-site': 'same-site', origin: 'https://app.gatehouse.example' },
    ],
    ['Sec-Fetch-Site in capitals', { 'sec-fetch-site': 'SAME-ORIGIN' }],
    ['two Sec-Fetch-Site values', { 'sec-fetch-site': ['same-origin', 'cross-site'] }],
    ['an empty Sec-Fetch-Site', { 'sec-fetch-site': '' }],
    [
      "http Origin for an https PUBLIC_URL's host",
      { host: '127.0.0.1:4000', origin: 'http://gatehouse.example' },
      () => secure,
    ],
    [
      'X-Forwarded-Host from an untrusted peer cannot make another origin ours',
      {
        host: LAN,
        'x-forwarded-host': 'evil.test',
        'x-forwarded-proto': 'http',
        origin: 'http://evil.test',
      },
      () => untrusting,
    ],
  ];
  const label = (what: string, headers: Row[1]) => `${what}: ${JSON.stringify(headers)}`;
  const everything = async () => (await redis.client.keys('*')).sort();

  it.each(ours)('accepts a JSON login from our own origin: %s', async (what, headers, app) => {
    const res = await jsonLogin(headers as Record<string, string>, app?.() ?? service);
    expect(res.status, label(what, headers)).toBe(200);
  });

  it('refuses a JSON login from any other origin: 403, no cookie, nothing written to Redis', async () => {
    const before = await everything();
    for (const [what, headers, app] of foreign) {
      const res = await jsonLogin(headers as Record<string, string>, app?.() ?? service);
      expect(res.status, label(what, headers)).toBe(403);
      expect(res.body.error, label(what, headers)).toBe('CROSS_SITE_REQUEST');
      expect(res.headers['set-cookie'], label(what, headers)).toBeUndefined();
    }
    expect(await everything()).toEqual(before);
  });

  it('a browser on a plain-HTTP LAN host signs in with the form (Origin, no Sec-Fetch-Site)', async () => {
    const page = await loginPage();
    const res = await formLogin({ _csrf: page.token }, page.csrfCookie, {
      host: LAN,
      origin: `http://${LAN}`,
    });
    expect(res.status).toBe(303);
    expect(sidOf(res.headers['set-cookie'])).not.toBe('');
  });

  it('a form login from another origin is refused even with a valid token pair (cookie tossing)', async () => {
    // A sibling port shares our cookies: it can plant a CSRF cookie it fetched with its token.
    const page = await loginPage();
    const before = await everything();
    for (const origin of ['null', 'http://intranet-host:9999', 'http://evil.test']) {
      const res = await formLogin({ _csrf: page.token }, page.csrfCookie, { host: LAN, origin });
      expect(res.status, origin).toBe(403);
      expect(setCookieLine(res.headers['set-cookie']), origin).toBeUndefined();
    }
    expect(await everything()).toEqual(before);
  });

  it("a backend's sign-out button on a plain-HTTP LAN host signs out (Origin proves it)", async () => {
    const { cookie } = await loggedIn();
    const res = await request(service.app)
      .post('/auth/logout')
      .type('form')
      .set({ host: LAN, origin: `http://${LAN}`, cookie })
      .send({});
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/auth/login');
    expect((await validate(cookie)).status).toBe(401);
  });

  it('a logout from another origin or from Origin: null is refused and the session stays', async () => {
    const { cookie } = await loggedIn();
    const before = await everything();
    for (const origin of ['null', 'http://intranet-host:9999', 'http://wiki.intranet-host:8080']) {
      for (const type of ['form', 'json'] as const) {
        const res = await request(service.app)
          .post('/auth/logout')
          .type(type)
          .set({ host: LAN, origin, cookie })
          .send({});
        expect(res.status, `${type} ${origin}`).toBe(403);
        expect(res.body.error ?? res.text, `${type} ${origin}`).toMatch(/CROSS_SITE_REQUEST|403/);
      }
    }
    expect(await everything()).toEqual(before);
    expect((await validate(cookie)).status).toBe(200);
    expect((await validate(cookie)).status).toBe(200);
  });

  it('revoking a session on a plain-HTTP LAN host works from our page and not from Origin: null', async () => {
    const mine = await loggedIn();
    await loggedIn(); // another browser of hers, to revoke
    const page = await request(service.app)
      .get('/auth/sessions')
      .set({ accept: 'text/html', cookie: mine.cookie });
    const token = TOKEN.exec(page.text)?.[1] ?? '';
    const csrfCookie = cookiePairOf(page.headers['set-cookie'], 'gatehouse-csrf');
    const list = await request(service.app).get('/auth/sessions').set('cookie', mine.cookie);
    const sessions = list.body.sessions as { id: string; current: boolean }[];
    const handle = sessions.find((s) => !s.current)?.id ?? '';
    expect(handle).not.toBe('');
    const revoke = (origin: string) =>
      request(service.app)
        .post(`/auth/sessions/${handle}/revoke`)
        .type('form')
        .set({ host: LAN, origin, cookie: `${mine.cookie}; ${csrfCookie}` })
        .send({ _csrf: token });

    const before = await everything();
    for (const origin of ['null', 'http://intranet-host:9999']) {
      expect((await revoke(origin)).status, origin).toBe(403);
    }
    expect(await everything()).toEqual(before);

    const ok = await revoke(`http://${LAN}`);
    expect(ok.status).toBe(303);
    expect(ok.headers.location).toBe('/auth/sessions');
    const after = await request(service.app).get('/auth/sessions').set('cookie', mine.cookie);
    expect(after.body.sessions).toHaveLength(sessions.length - 1);
  });
});
