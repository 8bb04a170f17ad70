/**
 * The session-service's HTTP contract route by route (createApp on a real Redis and users file).
 * Over 300 lines: one describe per route over one service; a split would only repeat the fixture.
 */
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  countingVerifier,
  jsonLogout,
  type SessionServiceApp,
} from '../helpers/session-service.js';
import { sessionKeyOf, storedAuthOf } from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';

let redis: RedisServer;
let service: SessionServiceApp;
/** The service's password verifier: real, and counting its checks. */
let verifier: Awaited<ReturnType<typeof countingVerifier>>;
let aliceId: string;

const sidOf = (setCookie: string[] | string | undefined) => {
  const line = ([] as string[]).concat(setCookie ?? []).find((c) => c.startsWith('gatehouse='));
  const value = decodeURIComponent(line?.split(';')[0]?.split('=')[1] ?? '');
  return value.slice(2, value.lastIndexOf('.'));
};
const cookiePair = (setCookie: string[] | string | undefined) =>
  ([] as string[])
    .concat(setCookie ?? [])
    .find((c) => c.startsWith('gatehouse='))
    ?.split(';')[0] ?? '';

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    {
      username: 'alice',
      password: 'correct horse battery',
      groups: ['admins', 'dev'],
      email: 'alice@example.com',
    },
    { username: 'dora', password: 'correct horse battery', disabled: true },
  ]);
  aliceId = users.users[0]?.id ?? '';
  verifier = await countingVerifier();
  service = await buildSessionService({ redisUrl: redis.url, usersFile: users.path, verifier });
});
afterAll(async () => {
  await service?.close();
  await redis?.stop();
});

const login = (body: unknown) =>
  request(service.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .send(JSON.stringify(body));

describe('POST /auth/login with JSON', () => {
  it('creates a session in Redis that holds the identity and never the password', async () => {
    const res = await login({ username: 'alice', password: 'correct horse battery' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      user: {
        id: aliceId,
        username: 'alice',
        groups: ['admins', 'dev'],
        email: 'alice@example.com',
      },
      authentication: { amr: ['pwd'], acr: 'aal1', authTime: expect.any(String) },
    });
    const setCookie = res.headers['set-cookie'] as unknown as string[];
    expect(setCookie[0]).toMatch(/HttpOnly/);
    expect(setCookie[0]).toMatch(/SameSite=Lax/);
    expect(setCookie[0]).toMatch(/Path=\//);
    expect(setCookie[0]).not.toMatch(/Secure/); // plain HTTP, no trusted proxy saying https
    expect(res.headers['cache-control']).toBe('no-store');
    const raw = await redis.client.get(sessionKeyOf(sidOf(setCookie)));
    expect(raw).toBeTruthy();
    expect(raw).not.toContain('correct horse battery');
    expect(raw).not.toContain('password');
    // Only what the session knows: the name and groups are the user record's (issue 16).
    const stored = await storedAuthOf(redis.client, sidOf(setCookie));
    expect(stored).toMatchObject({ userId: aliceId });
    expect(stored).not.toHaveProperty('username');
    expect(stored).not.toHaveProperty('groups');
  });

  it('answers one generic 401 for a wrong password, an unknown user and a disabled user, and sets no cookie', async () => {
    const answers = await Promise.all([
      login({ username: 'alice', password: 'wrong password!' }),
      login({ username: 'nobody', password: 'whatever123' }),
      login({ username: 'dora', password: 'correct horse battery' }),
    ]);
    for (const res of answers) {
      expect(res.status).toBe(401);
      expect(res.body).toEqual(answers[0]?.body);
      expect(res.body.error).toBe('INVALID_CREDENTIALS');
      expect(res.headers['set-cookie']).toBeUndefined();
    }
  });

  it('answers 400 INVALID_JSON to malformed JSON, without a stack trace', async () => {
    const res = await request(service.app)
      .post('/auth/login')
      .set('content-type', 'application/json')
      .send('{"username":');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'INVALID_JSON', message: expect.any(String) });
    expect(res.text).not.toMatch(/at .*\.js/);
  });

  it('answers 400 to non-string fields', async () => {
    const res = await login({ username: ['alice'], password: { $ne: 1 } });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('BAD_REQUEST');
  });

  it('answers 413 to an oversized body and 415 to another content type', async () => {
    const big = await login({ username: 'alice', password: 'x'.repeat(64 * 1024) });
    expect(big.status).toBe(413);
    expect(big.body.error).toBe('PAYLOAD_TOO_LARGE');
    const text = await request(service.app)
      .post('/auth/login')
      .set('content-type', 'text/plain')
      .send('hi');
    expect(text.status).toBe(415);
    expect(text.body.error).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses a password over 1024 characters with 400 before hashing', async () => {
    const before = verifier.checks;
    const res = await login({ username: 'alice', password: 'x'.repeat(1025) });
    expect(res.status).toBe(400);
    expect(verifier.checks, 'password checks for the refused login').toBe(before);
    // The count does see a check: one character less is hashed (and is the wrong password).
    const wrong = await login({ username: 'alice', password: 'x'.repeat(1024) });
    expect(wrong.status).toBe(401);
    expect(verifier.checks).toBe(before + 1);
  });
});

/** Like a browser: load the login page (CSRF cookie + token), then post the form with both. */
async function formLogin(fields: Record<string, string>, headers: Record<string, string> = {}) {
  const agent = request.agent(service.app);
  const page = await agent.get('/auth/login');
  const token = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
  const res = await agent
    .post('/auth/login')
    .type('form')
    .set(headers)
    .send({ _csrf: token, ...fields });
  return { res, agent, token };
}

describe('POST /auth/login with a form', () => {
  it('redirects 303 to a safe local rd', async () => {
    const { res } = await formLogin({
      username: 'alice',
      password: 'correct horse battery',
      rd: '/reports?year=2026',
    });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/reports?year=2026');
  });

  it('redirects to / when rd points elsewhere', async () => {
    for (const rd of [
      '//evil.example',
      'https://evil.example/',
      '/\\evil.example',
      'javascript:alert(1)',
    ]) {
      const { res } = await formLogin({ username: 'alice', password: 'correct horse battery', rd });
      expect(res.headers.location, rd).toBe('/');
    }
  });

  it('shows the form again with one generic message and the username escaped', async () => {
    const { res } = await formLogin(
      { username: '<script>x</script>', password: 'wrong password' },
      { accept: 'text/html' },
    );
    expect(res.status).toBe(401);
    expect(res.text).toContain('Invalid username or password.');
    expect(res.text).toContain('&lt;script&gt;x&lt;/script&gt;');
    expect(res.text).not.toContain('<script>x');
  });
});

describe('GET /auth/validate', () => {
  it('answers 200 with the identity in body and headers, no-store, and never sets a cookie', async () => {
    const loggedIn = await login({ username: 'alice', password: 'correct horse battery' });
    const res = await request(service.app)
      .get('/auth/validate')
      .set('cookie', cookiePair(loggedIn.headers['set-cookie']));
    expect(res.status).toBe(200);
    expect(res.body.user).toEqual({
      id: aliceId,
      username: 'alice',
      groups: ['admins', 'dev'],
      email: 'alice@example.com',
    });
    expect(Date.parse(res.body.session.expiresAt)).toBeGreaterThan(Date.now());
    expect(res.headers['x-auth-request-user']).toBe('alice');
    expect(res.headers['x-auth-request-groups']).toBe('admins,dev');
    expect(res.headers['x-auth-request-email']).toBe('alice@example.com');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('answers 401 without a cookie and creates nothing in Redis', async () => {
    const before = await redis.client.dbSize();
    const res = await request(service.app).get('/auth/validate');
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'UNAUTHENTICATED', message: expect.any(String) });
    expect(await redis.client.dbSize()).toBe(before);
  });

  it('answers 401 to a forged, unsigned or garbled cookie', async () => {
    const loggedIn = await login({ username: 'alice', password: 'correct horse battery' });
    const sid = sidOf(loggedIn.headers['set-cookie']);
    for (const cookie of [
      `gatehouse=s%3A${sid}.forgedsignature`,
      `gatehouse=${sid}`,
      'gatehouse=%E0%A4%A',
      'gatehouse=s%3A',
      '=;=;;gatehouse',
    ]) {
      const res = await request(service.app).get('/auth/validate').set('cookie', cookie);
      expect(res.status, cookie).toBe(401);
    }
  });

  it('ignores a session id sent anywhere but the cookie', async () => {
    const loggedIn = await login({ username: 'alice', password: 'correct horse battery' });
    const pair = cookiePair(loggedIn.headers['set-cookie']);
    const value = pair.split('=')[1] ?? '';
    const res = await request(service.app)
      .get(`/auth/validate?gatehouse=${value}&sid=${value}`)
      .set('authorization', `Bearer ${value}`)
      .set('x-session-id', value);
    expect(res.status).toBe(401);
  });

  it('answers the same on its fast path and through Express: GET, HEAD, query, other spellings', async () => {
    // `/auth/validate` (GET/HEAD, any query) is served before the Express router; the spellings
    // only Express matches (trailing slash, letter case) take the Express route. Same answers.
    const loggedIn = await login({ username: 'alice', password: 'correct horse battery' });
    const pair = cookiePair(loggedIn.headers['set-cookie']);
    const shape = (res: request.Response) => ({
      status: res.status,
      type: res.headers['content-type'],
      cacheControl: res.headers['cache-control'],
      user: res.headers['x-auth-request-user'],
      groups: res.headers['x-auth-request-groups'],
      // (expiresAt moves with the idle timeout's slides: compared apart, below)
      body: { ...res.body, session: { ...res.body.session, expiresAt: undefined } } as unknown,
      expiresAt: Date.parse(res.body.session?.expiresAt ?? '') || 0,
    });
    for (const cookie of [pair, 'gatehouse=s%3Aforged.sig', '']) {
      const answers: request.Response[] = [];
      for (const path of [
        '/auth/validate',
        '/auth/validate?x=1',
        '/auth/validate/',
        '/AUTH/Validate',
      ])
        answers.push(await request(service.app).get(path).set('cookie', cookie));
      const [first, ...others] = answers.map(shape);
      expect(first?.status).toBe(cookie === pair ? 200 : 401);
      expect(first?.type).toBe('application/json; charset=utf-8');
      for (const other of others) {
        expect({ ...other, expiresAt: 0 }).toEqual({ ...first, expiresAt: 0 });
        expect(Math.abs((other?.expiresAt ?? 0) - (first?.expiresAt ?? 0))).toBeLessThan(5000);
      }
      for (const res of answers) expect(res.headers['x-request-id']).toMatch(/^[\w-]{36}$/);
    }
    const head = await request(service.app).head('/auth/validate').set('cookie', pair);
    expect(head.status).toBe(200);
    expect(head.headers['x-auth-request-user']).toBe('alice');
    expect(head.text ?? '').toBe('');
    // A well-formed request id from upstream is kept and answered.
    const traced = await request(service.app)
      .get('/auth/validate')
      .set('cookie', pair)
      .set('x-request-id', 'trace-123');
    expect(traced.headers['x-request-id']).toBe('trace-123');
    // Other methods are not validate: 404 from Express, as before.
    expect((await request(service.app).post('/auth/validate').set('cookie', pair)).status).toBe(
      404,
    );
  });
});

describe('POST /auth/logout', () => {
  it('deletes the session from Redis, clears the cookie, and the old cookie is refused', async () => {
    const loggedIn = await login({ username: 'alice', password: 'correct horse battery' });
    const pair = cookiePair(loggedIn.headers['set-cookie']);
    const sid = sidOf(loggedIn.headers['set-cookie']);
    expect(await redis.client.exists(sessionKeyOf(sid))).toBe(1);
    const res = await jsonLogout(service.app, pair);
    expect(res.status).toBe(204);
    const cleared = ([] as string[]).concat(res.headers['set-cookie'] ?? []).join();
    expect(cleared).toMatch(/gatehouse=;/);
    expect(cleared).toMatch(/Expires=Thu, 01 Jan 1970/);
    expect(cleared).toMatch(/HttpOnly/);
    expect(cleared).toMatch(/SameSite=Lax/);
    expect(await redis.client.exists(sessionKeyOf(sid))).toBe(0);
    const after = await request(service.app).get('/auth/validate').set('cookie', pair);
    expect(after.status).toBe(401);
  });

  it('sends a same-origin form logout to the login page with 303', async () => {
    const res = await request(service.app)
      .post('/auth/logout')
      .type('form')
      .set('sec-fetch-site', 'same-origin')
      .send('');
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/auth/login');
  });
});

describe('GET /auth/login', () => {
  it('serves an accessible form with no script but our own and no third-party assets', async () => {
    const res = await request(service.app).get('/auth/login?rd=%2Fprivate%3Fa%3D1');
    expect(res.status).toBe(200);
    expect(res.text).toContain('<label for="username">');
    expect(res.text).toContain('autocomplete="current-password"');
    expect(res.text).toContain('name="rd" value="/private?a=1"');
    // The passkey button's first-party script (static/webauthn.js), nothing inline.
    expect(res.text.match(/<script[^>]*>/gi)).toEqual([
      '<script src="/auth/static/webauthn.js" defer>',
    ]);
    expect(res.text).not.toMatch(/https?:\/\//);
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
  });

  it('drops a hostile rd from the page', async () => {
    const res = await request(service.app).get(
      '/auth/login?rd=%22%3E%3Cscript%3Ealert(1)%3C/script%3E',
    );
    expect(res.text).not.toContain('<script>alert');
  });
});

describe('health', () => {
  it('answers /healthz and /readyz', async () => {
    expect((await request(service.app).get('/healthz')).status).toBe(200);
    expect((await request(service.app).get('/readyz')).status).toBe(200);
  });
});
