import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CookieJar } from '../helpers/cookie-jar.js';
import { browserLogin } from '../helpers/login.js';
import { waitFor } from '../helpers/ports.js';
import { type System, startSystem } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { sessionKeyOf, storedAuthOf } from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';

let redis: RedisServer;
let system: System;
const PASSWORD = 'correct horse battery';
const HTML = { accept: 'text/html,application/xhtml+xml' };

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    { username: 'alice', password: PASSWORD, groups: ['admins'], email: 'alice@example.com' },
    { username: '<script>alert(1)</script>', password: PASSWORD },
  ]);
  system = await startSystem({ redisUrl: redis.url, usersFile: users.path });
});
afterAll(async () => {
  await system?.stop();
  await redis?.stop();
});

async function loginThroughGateway(jar: CookieJar, username: string, rd = '/') {
  const res = await browserLogin(jar, system.gateway.url, username, PASSWORD, rd);
  expect(res.status).toBe(303);
  return res;
}

describe('through the gateway, as a browser', () => {
  it('sends a browser without a session to the login page with the path and query it asked for', async () => {
    const res = await fetch(`${system.gateway.url}/reports/2026?tab=q1&x=%2F`, {
      headers: HTML,
      redirect: 'manual',
    });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe(
      `/auth/login?rd=${encodeURIComponent('/reports/2026?tab=q1&x=%2F')}`,
    );
  });

  it('answers an API client without a session with 401 JSON', async () => {
    const res = await fetch(`${system.gateway.url}/api/whoami`, {
      headers: { accept: 'application/json' },
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'UNAUTHENTICATED', message: expect.any(String) });
  });

  it('serves the login page through the gateway', async () => {
    const res = await fetch(`${system.gateway.url}/auth/login?rd=%2Freports`, { headers: HTML });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('name="rd" value="/reports"');
  });

  it('logs in, lands on the page first asked for, and the backend sees the identity the gateway set', async () => {
    const jar = new CookieJar();
    const login = await loginThroughGateway(jar, 'alice', '/api/whoami');
    expect(login.headers.get('location')).toBe('/api/whoami');
    expect(jar.get('gatehouse')).toBeTruthy();

    const res = await jar.fetch(`${system.gateway.url}/api/whoami`, {
      headers: {
        'X-Auth-Request-User': 'mallory',
        'x-auth-request-groups': 'admins,root',
        'X-AUTH-REQUEST-EMAIL': 'm@evil.example',
        'X-Auth-Request-Amr': 'hwk,user,mfa',
      },
    });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as {
      user: { username: string; groups: string[]; email: string; amr: string[] };
      signed: boolean;
      requestId: string;
    };
    // From the signed identity: who, and how they signed in (a password, whatever the client said).
    expect(seen.signed).toBe(true);
    expect(seen.user).toMatchObject({
      username: 'alice',
      groups: ['admins'],
      email: 'alice@example.com',
      amr: ['pwd'],
    });
    expect(seen.requestId).toBe(res.headers.get('x-request-id'));

    const home = await jar.fetch(`${system.gateway.url}/`, { headers: HTML });
    expect(home.status).toBe(200);
    const page = await home.text();
    expect(page).toContain('Welcome, <span id="username">alice</span>');
    expect(page).toContain('<dd id="signed-in-with">password</dd>');
  });

  it('never lets a client-sent identity through without a session', async () => {
    const res = await fetch(`${system.gateway.url}/api/whoami`, {
      headers: { 'X-Auth-Request-User': 'alice' },
    });
    expect(res.status).toBe(401);
  });

  it('escapes a username that holds markup', async () => {
    const jar = new CookieJar();
    await loginThroughGateway(jar, '<script>alert(1)</script>');
    const home = await jar.fetch(`${system.gateway.url}/`, { headers: HTML });
    const html = await home.text();
    expect(html).toContain(
      'Welcome, <span id="username">&lt;script&gt;alert(1)&lt;/script&gt;</span>',
    );
    expect(html).not.toContain('<script>alert(1)');
  });

  it('keeps no password in Redis, and logout removes the session and refuses the old cookie', async () => {
    const jar = new CookieJar();
    await loginThroughGateway(jar, 'alice');
    const cookie = jar.header();
    const value = decodeURIComponent(jar.get('gatehouse') ?? '');
    const sid = value.slice(2, value.lastIndexOf('.'));
    const raw = await redis.client.get(sessionKeyOf(sid));
    expect((await storedAuthOf(redis.client, sid))?.createdAt).toBeGreaterThan(0);
    expect(raw).not.toContain(PASSWORD);

    const logout = await jar.fetch(`${system.gateway.url}/auth/logout`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'sec-fetch-site': 'same-origin',
        ...HTML,
      },
      body: '',
    });
    expect(logout.status).toBe(303);
    expect(logout.headers.get('location')).toBe('/auth/login');
    expect(await redis.client.exists(sessionKeyOf(sid))).toBe(0);

    const replay = await fetch(`${system.gateway.url}/api/whoami`, { headers: { cookie } });
    expect(replay.status).toBe(401);
  });
});

describe('when Redis stops', () => {
  it('fails closed: 503 within 2 s, never 200, and readiness says not ready', async () => {
    const jar = new CookieJar();
    await loginThroughGateway(jar, 'alice');
    expect((await jar.fetch(`${system.gateway.url}/api/whoami`)).status).toBe(200);

    redis.process.kill('SIGKILL');
    await new Promise<void>((resolve) => redis.process.once('exit', () => resolve()));
    // The gateway's validation cache turns off when the session-service's revocation stream
    // drops, milliseconds after Redis goes away (docs/performance.md): from then on, 503 only.
    await waitFor(
      async () => (await jar.fetch(`${system.gateway.url}/api/whoami`)).status === 503,
      1000,
      'the gateway to fail closed',
    );
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      const res = await jar.fetch(`${system.gateway.url}/api/whoami`);
      expect(res.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(2000);
      expect((await res.json()).error).toBe('SESSION_SERVICE_UNAVAILABLE');
    }
    const ready = await fetch(`${system.sessionService.url}/readyz`);
    expect(ready.status).toBe(503);
  });
});
