/**
 * The gateway's validation cache against real processes: Redis, two session-services sharing it,
 * the demo-app and three gateways. Gateway A talks to session-service 1, gateway B to
 * session-service 2, so a revocation made through one reaches the other only through Redis
 * pub/sub and the second service's revocation stream. Gateway C holds a wrong INTERNAL_TOKEN:
 * its stream never connects, so its cache must stay off.
 *
 * Over 300 lines: both describes run over these seven processes, started once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLogin } from '../helpers/login.js';
import { waitFor } from '../helpers/ports.js';
import {
  gatewayMetricsListener,
  SERVICES,
  type ServiceProcess,
  startService,
} from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { sealedRecordAt, sessionKeyOf, storedRecordAt } from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';
import { runUsersCli } from '../helpers/users-cli.js';

const PASSWORD = 'correct horse battery';
const SECRET = 'test-secret-test-secret-test-secret-0123';
const ADMIN_TOKEN = 'admin-token-admin-token-admin-token-0001';
const INTERNAL_TOKEN = 'internal-token-internal-token-internal-01';
/** The bound the issue sets: every gateway refuses within this long after the call returned. */
const BOUND_MS = 100;
const POLL_MS = 5;
const USERNAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];

let redis: RedisServer;
let usersFile: string;
let s1: ServiceProcess;
let s2: ServiceProcess;
let demo: ServiceProcess;
let gatewayA: ServiceProcess;
let gatewayB: ServiceProcess;
let gatewayC: ServiceProcess;
const started: ServiceProcess[] = [];

async function startSessionService(name: string, port?: number) {
  return startService({
    name,
    ...SERVICES.sessionService,
    ...(port ? { port } : {}),
    env: {
      REDIS_URL: redis.url,
      USERS_FILE: usersFile,
      SESSION_SECRET: SECRET,
      ADMIN_TOKEN,
      INTERNAL_TOKEN,
      LOGIN_THROTTLE_ADDRESS_ATTEMPTS: '100000',
    },
  });
}

/** Where each gateway process's metrics listener answers. */
const metricsUrls = new Map<ServiceProcess, string>();

async function startGateway(name: string, sessionService: ServiceProcess, token = INTERNAL_TOKEN) {
  const metrics = await gatewayMetricsListener();
  const gateway = await startService({
    name,
    ...SERVICES.gateway,
    env: {
      SESSION_SERVICE_URL: sessionService.url,
      UPSTREAM_URL: demo.url,
      INTERNAL_TOKEN: token,
      // A wrong token is refused by /internal/validate too (503 on every request): such a gateway
      // asks the public validate instead (no signed identity), so only its stream is down.
      ...(token === INTERNAL_TOKEN ? {} : { JWT_ENABLED: 'false' }),
      // Long enough that only events (never expiry of an entry) can explain a refusal in time.
      VALIDATE_CACHE_TTL_MS: '10000',
      ...metrics.env,
    },
  });
  metricsUrls.set(gateway, metrics.url);
  return gateway;
}

/** A value from the gateway's Prometheus text (first sample whose line starts with `series`). */
async function metric(gateway: ServiceProcess, series: string): Promise<number> {
  const text = await (await fetch(metricsUrls.get(gateway) ?? '')).text();
  const line = text.split('\n').find((l) => l.startsWith(series));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN;
}

const cacheEnabled = (gateway: ServiceProcess) =>
  metric(gateway, 'gatehouse_gateway_validate_cache_enabled');
const cacheHits = (gateway: ServiceProcess) =>
  metric(gateway, 'gatehouse_gateway_validate_cache_lookups_total{outcome="hit"');

/** Logs in with JSON straight at a session-service; returns `gatehouse=<value>`. */
const login = (username: string, service: ServiceProcess = s1) =>
  jsonLogin(service.url, username, PASSWORD);

const sidOf = (cookie: string) => {
  const value = decodeURIComponent(cookie.slice('gatehouse='.length));
  return value.slice(2, value.lastIndexOf('.'));
};

const whoami = (gateway: ServiceProcess, cookie: string) =>
  fetch(`${gateway.url}/api/whoami`, { headers: { cookie, accept: 'application/json' } });

/** Use the session on a gateway until it answers from its cache. */
async function warm(gateway: ServiceProcess, cookie: string) {
  const before = await cacheHits(gateway);
  for (let i = 0; i < 3; i++) expect((await whoami(gateway, cookie)).status).toBe(200);
  expect(await cacheHits(gateway)).toBeGreaterThan(before);
}

interface Refusal {
  /** performance.now() when the first refused answer arrived. */
  at: number;
  status: number;
  /** 200s seen before it (the cache was serving the session). */
  served: number;
}

/**
 * Request the page every POLL_MS until it is refused; then check a few more requests are refused
 * too (no answer in flight may put the session back into the cache).
 */
function pollUntilRefused(gateway: ServiceProcess, cookie: string, timeoutMs = 10_000) {
  let stop = false;
  const result = (async (): Promise<Refusal> => {
    const deadline = performance.now() + timeoutMs;
    let served = 0;
    while (!stop && performance.now() < deadline) {
      const next = performance.now() + POLL_MS;
      const res = await whoami(gateway, cookie);
      const at = performance.now();
      await res.arrayBuffer();
      if (res.status !== 200) {
        for (let i = 0; i < 10; i++) expect((await whoami(gateway, cookie)).status).toBe(401);
        return { at, status: res.status, served };
      }
      served += 1;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    throw new Error(`${gateway.name} still served the session after ${timeoutMs} ms`);
  })();
  return { result, cancel: () => (stop = true) };
}

/** Warm both gateways, poll them, end the session with `revoke`, and check the bound. */
async function expectRefusedEverywhere(cookie: string, revoke: () => Promise<void>) {
  await warm(gatewayA, cookie);
  await warm(gatewayB, cookie);
  const pollers = [gatewayA, gatewayB].map((g) => pollUntilRefused(g, cookie));
  try {
    await new Promise((r) => setTimeout(r, 50)); // both are serving from their caches
    await revoke();
    const returned = performance.now();
    const refusals = await Promise.all(pollers.map((p) => p.result));
    for (const [i, refusal] of refusals.entries()) {
      const gateway = i === 0 ? 'A' : 'B';
      expect(refusal.status, `gateway ${gateway}`).toBe(401);
      expect(refusal.served, `gateway ${gateway} served before`).toBeGreaterThan(0);
      expect(refusal.at - returned, `gateway ${gateway} refused after (ms)`).toBeLessThan(BOUND_MS);
    }
  } finally {
    for (const p of pollers) p.cancel();
  }
}

async function usersCli(...args: string[]): Promise<number | null> {
  const env = { USERS_FILE: usersFile, REDIS_URL: redis.url, REDIS_PREFIX: 'gh:' };
  return (await runUsersCli(args, { env })).code;
}

beforeAll(async () => {
  redis = await startRedis();
  usersFile = (
    await writeTestUsers(USERNAMES.map((username) => ({ username, password: PASSWORD })))
  ).path;
  s1 = await startSessionService('session-service 1');
  s2 = await startSessionService('session-service 2');
  started.push(s1, s2);
  demo = await startService({
    name: 'demo-app',
    ...SERVICES.demoApp,
    env: { JWKS_URL: `${s1.url}/auth/.well-known/jwks.json` },
  });
  started.push(demo);
  [gatewayA, gatewayB, gatewayC] = await Promise.all([
    startGateway('gateway A', s1),
    startGateway('gateway B', s2),
    startGateway('gateway C (wrong internal token)', s1, 'x'.repeat(40)),
  ]);
  started.push(gatewayA, gatewayB, gatewayC);
  await waitFor(
    async () => (await cacheEnabled(gatewayA)) === 1 && (await cacheEnabled(gatewayB)) === 1,
    10_000,
    'the revocation streams of gateways A and B',
  );
}, 120_000);

afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
  await redis?.stop();
});

describe('when the revocation streams are connected', () => {
  it('serves a session from the cache: many requests, one validate per gateway', async () => {
    const cookie = await login('alice');
    const validated = async () => {
      const text = await (await fetch(`${s1.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('gatehouse_validate_total{'));
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
    };
    const before = await validated();
    for (let i = 0; i < 20; i++) expect((await whoami(gatewayA, cookie)).status).toBe(200);
    expect(await validated()).toBeLessThanOrEqual(before + 2);
    const seen = (await (await whoami(gatewayA, cookie)).json()) as {
      user: { username: string };
      signed: boolean;
    };
    expect(seen.user.username).toBe('alice');
    expect(seen.signed).toBe(true);
  });

  it('never caches a refusal: a request without a valid session is validated every time', async () => {
    const forged = 'gatehouse=s%3Anot-a-session.bad-signature';
    for (let i = 0; i < 3; i++) expect((await whoami(gatewayA, forged)).status).toBe(401);
    const cookie = await login('alice');
    expect((await whoami(gatewayA, cookie)).status).toBe(200);
  });

  it('refuses a session ended by logout (through gateway A) on both gateways within 100 ms', async () => {
    const cookie = await login('bob');
    await expectRefusedEverywhere(cookie, async () => {
      const res = await fetch(`${gatewayA.url}/auth/logout`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/json', 'sec-fetch-site': 'same-origin' },
        body: '{}',
      });
      expect(res.status).toBe(204);
    });
  });

  it('refuses a session revoked by id (DELETE /auth/sessions/:id) within 100 ms', async () => {
    const victim = await login('carol');
    const other = await login('carol');
    const list = (await (
      await fetch(`${gatewayB.url}/auth/sessions`, {
        headers: { cookie: other, accept: 'application/json' },
      })
    ).json()) as { sessions: Array<{ id: string; current: boolean }> };
    const handle = list.sessions.find((s) => !s.current)?.id;
    expect(handle).toBeTruthy();
    await expectRefusedEverywhere(victim, async () => {
      const res = await fetch(`${gatewayB.url}/auth/sessions/${handle}`, {
        method: 'DELETE',
        headers: { cookie: other, accept: 'application/json', 'sec-fetch-site': 'same-origin' },
      });
      expect(res.status).toBe(204);
    });
    expect((await whoami(gatewayA, other)).status).toBe(200);
  });

  it('refuses every session of a user the admin API revoked within 100 ms', async () => {
    const cookie = await login('dave', s2);
    await expectRefusedEverywhere(cookie, async () => {
      const res = await fetch(`${s2.url}/admin/users/dave/sessions`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(res.status).toBe(200);
    });
  });

  it('refuses the sessions of a user disabled with the users CLI within 100 ms of its exit', async () => {
    const cookie = await login('erin');
    await expectRefusedEverywhere(cookie, async () => {
      expect(await usersCli('disable', 'erin')).toBe(0);
    });
  });

  it('refuses an expired session on both gateways within 100 ms of its expiry', async () => {
    const cookie = await login('frank');
    // Make the session an old one: its absolute lifetime ends 2.5 s from now.
    const key = sessionKeyOf(sidOf(cookie));
    const record = JSON.parse((await storedRecordAt(redis.client, key)) ?? '{}') as {
      auth: { createdAt: number };
    };
    record.auth.createdAt = Date.now() - 43_200_000 + 2500;
    await redis.client.set(key, sealedRecordAt(key, record), { KEEPTTL: true });
    const seen = (await (await whoami(gatewayA, cookie)).json()) as {
      user: { expiresAt: string };
    };
    const expiresAt = Date.parse(seen.user.expiresAt);
    expect(expiresAt).toBe(record.auth.createdAt + 43_200_000);
    await warm(gatewayB, cookie);
    const pollers = [gatewayA, gatewayB].map((g) => pollUntilRefused(g, cookie));
    // performance.now() and Date.now() on the same clock: the expiry in performance time.
    const expiresAtPerf = performance.now() + (expiresAt - Date.now());
    const refusals = await Promise.all(pollers.map((p) => p.result));
    for (const refusal of refusals) {
      expect(refusal.status).toBe(401);
      expect(refusal.at - expiresAtPerf).toBeLessThan(BOUND_MS);
    }
  });
});

describe('when the revocation stream is down', () => {
  it('keeps the cache off: a session deleted directly in Redis is refused on the next request', async () => {
    expect(await cacheEnabled(gatewayC)).toBe(0);
    const cookie = await login('grace');
    // (a page of the demo-app that needs no signed identity: gateway C passes none)
    const page = () =>
      fetch(`${gatewayC.url}/healthz`, { headers: { cookie, accept: 'application/json' } });
    for (let i = 0; i < 5; i++) expect((await page()).status).toBe(200);
    expect(await cacheHits(gatewayC)).toBe(0);
    await redis.client.del(sessionKeyOf(sidOf(cookie))); // no event: nobody is told
    expect((await page()).status).toBe(401);
  });

  it('forgets what it cached before a gap: a session-service restart flushes the cache', async () => {
    const cookie = await login('heidi');
    await warm(gatewayB, cookie);
    const port = s2.port;
    await s2.stop();
    // The stream is gone: the cache is off at once, and the gateway fails closed.
    await waitFor(async () => (await cacheEnabled(gatewayB)) === 0, 2000, 'cache off');
    expect((await whoami(gatewayB, cookie)).status).toBe(503);
    // Ended while nobody relays events: only the flush on reconnection protects the gateway.
    await redis.client.del(sessionKeyOf(sidOf(cookie)));
    s2 = await startSessionService('session-service 2 (restarted)', port);
    started.push(s2);
    const other = await login('alice', s2);
    let status = 0;
    await waitFor(
      async () => {
        status = (await whoami(gatewayB, cookie)).status;
        return status !== 503 && (await cacheEnabled(gatewayB)) === 1;
      },
      15_000,
      'gateway B reconnected',
    );
    expect(status).toBe(401);
    expect((await whoami(gatewayB, cookie)).status).toBe(401);
    await warm(gatewayB, other);
  });
});
