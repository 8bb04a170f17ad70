/**
 * Issue 15's Done-when, across real processes: a session-service and TWO gateways sharing one
 * Redis, the test OpenID Provider (oidc-provider 9) in front of them. A user signs in with the
 * provider through gateway 1 (over HTTP, its login form filled by fetch), uses the same session
 * through both gateways (each now holds a warm validation cache), then the provider sends
 * back-channel logout: within the revocation bound both gateways refuse the cookie and nothing
 * more reaches the backend. Also: a provider user's groups decide a group-only route.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CookieJar } from '../helpers/cookie-jar.js';
import { type EchoUpstream, startEchoUpstream } from '../helpers/echo-upstream.js';
import { type OidcProviderHandle, startOidcProvider } from '../helpers/oidc-provider.js';
import { signInWithProvider } from '../helpers/oidc-rp.js';
import { GiveUp, reservedDeadPort, waitFor } from '../helpers/ports.js';
import { SERVICES, type ServiceProcess, startService } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { figure } from '../helpers/reliability.js';
import { writeTestUsers } from '../helpers/users.js';

const CLIENT_ID = 'gatehouse';
const CLIENT_SECRET = 'gatehouse-e2e-client-secret-0123456789';
/** The revocation bound the issue promises a back-channel logout (ms). */
const BOUND_MS = 2_000;

let redis: RedisServer;
let op: OidcProviderHandle;
let echo: EchoUpstream;
let sessionService: ServiceProcess;
let gateway1: ServiceProcess;
let gateway2: ServiceProcess;
/** PUBLIC_URL: gateway 1, as the provider knows it (callback, back-channel logout). */
let publicUrl = '';

beforeAll(async () => {
  [redis, echo] = await Promise.all([startRedis(), startEchoUpstream()]);
  // Gateway 1's port is chosen first: the provider registers its URLs before anything starts.
  const port1 = await reservedDeadPort();
  publicUrl = `http://localhost:${port1}`;
  op = await startOidcProvider({
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${publicUrl}/auth/oidc/op/callback`],
        post_logout_redirect_uris: [`${publicUrl}/auth/login`],
        // The provider reaches Gatehouse where browsers do: through the gateway.
        backchannel_logout_uri: `${publicUrl}/auth/oidc/op/backchannel-logout`,
      },
    ],
    accounts: {
      ada: {
        sub: 'sub-ada',
        claims: {
          preferred_username: 'ada',
          email: 'ada@example.com',
          email_verified: true,
          groups: ['admins', 'staff'],
        },
      },
      bea: {
        sub: 'sub-bea',
        claims: { preferred_username: 'bea', email: 'bea@example.com', groups: ['staff'] },
      },
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-e2e-oidc-'));
  const sources = join(dir, 'identity-sources.yaml');
  writeFileSync(
    sources,
    `oidc:
  - id: op
    name: Test Provider
    issuer: ${op.issuer}
    clientId: ${CLIENT_ID}
    clientSecretEnv: OP_CLIENT_SECRET
    scopes: [openid, profile, email, groups]
    claims: { groups: groups }
`,
  );
  const routes = join(dir, 'routes.yaml');
  writeFileSync(
    routes,
    `routes:
  - id: app
    upstream: ${echo.url}
  - id: admin
    path: /admin
    upstream: ${echo.url}
    allow: { groups: [admins] }
`,
  );
  const users = await writeTestUsers([]);
  sessionService = await startService({
    name: 'session-service',
    ...SERVICES.sessionService,
    env: {
      REDIS_URL: redis.url,
      USERS_FILE: users.path,
      SESSION_SECRET: 'test-secret-test-secret-test-secret-0123',
      DEV_SECRET_FILE: join(dir, 'session-secret'),
      PUBLIC_URL: publicUrl,
      IDENTITY_SOURCES_FILE: sources,
      OP_CLIENT_SECRET: CLIENT_SECRET,
      LOG_LEVEL: 'info',
    },
  });
  const gateway = (name: string, port?: number) =>
    startService({
      name,
      ...SERVICES.gateway,
      ...(port ? { port, waitHealthy: false } : {}),
      env: {
        REDIS_URL: redis.url,
        SESSION_SERVICE_URL: sessionService.url,
        GATEWAY_ROUTES: routes,
        // A warm cache that would keep answering for a while on its own: the revocation feed
        // (not the cache's expiry) must be what ends the session within the bound.
        VALIDATE_CACHE_TTL_MS: '30000',
        LOG_LEVEL: 'warn',
      },
    });
  [gateway1, gateway2] = await Promise.all([gateway('gateway 1', port1), gateway('gateway 2')]);
  // startService gives a process on a port of ours (no listening line to wait for) 20 s to be
  // healthy, compiling included: on a busy machine gateway 1 gets as long as the others had.
  await waitFor(
    async () => {
      if (gateway1.process.exitCode !== null)
        throw new GiveUp(`gateway 1 exited: ${gateway1.output()}`);
      return (await fetch(`${gateway1.url}/_gatehouse/healthz`).catch(() => null))?.status === 200;
    },
    60_000,
    'gateway 1 to be healthy',
  );
}, 90_000);

afterAll(async () => {
  await Promise.all([gateway1?.stop(), gateway2?.stop()]);
  await sessionService?.stop();
  await op?.close();
  await echo?.close();
  await redis?.stop();
});

/** GET `path` through `gateway` as JSON (a 401 rather than the login redirect). */
const through = (gateway: ServiceProcess, path: string, jar: CookieJar) =>
  fetch(`${gateway.url}${path}`, {
    redirect: 'manual',
    headers: { cookie: jar.header(), accept: 'application/json' },
  });

const signIn = (login: string) =>
  signInWithProvider({ startUrl: `${publicUrl}/auth/oidc/op/start?rd=/`, login });

describe('back-channel logout across two gateways', () => {
  it('ends the session on both warm gateways within the bound; nothing more reaches the backend', async () => {
    const { response, jar } = await signIn('ada');
    expect(response.status).toBe(303);
    expect(jar.get('gatehouse')).toBeTruthy();

    // the same cookie through both gateways: each validates once and keeps the answer
    for (const gateway of [gateway1, gateway2]) {
      for (let i = 0; i < 2; i++) {
        const before = echo.received.length;
        const res = await through(gateway, `/page?via=${gateway.port}&n=${i}`, jar);
        expect(res.status, await res.text()).toBe(200);
        expect(echo.received.length).toBe(before + 1);
        expect(echo.last().header('x-auth-request-user')).toEqual(['ada']);
      }
    }

    const sid = op.sidFor('sub-ada', CLIENT_ID);
    expect(sid).toBeTruthy();
    const reached = echo.received.length;
    const sent = Date.now();
    const status = await op.backchannelLogout({ clientId: CLIENT_ID, accountId: 'sub-ada', sid });
    expect(status).toBe(200);
    const acknowledged = Date.now() - sent;

    const refusedAt = new Map<ServiceProcess, number>();
    await waitFor(
      async () => {
        for (const gateway of [gateway1, gateway2]) {
          if (refusedAt.has(gateway)) continue;
          const res = await through(gateway, '/page?after=logout', jar);
          await res.body?.cancel();
          if (res.status === 401) refusedAt.set(gateway, Date.now() - sent);
        }
        return refusedAt.size === 2;
      },
      BOUND_MS,
      'both gateways to refuse the cookie',
    );
    figure('oidc back-channel logout: answered by the session-service', acknowledged);
    figure('oidc back-channel logout → gateway 1 refuses', refusedAt.get(gateway1) ?? -1);
    figure('oidc back-channel logout → gateway 2 refuses', refusedAt.get(gateway2) ?? -1);
    // only requests sent before the revocation arrived could have reached it
    const leaked = echo.received.slice(reached).filter((r) => r.url.includes('after=logout'));
    expect(leaked.length).toBeLessThanOrEqual(2);

    // from now on nothing reaches the backend, on either gateway: JSON 401, a browser's redirect
    const settled = echo.received.length;
    for (const gateway of [gateway1, gateway2]) {
      expect((await through(gateway, '/page?later=1', jar)).status).toBe(401);
      const page = await fetch(`${gateway.url}/page?later=2`, {
        redirect: 'manual',
        headers: { cookie: jar.header(), accept: 'text/html' },
      });
      expect(page.status).toBe(302);
      expect(page.headers.get('location')).toMatch(/\/auth\/login\?rd=/);
    }
    expect(echo.received.length).toBe(settled);
  });
});

describe('groups from the provider decide routes', () => {
  it('a provider user in admins reaches the admins-only route; one not in it gets 403', async () => {
    const ada = await signIn('ada');
    const bea = await signIn('bea');
    expect(ada.response.status).toBe(303);
    expect(bea.response.status).toBe(303);

    const before = echo.received.length;
    const allowed = await through(gateway2, '/admin/report', ada.jar);
    expect(allowed.status).toBe(200);
    expect(echo.received.length).toBe(before + 1);
    expect(echo.last().header('x-auth-request-groups')).toEqual(['admins,staff']);

    const refused = await through(gateway2, '/admin/report', bea.jar);
    expect(refused.status).toBe(403);
    expect(echo.received.length).toBe(before + 1);
    // bea may use the rest of the app
    expect((await through(gateway1, '/page', bea.jar)).status).toBe(200);
  });
});
