/**
 * Access tokens through the gateway, end to end (issue 17): real processes (a session-service,
 * two gateways with warm validation caches, a recording upstream) on a real Redis. Tokens and
 * service accounts are made with the session-service's own domain code in the same Redis
 * (test/helpers/access-tokens.ts), as its token API and CLI make them.
 *
 * Use (identity headers and a signed identity naming the token by its id, never the token), scope
 * (routes, read-only), the route's `credentials`, a route's `require` a token cannot meet,
 * `allow` met by a service account's groups, expiry, revocation seen by a second gateway with a
 * warm cache, a user disabled with the users CLI, plain HTTP from afar with an https PUBLIC_URL,
 * a flood of random tokens (429, and Redis holds one small expiring key per address), no cookie
 * and no login redirect for a bearer, and no token in any log line or metric.
 * Through nginx auth_request, Caddy and HAProxy: test/helpers/recipe-policy.ts (token rows).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAssertionVerifier } from '../../common/src/verify-identity.js';
import { newToken } from '../../session-service/src/domain/access-tokens.js';
import {
  TOKEN_FAILURE_WINDOW_MS,
  TOKEN_FAILURES_MAX,
} from '../../session-service/src/domain/validate-token.js';
import { type TestTokens, testTokens } from '../helpers/access-tokens.js';
import { waitFor } from '../helpers/ports.js';
import {
  gatewayMetricsListener,
  SERVICES,
  type ServiceProcess,
  startService,
  startSessionServiceProcess,
} from '../helpers/processes.js';
import {
  type RecordingUpstream,
  type Seen,
  startRecordingUpstream,
} from '../helpers/recipe-policy.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { figure, jsonLogin } from '../helpers/reliability.js';
import { writeTestUsers } from '../helpers/users.js';
import { runUsersCli } from '../helpers/users-cli.js';

const PASSWORD = 'correct horse battery staple';
const ADMIN_TOKEN = 'an-admin-token-for-the-e2e-access-token-tests';
const BROWSER = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

let redis: RedisServer;
let users: Awaited<ReturnType<typeof writeTestUsers>>;
let sessionService: ServiceProcess;
let upstream: RecordingUpstream;
let gatewayA: ServiceProcess;
let gatewayB: ServiceProcess;
let metricsA: string;
let tokens: TestTokens;
/** Every token a test made or sent: none may reach a log line or a metric. */
const presented: string[] = [];

const userId = (name: string) => users.users.find((u) => u.username === name)?.id as string;

async function mint(...args: Parameters<TestTokens['mint']>) {
  const made = await tokens.mint(...args);
  presented.push(made.token);
  return made;
}

/** A request through `gateway` presenting `token` (as a client sends it). */
function withToken(
  gateway: ServiceProcess,
  path: string,
  token: string,
  init: { method?: string; headers?: Record<string, string> } = {},
) {
  return fetch(`${gateway.url}${path}`, {
    method: init.method ?? 'GET',
    redirect: 'manual',
    headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...init.headers },
  });
}

/** `run` must let nothing reach the upstream. */
async function reachesNothing(run: () => Promise<Response>): Promise<Response> {
  const before = upstream.received.length;
  const res = await run();
  expect(
    upstream.received.slice(before).map((r) => r.url),
    'reached the upstream',
  ).toEqual([]);
  return res;
}

beforeAll(async () => {
  redis = await startRedis();
  users = await writeTestUsers([
    { username: 'alice', password: PASSWORD, groups: ['staff'], email: 'alice@example.com' },
    { username: 'bob', password: PASSWORD, groups: ['staff'], email: 'bob@example.com' },
  ]);
  sessionService = await startSessionServiceProcess({
    redisUrl: redis.url,
    usersFile: users.path,
    env: { ADMIN_TOKEN },
  });
  upstream = await startRecordingUpstream();
  const app = `http://${upstream.address}`;
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-tokens-'));
  const routes = join(dir, 'routes.yaml');
  writeFileSync(
    routes,
    `routes:
  - { id: app, path: /, upstream: "${app}" }
  - { id: api, path: /api, upstream: "${app}" }
  - { id: reports, path: /reports, upstream: "${app}" }
  - { id: browser, path: /browser, upstream: "${app}", credentials: session }
  - { id: machines, path: /machines, upstream: "${app}", credentials: token }
  - { id: deploy, path: /deploy, upstream: "${app}", allow: { groups: [deployers] } }
  - { id: admin, path: /admin, upstream: "${app}", require: second-factor }
  - { id: pub, path: /pub, upstream: "${app}", public: true }
`,
  );
  const gateway = async (name: string, env: Record<string, string> = {}) =>
    startService({
      name,
      ...SERVICES.gateway,
      env: {
        REDIS_URL: redis.url,
        SESSION_SERVICE_URL: sessionService.url,
        GATEWAY_ROUTES: routes,
        // Long enough that only the revocation feed can explain a refusal within the test's bound.
        VALIDATE_CACHE_TTL_MS: '60000',
        ...env,
      },
    });
  const metrics = await gatewayMetricsListener();
  metricsA = metrics.url;
  // (one after the other: two cold starts at once are slow on a small machine)
  gatewayA = await gateway('gateway A', metrics.env);
  // B stands for a gateway users reach over https (PUBLIC_URL), behind a TLS proxy.
  gatewayB = await gateway('gateway B', { PUBLIC_URL: 'https://gatehouse.test' });
  tokens = await testTokens(redis.url);
  // Both gateways' validation caches are on (their revocation streams connected).
  await waitFor(
    async () => {
      const text = await (await fetch(metricsA)).text();
      return /gatehouse_gateway_validate_cache_enabled(\{[^}]*\})? 1/.test(text);
    },
    10_000,
    "gateway A's validation cache",
  );
}, 90_000);

afterAll(async () => {
  await tokens?.close();
  await Promise.all([gatewayA?.stop(), gatewayB?.stop()]);
  await sessionService?.stop();
  await upstream?.close();
  await redis?.stop();
});

describe('access tokens through the gateway', () => {
  it('a token reaches the app with the identity and a signed identity naming the token by its id; the token itself never does', async () => {
    const { token, record } = await mint(userId('alice'), { name: 'ci' });
    const verify = createAssertionVerifier({
      jwksUrl: `${sessionService.url}/auth/.well-known/jwks.json`,
      audience: 'api',
    });
    for (const accept of ['application/json', BROWSER]) {
      const before = upstream.received.length;
      const res = await withToken(gatewayA, '/api/things?x=1', token, {
        headers: {
          accept,
          // a client's own copies change nothing
          'x-gatehouse-authorization': 'Bearer gatehouse_pat_spoofed',
          'x-auth-request-user': 'mallory',
        },
      });
      expect(res.status, accept).toBe(200);
      expect(res.headers.getSetCookie(), 'no cookie for a bearer').toEqual([]);
      expect(upstream.received.length).toBe(before + 1);
      const seen = upstream.received.at(-1) as Seen;
      expect(seen.url).toBe('/api/things?x=1');
      expect(seen.read('x-auth-request-user')).toEqual(['alice']);
      expect(seen.read('x-auth-request-groups')).toEqual(['staff']);
      expect(seen.read('x-auth-request-email')).toEqual(['alice@example.com']);
      expect(seen.read('x-auth-request-expires')).toEqual([
        new Date(record.expiresAt).toISOString(),
      ]);
      // a token proves no sign-in: no amr, acr, auth_time
      for (const name of ['x-auth-request-amr', 'x-auth-request-acr', 'x-auth-request-auth-time'])
        expect(seen.read(name), name).toEqual([]);
      expect(seen.read('authorization')).toEqual([]);
      expect(seen.read('x-gatehouse-authorization')).toEqual([]);
      expect(seen.rawHeaders.join('\n')).not.toContain(token.slice(14, 40));
      const [jwt] = seen.read('x-auth-request-jwt');
      await verify(jwt); // signed by the session-service, for this route
      const claims = decodeJwt(jwt as string);
      expect(claims).toMatchObject({
        sub: userId('alice'),
        name: 'alice',
        groups: ['staff'],
        tok: record.id,
        tok_kind: 'pat',
      });
      expect(claims).not.toHaveProperty('amr');
      expect(claims).not.toHaveProperty('acr');
      expect(claims).not.toHaveProperty('auth_time');
      expect(JSON.stringify(claims)).not.toContain(token);
    }
    // the public validate reads the same token through the gateway's /auth/
    const validate = await withToken(gatewayA, '/auth/validate', token);
    expect(validate.status).toBe(200);
    expect(await validate.json()).toMatchObject({
      user: { username: 'alice' },
      token: { id: record.id, name: 'ci', kind: 'personal' },
    });
    expect(validate.headers.get('x-auth-request-jwt')).toBeNull();
  });

  it('an unknown, malformed or mistyped token is 401 JSON with WWW-Authenticate, for browsers too: never a login redirect, never a cookie', async () => {
    const bad = [
      newToken('personal'), // well-formed, unknown
      `gatehouse_pat_${'x'.repeat(10)}`, // malformed
      `gatehouse_sat_${'y'.repeat(300)}`, // too long to be one
    ];
    presented.push(...bad);
    for (const token of bad)
      for (const accept of [BROWSER, 'application/json']) {
        const what = `${token.slice(0, 20)}… (${accept.slice(0, 9)})`;
        const res = await reachesNothing(() =>
          withToken(gatewayA, '/api/things', token, {
            headers: { accept, 'x-forwarded-for': '198.51.100.1' },
          }),
        );
        expect(res.status, what).toBe(401);
        expect(res.headers.get('content-type'), what).toMatch(/^application\/json/);
        expect(res.headers.get('www-authenticate'), what).toBe('Bearer error="invalid_token"');
        expect(res.headers.get('location'), what).toBeNull();
        expect(res.headers.getSetCookie(), what).toEqual([]);
        expect(await res.json(), what).toMatchObject({ error: 'UNAUTHENTICATED' });
      }
  });

  it('scope: a token for some routes reaches those only; a read-only token reads only', async () => {
    const { token: apiOnly } = await mint(userId('alice'), { scope: { routes: ['api'] } });
    expect((await withToken(gatewayA, '/api/x', apiOnly)).status).toBe(200);
    for (const path of ['/reports/q1', '/', '/machines'])
      await reachesNothing(async () => {
        const res = await withToken(gatewayA, path, apiOnly);
        expect(res.status, path).toBe(403);
        expect(await res.json(), path).toMatchObject({ error: 'TOKEN_SCOPE' });
        return res;
      });
    const { token: readOnly } = await mint(userId('alice'), { scope: { readOnly: true } });
    for (const method of ['GET', 'HEAD', 'OPTIONS'])
      expect((await withToken(gatewayA, '/api/x', readOnly, { method })).status, method).toBe(200);
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'])
      await reachesNothing(async () => {
        const res = await withToken(gatewayA, '/api/x', readOnly, { method });
        expect(res.status, method).toBe(403);
        expect(await res.json(), method).toMatchObject({ error: 'TOKEN_SCOPE' });
        return res;
      });
    // scope groups narrow the owner's: the app hears only those
    const { token: noGroups } = await mint(userId('alice'), { scope: { groups: [] } });
    expect((await withToken(gatewayA, '/api/x', noGroups)).status).toBe(200);
    expect((upstream.received.at(-1) as Seen).read('x-auth-request-groups').join('')).toBe('');
  });

  it("a route's credentials: session refuses a token, token refuses a session (no login redirect); require a token cannot meet is refused", async () => {
    const { token } = await mint(userId('alice'));
    const browserOnly = await reachesNothing(() => withToken(gatewayA, '/browser/x', token));
    expect(browserOnly.status).toBe(403);
    expect(await browserOnly.json()).toMatchObject({ error: 'CREDENTIAL_NOT_ACCEPTED' });
    expect((await withToken(gatewayA, '/machines/x', token)).status).toBe(200);

    // a session never stands in for a token
    const cookie = await jsonLogin(gatewayA.url, 'alice', PASSWORD);
    expect(
      (await fetch(`${gatewayA.url}/browser/x`, { headers: { cookie, accept: BROWSER } })).status,
    ).toBe(200);
    for (const accept of [BROWSER, 'application/json']) {
      const res = await reachesNothing(() =>
        fetch(`${gatewayA.url}/machines/x`, { redirect: 'manual', headers: { cookie, accept } }),
      );
      expect(res.status, accept).toBe(403);
      expect(await res.json(), accept).toMatchObject({ error: 'CREDENTIAL_NOT_ACCEPTED' });
      const none = await reachesNothing(() =>
        fetch(`${gatewayA.url}/machines/x`, { redirect: 'manual', headers: { accept } }),
      );
      expect(none.status, accept).toBe(401);
      expect(none.headers.get('location'), accept).toBeNull();
      expect(none.headers.get('www-authenticate'), accept).toMatch(/^Bearer/);
    }
    // a token proves no sign-in, so it can never step up
    const admin = await reachesNothing(() =>
      withToken(gatewayA, '/admin/x', token, { headers: { accept: BROWSER } }),
    );
    expect(admin.status).toBe(403);
    expect(await admin.json()).toMatchObject({ error: 'CREDENTIAL_NOT_ACCEPTED' });
  });

  it("a service account's token carries its groups and meets a route's allow; a person's does not", async () => {
    const id = await tokens.serviceAccount('deploy-bot', ['deployers']);
    const { token, record } = await mint(id, { name: 'pipeline' });
    expect(token.startsWith('gatehouse_sat_')).toBe(true);
    const res = await withToken(gatewayA, '/deploy/now', token, { method: 'POST' });
    expect(res.status).toBe(200);
    const seen = upstream.received.at(-1) as Seen;
    expect(seen.read('x-auth-request-user')).toEqual(['deploy-bot']);
    expect(seen.read('x-auth-request-groups')).toEqual(['deployers']);
    const verify = createAssertionVerifier({
      jwksUrl: `${sessionService.url}/auth/.well-known/jwks.json`,
      audience: 'deploy',
    });
    const [jwt] = seen.read('x-auth-request-jwt');
    await verify(jwt);
    expect(decodeJwt(jwt as string)).toMatchObject({
      sub: id,
      tok: record.id,
      tok_kind: 'sat',
    });
    const { token: alices } = await mint(userId('alice'));
    const refused = await reachesNothing(() =>
      withToken(gatewayA, '/deploy/now', alices, { method: 'POST' }),
    );
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: 'FORBIDDEN' });
  });

  it("a service account's groups changed with the admin API: a gateway with a warm cache follows at once, not after its cache's minute", async () => {
    const id = await tokens.serviceAccount('regroup-bot', ['deployers']);
    const { token } = await mint(id, { name: 'pipeline' });
    for (let i = 0; i < 3; i++)
      expect((await withToken(gatewayB, '/deploy/now', token, { method: 'POST' })).status).toBe(
        200,
      );
    const patched = await fetch(`${sessionService.url}/admin/service-accounts/regroup-bot`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ groups: ['readers'] }),
    });
    expect(patched.status).toBe(200);
    const changedAt = Date.now();
    await waitFor(
      async () =>
        (await withToken(gatewayB, '/deploy/now', token, { method: 'POST' })).status === 403,
      2000,
      'the warm gateway to refuse the group taken away',
    );
    figure(
      'access tokens: a service account group taken away, refused by a warm gateway after',
      Date.now() - changedAt,
    );
    expect(Date.now() - changedAt).toBeLessThan(1000);
    const res = await withToken(gatewayB, '/api/x', token);
    expect(res.status).toBe(200);
    expect((upstream.received.at(-1) as Seen).read('x-auth-request-groups')).toEqual(['readers']);
  });

  it('an expired token is refused', async () => {
    const { token } = await mint(userId('alice'), { ttlMs: 2500 });
    expect((await withToken(gatewayA, '/api/x', token)).status).toBe(200);
    await waitFor(
      async () => (await withToken(gatewayA, '/api/x', token)).status === 401,
      6000,
      'the expired token to be refused',
    );
  });

  it('a revoked token: a second gateway with a warm cache refuses it within the revocation bound', async () => {
    const { token, record } = await mint(userId('alice'));
    // Both gateways have validated it and keep the answer (VALIDATE_CACHE_TTL_MS is 60 s here).
    for (const gateway of [gatewayA, gatewayB])
      for (let i = 0; i < 3; i++)
        expect((await withToken(gateway, '/api/x', token)).status).toBe(200);
    const cache = await (await fetch(metricsA)).text();
    expect(cache).toMatch(
      /gatehouse_gateway_validate_cache_lookups_total\{outcome="hit"[^}]*\} [1-9]/,
    );
    expect(await tokens.revoke(userId('alice'), record.id)).toBe(true);
    const revokedAt = Date.now();
    await waitFor(
      async () => (await withToken(gatewayB, '/api/x', token)).status === 401,
      2000,
      'the second gateway to refuse the revoked token',
    );
    const seenAfter = Date.now() - revokedAt;
    figure('access tokens: revocation refused by a second gateway (warm cache) after', seenAfter);
    // The sessions' bound (many-instances.test.ts: a logout seen by the other gateway within
    // 500 ms), with room for a loaded test machine; the cache alone would keep it for 60 s.
    expect(seenAfter).toBeLessThan(1000);
    expect((await withToken(gatewayA, '/api/x', token)).status).toBe(401);
  });

  it('a user disabled with the users CLI: their tokens are refused', async () => {
    const { token } = await mint(userId('bob'));
    for (const gateway of [gatewayA, gatewayB])
      expect((await withToken(gateway, '/api/x', token)).status).toBe(200);
    const cli = await runUsersCli(['disable', 'bob'], {
      env: { USERS_FILE: users.path, REDIS_URL: redis.url },
    });
    expect(cli.code, cli.stderr).toBe(0);
    const disabledAt = Date.now();
    for (const gateway of [gatewayA, gatewayB])
      await waitFor(
        async () => (await withToken(gateway, '/api/x', token)).status === 401,
        5000,
        `${gateway.name} to refuse a disabled user's token`,
      );
    figure('access tokens: disabled user refused by both gateways after', Date.now() - disabledAt);
  });

  it('a token over plain HTTP from another machine is refused when PUBLIC_URL is https, without asking', async () => {
    const { token } = await mint(userId('alice'));
    // gateway B trusts its loopback peer's X-Forwarded-*: the client is 203.0.113.5
    const afar = await reachesNothing(() =>
      withToken(gatewayB, '/api/x', token, { headers: { 'x-forwarded-for': '203.0.113.5' } }),
    );
    expect(afar.status).toBe(403);
    expect(await afar.json()).toMatchObject({ error: 'HTTPS_REQUIRED' });
    const overTls = await withToken(gatewayB, '/api/x', token, {
      headers: { 'x-forwarded-for': '203.0.113.5', 'x-forwarded-proto': 'https' },
    });
    expect(overTls.status).toBe(200);
    // from this machine, and on a gateway without an https PUBLIC_URL: accepted
    expect((await withToken(gatewayB, '/api/x', token)).status).toBe(200);
    expect(
      (
        await withToken(gatewayA, '/api/x', token, {
          headers: { 'x-forwarded-for': '203.0.113.5' },
        })
      ).status,
    ).toBe(200);
  });

  it('a flood of random tokens: 429 with Retry-After after the limit, and Redis holds one small expiring key per address', async () => {
    const before = await tokens.keys('*');
    const addresses = Array.from({ length: 20 }, (_, i) => `192.0.2.${100 + i}`);
    const flood = (address: string) =>
      withToken(gatewayA, '/api/x', newToken('personal'), {
        headers: { 'x-forwarded-for': address },
      });
    const [first] = addresses as [string];
    const statuses: number[] = [];
    for (let i = 0; i < TOKEN_FAILURES_MAX + 5; i++) statuses.push((await flood(first)).status);
    expect(statuses.slice(0, TOKEN_FAILURES_MAX)).toEqual(Array(TOKEN_FAILURES_MAX).fill(401));
    expect(statuses.slice(TOKEN_FAILURES_MAX)).toEqual(Array(5).fill(429));
    const throttled = await flood(first);
    expect(throttled.status).toBe(429);
    expect(await throttled.json()).toMatchObject({ error: 'TOO_MANY_ATTEMPTS' });
    const retryAfter = Number(throttled.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(TOKEN_FAILURE_WINDOW_MS / 1000);
    // a valid token from that address waits too; from elsewhere it works
    const { token } = await mint(userId('alice'));
    expect(
      (await withToken(gatewayA, '/api/x', token, { headers: { 'x-forwarded-for': first } }))
        .status,
    ).toBe(429);
    expect((await withToken(gatewayA, '/api/x', token)).status).toBe(200);
    // many addresses, a few random tokens each
    for (const address of addresses.slice(1))
      for (let i = 0; i < 3; i++) expect((await flood(address)).status).toBe(401);
    const after = await tokens.keys('*');
    const added = after.filter((k) => !before.some((b) => b.key === k.key));
    const failures = added.filter((k) => k.key.includes('tokfail:'));
    // one key per address, each expiring within the window; nothing else but the new token's
    expect(failures).toHaveLength(addresses.length);
    for (const { key, ttl } of failures) {
      expect(ttl, key).toBeGreaterThan(0);
      expect(ttl, key).toBeLessThanOrEqual(TOKEN_FAILURE_WINDOW_MS);
    }
    expect(added.filter((k) => !k.key.includes('tokfail:')).every((k) => k.ttl > 0)).toBe(true);
    figure('access tokens: Redis keys added by a flood from 20 addresses', failures.length, 'keys');
  });

  it('no token ever reaches a log line or a metric', async () => {
    const metrics = await (await fetch(metricsA)).text();
    const outputs = [sessionService, gatewayA, gatewayB].map((p) => ({
      name: p.name,
      text: p.output(),
    }));
    expect(presented.length).toBeGreaterThan(10);
    for (const token of presented) {
      // the random part alone: a token cut anywhere still does not appear
      const secret = token.slice(14, 50);
      for (const { name, text } of [...outputs, { name: 'metrics', text: metrics }])
        expect(text.includes(secret), `${name} holds a token`).toBe(false);
    }
    // the refusals were logged (without the token)
    expect(outputs.find((o) => o.name === 'session-service')?.text).toContain('token.refused');
  });
});
