import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BROWSER_ACCEPT as HTML,
  hiddenFields,
  httpsFetch,
  type NginxServer,
  signInThroughNginx,
  startNginx,
} from '../helpers/nginx.js';
import { type System, startSystem, TEST_INTERNAL_TOKEN, untilReady } from '../helpers/processes.js';
import { ALICE, describeRecipePolicy } from '../helpers/recipe-policy.js';
import { killAndWait, type RedisServer, startRedis } from '../helpers/redis.js';
import { writeTestUsers } from '../helpers/users.js';

const JSON_ACCEPT = { accept: 'application/json' };

interface WhoAmI {
  user: { username: string; groups: string[]; email: string };
  signed: boolean;
  requestId: string;
}

/**
 * nginx alone in front of the demo-app (auth_request to the session-service, /auth/ proxied to
 * it): the gateway that startSystem also starts is not on this path.
 */
describe('nginx auth_request in front of the demo-app (no gateway)', () => {
  let redis: RedisServer;
  let system: System;
  let nginx: NginxServer;

  beforeAll(async () => {
    redis = await startRedis();
    const users = await writeTestUsers([ALICE]);
    // The demo-app as in production: it trusts only identities the session-service signed.
    system = await startSystem({
      redisUrl: redis.url,
      usersFile: users.path,
      demoEnv: { REQUIRE_SIGNED_IDENTITY: 'true' },
    });
    nginx = await startNginx({
      template: 'auth-request',
      vars: {
        PROTECTED_UPSTREAM: `127.0.0.1:${system.demoApp.port}`,
        SESSION_SERVICE_UPSTREAM: `127.0.0.1:${system.sessionService.port}`,
        IDENTITY_AUDIENCE: 'default',
        // what startSystem gives the session-service, and the name of its cookie
        INTERNAL_TOKEN: TEST_INTERNAL_TOKEN,
        SESSION_COOKIE_NAME: 'gatehouse',
      },
    });
  });

  afterAll(async () => {
    await nginx?.stop();
    await system?.stop();
    await redis?.stop();
  });

  const login = (rd: string) => signInThroughNginx(nginx, ALICE, rd);

  it('redirects plain HTTP to HTTPS', async () => {
    const res = await fetch(`${nginx.httpUrl}/api/whoami?a=1`, { redirect: 'manual' });
    expect(res.status).toBe(301);
    expect(res.headers.get('location')).toBe(`https://127.0.0.1:${nginx.httpsPort}/api/whoami?a=1`);
  });

  it('sends a browser without a session to /auth/login with rd = the original path and query', async () => {
    for (const target of ['/', '/reports', '/reports?year=2024&q=a&page=2', '/a/b?x=%C3%A9']) {
      const res = await httpsFetch(`${nginx.httpsUrl}${target}`, {
        ca: nginx.ca,
        headers: { accept: HTML },
      });
      expect(res.status, target).toBe(302);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const location = res.headers.get('location') ?? '';
      expect(location.startsWith('/auth/login?rd=')).toBe(true);
      const rd = new URL(location, nginx.httpsUrl).searchParams.get('rd');
      expect(rd, target).toBe(decodeURIComponent(target));
    }
    // Past seven "&" nginx (no URL-escaping variable) keeps the path alone: safe, if less helpful.
    const many = `/many?${Array.from({ length: 9 }, (_, i) => `p${i}=${i}`).join('&')}`;
    const res = await httpsFetch(`${nginx.httpsUrl}${many}`, {
      ca: nginx.ca,
      headers: { accept: HTML },
    });
    expect(new URL(res.headers.get('location') ?? '', nginx.httpsUrl).searchParams.get('rd')).toBe(
      '/many',
    );
  });

  it('answers 431 to 8 to 16 KiB of cookies, for browsers too: never a session that looks absent and a login loop', async () => {
    const { client, res } = await login('/');
    expect(res.status).toBe(303);
    expect(
      (await client.fetch(`${nginx.httpsUrl}/api/whoami`, { headers: JSON_ACCEPT })).status,
    ).toBe(200);
    for (const size of [8 * 1024 + 1, 12 * 1024, 15 * 1024]) {
      const big = await client.fetch(`${nginx.httpsUrl}/`, {
        headers: { accept: HTML, cookie: `${client.jar.header()}; pad=${'x'.repeat(size)}` },
      });
      expect(big.status, String(size)).toBe(431);
      expect(await big.json()).toMatchObject({ error: 'COOKIES_TOO_LARGE' });
    }
  });

  it('answers an API client without a session 401 JSON', async () => {
    const res = await httpsFetch(`${nginx.httpsUrl}/api/whoami`, {
      ca: nginx.ca,
      headers: JSON_ACCEPT,
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(await res.json()).toMatchObject({ error: 'UNAUTHENTICATED' });
  });

  it('serves the login page on the same origin and logs in through nginx', async () => {
    const { client, res } = await login('/reports?year=2024&q=a');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/reports?year=2024&q=a');
    const cookies = res.headers.getSetCookie();
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) expect(cookie).toMatch(/;\s*Secure/i);

    const whoami = await client.fetch(`${nginx.httpsUrl}/api/whoami`, { headers: JSON_ACCEPT });
    expect(whoami.status).toBe(200);
    const body = (await whoami.json()) as WhoAmI;
    expect(body.user).toMatchObject({
      username: 'alice',
      groups: ['staff', 'ops'],
      email: 'alice@example.com',
    });
    // The signed identity from validate (?aud=) reached the app, which verified it.
    expect(body.signed).toBe(true);
    expect(body.requestId).toMatch(/^[0-9a-f]{32}$/);
    expect(whoami.headers.get('x-request-id')).toBe(body.requestId);

    const css = await client.fetch(`${nginx.httpsUrl}/auth/static/gatehouse.css`);
    expect(css.status).toBe(200);
  });

  it('exposes no validate that signs: the public one never does, the auth subrequest is internal', async () => {
    const { client } = await login('/');
    for (const path of ['/auth/validate?aud=default', '/auth/validate?aud=other']) {
      const res = await client.fetch(`${nginx.httpsUrl}${path}`, { headers: JSON_ACCEPT });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('x-auth-request-user'), path).toBe('alice');
      expect(res.headers.get('x-auth-request-jwt'), path).toBeNull();
    }
    const internal = await client.fetch(`${nginx.httpsUrl}/_gatehouse_validate`, {
      headers: JSON_ACCEPT,
    });
    expect(internal.status).toBe(404);
    expect(internal.headers.get('x-auth-request-jwt')).toBeNull();
  });

  it('replaces client-sent identity headers with the validated identity', async () => {
    const spoof = {
      ...JSON_ACCEPT,
      'x-auth-request-user': 'mallory',
      'x-auth-request-groups': 'admin',
      'x-auth-request-email': 'mallory@example.com',
      'x-auth-request-jwt': 'eyJhbGciOiJub25lIn0.eyJuYW1lIjoibWFsbG9yeSJ9.',
    };
    const anonymous = await httpsFetch(`${nginx.httpsUrl}/api/whoami`, {
      ca: nginx.ca,
      headers: spoof,
    });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).not.toContain('mallory');

    const { client } = await login('/');
    const res = await client.fetch(`${nginx.httpsUrl}/api/whoami`, { headers: spoof });
    expect(res.status).toBe(200);
    const body = (await res.json()) as WhoAmI;
    expect(body.signed).toBe(true);
    expect(body.user).toMatchObject({
      username: 'alice',
      groups: ['staff', 'ops'],
      email: 'alice@example.com',
    });
  });

  it('logs out through nginx: the session no longer opens the app', async () => {
    const { client } = await login('/');
    expect(
      (await client.fetch(`${nginx.httpsUrl}/api/whoami`, { headers: JSON_ACCEPT })).status,
    ).toBe(200);
    const cookie = client.jar.header();
    const page = await client.fetch(`${nginx.httpsUrl}/`, { headers: { accept: HTML } });
    const out = await client.fetch(`${nginx.httpsUrl}/auth/logout`, {
      method: 'POST',
      headers: {
        accept: HTML,
        'content-type': 'application/x-www-form-urlencoded',
        origin: nginx.httpsUrl,
      },
      body: new URLSearchParams(hiddenFields(await page.text())).toString(),
    });
    expect(out.status).toBe(303);
    // The old cookie, replayed: refused.
    const replay = await httpsFetch(`${nginx.httpsUrl}/api/whoami`, {
      ca: nginx.ca,
      headers: { ...JSON_ACCEPT, cookie },
    });
    expect(replay.status).toBe(401);
  });

  it('fails closed with 503 when validate answers 503 (Redis down)', async () => {
    const { client } = await login('/');
    await killAndWait(redis.process);
    try {
      const res = await client.fetch(`${nginx.httpsUrl}/api/whoami`, { headers: JSON_ACCEPT });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      const body = await res.text();
      expect(body).not.toContain('alice');
      expect(JSON.parse(body)).toMatchObject({ error: 'SESSION_SERVICE_UNAVAILABLE' });
    } finally {
      await redis.restart();
      await untilReady(system.sessionService.url);
    }
  });

  it('fails closed with 503 when validate does not answer in time (Redis frozen)', async () => {
    const { client } = await login('/');
    redis.pause();
    try {
      const res = await client.fetch(`${nginx.httpsUrl}/api/whoami`, { headers: JSON_ACCEPT });
      expect(res.status).toBe(503);
      const body = await res.text();
      expect(body).not.toContain('alice');
      expect(JSON.parse(body)).toMatchObject({ error: 'SESSION_SERVICE_UNAVAILABLE' });
    } finally {
      redis.resume();
      // The next test logs in: not before the session-service reaches Redis again.
      await untilReady(system.sessionService.url);
    }
  });

  it('fails closed with 503 when the session-service is down: nothing reaches the app', async () => {
    const { client } = await login('/');
    await system.sessionService.stop();
    for (const accept of ['application/json', HTML]) {
      const res = await client.fetch(`${nginx.httpsUrl}/api/whoami`, { headers: { accept } });
      expect(res.status, accept).toBe(503);
      expect(await res.text()).not.toContain('alice');
    }
    const anonymous = await httpsFetch(`${nginx.httpsUrl}/`, {
      ca: nginx.ca,
      headers: { accept: HTML },
    });
    expect(anonymous.status).toBe(503);
    expect(anonymous.headers.get('content-type')).toMatch(/text\/html/);
  });
});

// The same policy as the Caddy and HAProxy recipes, over HTTP/1.1 and HTTP/2, with an upstream
// that records what it received in the demo-app's place.
describeRecipePolicy(
  'nginx auth_request (nginx/templates/auth-request.conf.template)',
  async (deps) => {
    const nginx = await startNginx({
      template: 'auth-request',
      vars: {
        PROTECTED_UPSTREAM: deps.upstream.address,
        SESSION_SERVICE_UPSTREAM: `127.0.0.1:${deps.sessionService.port}`,
        IDENTITY_AUDIENCE: 'default',
        INTERNAL_TOKEN: deps.internalToken,
        SESSION_COOKIE_NAME: 'gatehouse',
      },
    });
    return {
      url: nginx.httpsUrl,
      ca: nginx.ca,
      audience: 'default',
      output: nginx.output,
      stop: nginx.stop,
    };
  },
);
