/**
 * Observability of the three services as real processes on a real Redis: the Prometheus series
 * docs/operations.md builds alerts on exist on each /metrics, follow Prometheus naming
 * conventions and move when what they count happens; and one request id follows a request from
 * the gateway to the session-service and the upstream, on every log line about it.
 *
 * Over 300 lines (barely): one system of processes serves every part.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/ports.js';
import { type System, startSystem, untilReady } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { JSON_HEADERS, jsonLogin, metricValue, writeSharedUsers } from '../helpers/reliability.js';

const PASSWORD = 'correct horse battery staple';

let redis: RedisServer;
let system: System;
const cookies: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeSharedUsers(['alice', 'bob', 'carol', 'mallory'], PASSWORD);
  system = await startSystem({
    redisUrl: redis.url,
    usersFile: users.path,
    // debug: successful requests get their log line too
    env: { LOG_LEVEL: 'debug' },
    sessionEnv: { LOGIN_THROTTLE_PAIR_FAILURES: '2' },
  });
  // Three sessions before the first scrape: the active-sessions gauge counts them then.
  for (const name of ['alice', 'bob', 'carol'])
    cookies.push(await jsonLogin(system.gateway.url, name, PASSWORD));
});

afterAll(async () => {
  await system?.stop();
  await redis?.stop();
});

const scrape = async (url: string) => {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return res.text();
};
const sessionMetrics = () => scrape(`${system.sessionService.url}/metrics`);
const gatewayMetrics = () => scrape(system.gatewayMetricsUrl);
const demoMetrics = () => scrape(`${system.demoApp.url}/metrics`);

/** name → type, from the `# TYPE` lines. */
function typesOf(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm))
    types.set(match[1] ?? '', match[2] ?? '');
  return types;
}

const login = (username: string, password: string) =>
  fetch(`${system.gateway.url}/auth/login`, {
    method: 'POST',
    headers: JSON_HEADERS,
    body: JSON.stringify({ username, password }),
  });

describe('active sessions', () => {
  it('counts the live sessions in Redis at the first scrape (then at most every 30 s)', async () => {
    let inRedis = 0;
    for await (const keys of redis.client.scanIterator({ MATCH: 'gh:sess:*', COUNT: 100 }))
      inRedis += keys.length;
    expect(inRedis).toBe(3);
    expect(metricValue(await sessionMetrics(), 'gatehouse_sessions_active')).toBe(3);
    expect(metricValue(await sessionMetrics(), 'gatehouse_redis_up')).toBe(1);
  });
});

describe('names', () => {
  it('every service exposes its series under gatehouse_, in Prometheus conventions', async () => {
    for (const text of [await sessionMetrics(), await gatewayMetrics(), await demoMetrics()]) {
      const types = typesOf(text);
      expect(types.size).toBeGreaterThan(10);
      for (const [name, type] of types) {
        expect(name).toMatch(/^gatehouse_[a-z0-9_]+$/); // snake_case, one namespace
        if (type === 'counter') expect(name).toMatch(/_total$/);
        // (prom-client's own default gauges nodejs_active_*_total predate the convention)
        else if (!name.startsWith('gatehouse_nodejs_')) expect(name).not.toMatch(/_total$/);
        expect(name).not.toMatch(/_(ms|milliseconds|millis|kb|mb)$|_(ms|milliseconds)_/); // base units
        if (type === 'histogram' && /duration|latency|time/.test(name))
          expect(name).toMatch(/_seconds$/);
      }
      expect(types.get('gatehouse_http_request_duration_seconds')).toBe('histogram');
      expect(text).toMatch(/service="[a-z-]+"/);
    }
  });

  it('the session-service has validate, login, Redis and active-session series', async () => {
    const types = typesOf(await sessionMetrics());
    expect(Object.fromEntries(types)).toMatchObject({
      gatehouse_validate_total: 'counter',
      gatehouse_login_attempts_total: 'counter',
      gatehouse_redis_command_duration_seconds: 'histogram',
      gatehouse_redis_errors_total: 'counter',
      gatehouse_redis_up: 'gauge',
      gatehouse_sessions_active: 'gauge',
      gatehouse_sessions_active_age_seconds: 'gauge',
      gatehouse_process_resident_memory_bytes: 'gauge',
    });
  });

  it('the gateway has auth decisions and upstream errors', async () => {
    const types = typesOf(await gatewayMetrics());
    expect(types.get('gatehouse_gateway_auth_total')).toBe('counter');
    expect(types.get('gatehouse_upstream_errors_total')).toBe('counter');
  });
});

describe('request id', () => {
  /** The JSON log lines of a service that carry `id`, and all its lines. */
  const linesOf = (output: string) =>
    output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const withId = (output: string, id: string) =>
    linesOf(output).filter((line) => line.requestId === id);

  it('one id from the gateway to the session-service and the upstream, on every line about it', async () => {
    // Sent by a trusted peer (loopback, as nginx would): the gateway keeps it.
    const loginId = `login-${Date.now()}`;
    const res = await fetch(`${system.gateway.url}/auth/login`, {
      method: 'POST',
      headers: { ...JSON_HEADERS, 'x-request-id': loginId },
      body: JSON.stringify({ username: 'bob', password: PASSWORD }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe(loginId);
    const cookie = res.headers.getSetCookie()[0]?.split(';')[0] ?? '';

    const pageId = `page-${Date.now()}`;
    const page = await fetch(`${system.gateway.url}/api/whoami`, {
      headers: { cookie, 'x-request-id': pageId },
    });
    expect(page.status).toBe(200);
    expect(((await page.json()) as { requestId: string }).requestId).toBe(pageId);

    await waitFor(
      () =>
        [system.gateway, system.sessionService, system.demoApp].every(
          (service) => withId(service.output(), pageId).length > 0,
        ) &&
        withId(system.gateway.output(), loginId).length > 0 &&
        withId(system.sessionService.output(), loginId).length >= 2,
      5000,
      'the log lines',
    );
    // The login: the gateway's line, the session-service's request line and its audit event.
    expect(withId(system.gateway.output(), loginId).length).toBeGreaterThanOrEqual(1);
    const sessionLogin = withId(system.sessionService.output(), loginId);
    expect(sessionLogin.map((l) => l.event ?? l.msg)).toEqual(
      expect.arrayContaining(['login.success']),
    );
    expect(
      sessionLogin.some((l) => (l.req as { url?: string } | undefined)?.url === '/auth/login'),
    ).toBe(true);
    // The page: gateway, the session-service's validate (the internal one: the gateway asks for
    // the signed identity), the upstream.
    for (const service of [system.gateway, system.sessionService, system.demoApp])
      expect(withId(service.output(), pageId).length, service.name).toBeGreaterThanOrEqual(1);
    expect(
      withId(system.sessionService.output(), pageId).some(
        (l) => (l.req as { url?: string } | undefined)?.url === '/internal/validate',
      ),
    ).toBe(true);

    // A failing request logs more lines (warnings, the failure): every one carries the id.
    const failId = `fail-${Date.now()}`;
    const linesBefore = {
      gateway: linesOf(system.gateway.output()).length,
      session: linesOf(system.sessionService.output()).length,
    };
    redis.pause();
    try {
      const failed = await fetch(`${system.gateway.url}/api/whoami`, {
        headers: { cookie: cookies[1] ?? '', 'x-request-id': failId },
      });
      // (the gateway may still answer from its validation cache)
      expect([200, 503]).toContain(failed.status);
      const direct = await fetch(`${system.sessionService.url}/auth/validate`, {
        headers: { cookie: cookies[1] ?? '', 'x-request-id': failId },
      });
      expect(direct.status).toBe(503);
    } finally {
      redis.resume();
    }
    await waitFor(
      () => withId(system.sessionService.output(), failId).length >= 2,
      5000,
      'the failure lines',
    );
    const requestLines = (output: string, from: number) =>
      linesOf(output)
        .slice(from)
        .filter(
          // request lines, and the warnings a failed validate logs on each side; not the
          // gateway's revocation feed, a long-lived stream of its own that may end (and log its
          // line) while Redis is paused
          (l) =>
            (l.req !== undefined &&
              (l.req as { url?: string } | null)?.url !== '/internal/revocations') ||
            l.msg === 'session service unavailable: failing closed' ||
            l.msg === 'validate: session store unavailable',
        );
    for (const line of requestLines(system.sessionService.output(), linesBefore.session))
      expect(line.requestId, JSON.stringify(line)).toBe(failId);
    for (const line of requestLines(system.gateway.output(), linesBefore.gateway))
      expect(line.requestId, JSON.stringify(line)).toBe(failId);
    // The next tests log in: not before the session-service reaches Redis again (after the
    // checks above: this probe's own log line carries no request id).
    await untilReady(system.sessionService.url);
  });
});

describe('values', () => {
  it('login outcomes: success, failure and throttled each count', async () => {
    const count = async (outcome: string) =>
      metricValue(await sessionMetrics(), 'gatehouse_login_attempts_total', { outcome });
    const checks = async () =>
      metricValue(await sessionMetrics(), 'gatehouse_password_checks_total', {});
    const before = {
      success: await count('success'),
      failure: await count('failure'),
      throttled: await count('throttled'),
      checks: await checks(),
    };
    expect((await login('mallory', 'wrong password 1')).status).toBe(401);
    expect((await login('mallory', 'wrong password 2')).status).toBe(401);
    expect(await checks()).toBe(before.checks + 2);
    // LOGIN_THROTTLE_PAIR_FAILURES=2: the third attempt is refused before any password check.
    expect((await login('mallory', PASSWORD)).status).toBe(429);
    expect(await checks()).toBe(before.checks + 2);
    await jsonLogin(system.gateway.url, 'alice', PASSWORD);
    expect(await checks()).toBe(before.checks + 3);
    expect(await count('failure')).toBe(before.failure + 2);
    expect(await count('throttled')).toBe(before.throttled + 1);
    expect(await count('success')).toBe(before.success + 1);
  });

  it('validate outcomes, HTTP requests by route and status, and Redis commands move', async () => {
    const text = await sessionMetrics();
    const validate = (t: string, outcome: string) =>
      metricValue(t, 'gatehouse_validate_total', { outcome });
    const requests = (t: string, status: string) =>
      metricValue(t, 'gatehouse_http_request_duration_seconds_count', {
        route: '/auth/validate',
        status,
      });
    const gets = (t: string) =>
      metricValue(t, 'gatehouse_redis_command_duration_seconds_count', {
        command: 'get',
        outcome: 'ok',
      });
    const direct = (cookie?: string) =>
      fetch(`${system.sessionService.url}/auth/validate`, {
        headers: cookie ? { cookie } : {},
      });
    expect((await direct(cookies[0])).status).toBe(200);
    expect((await direct(cookies[1])).status).toBe(200);
    expect((await direct()).status).toBe(401);
    const after = await sessionMetrics();
    expect(validate(after, 'ok')).toBe(validate(text, 'ok') + 2);
    expect(validate(after, 'unauthenticated')).toBe(validate(text, 'unauthenticated') + 1);
    expect(requests(after, '200')).toBe(requests(text, '200') + 2);
    expect(requests(after, '401')).toBe(requests(text, '401') + 1);
    expect(gets(after)).toBeGreaterThanOrEqual(gets(text) + 2);
  });

  it('gateway decisions count by outcome', async () => {
    const count = async (outcome: string) =>
      metricValue(await gatewayMetrics(), 'gatehouse_gateway_auth_total', { outcome });
    const before = { ok: await count('ok'), unauthenticated: await count('unauthenticated') };
    expect(
      (await fetch(`${system.gateway.url}/api/whoami`, { headers: { cookie: cookies[2] ?? '' } }))
        .status,
    ).toBe(200);
    expect((await fetch(`${system.gateway.url}/api/whoami`)).status).toBe(401);
    expect(await count('ok')).toBeGreaterThanOrEqual(before.ok + 1);
    expect(await count('unauthenticated')).toBe(before.unauthenticated + 1);
  });

  it('a frozen Redis shows as unavailable validates, Redis errors and redis_up 0', async () => {
    const before = await sessionMetrics();
    redis.pause();
    try {
      const res = await fetch(`${system.sessionService.url}/auth/validate`, {
        headers: { cookie: cookies[0] ?? '' },
      });
      expect(res.status).toBe(503);
      const during = await sessionMetrics();
      expect(metricValue(during, 'gatehouse_validate_total', { outcome: 'unavailable' })).toBe(
        metricValue(before, 'gatehouse_validate_total', { outcome: 'unavailable' }) + 1,
      );
      expect(
        metricValue(during, 'gatehouse_redis_errors_total', { kind: 'timeout' }),
      ).toBeGreaterThan(metricValue(before, 'gatehouse_redis_errors_total', { kind: 'timeout' }));
      expect(
        metricValue(during, 'gatehouse_redis_command_duration_seconds_count', {
          command: 'get',
          outcome: 'timeout',
        }),
      ).toBeGreaterThanOrEqual(1);
      await waitFor(
        async () => metricValue(await sessionMetrics(), 'gatehouse_redis_up') === 0,
        3000,
        'redis_up to say 0',
      );
    } finally {
      redis.resume();
    }
    await waitFor(
      async () => metricValue(await sessionMetrics(), 'gatehouse_redis_up') === 1,
      5000,
      'redis_up to say 1 again',
    );
  });

  it('upstream errors count on the gateway', async () => {
    const before = metricValue(await gatewayMetrics(), 'gatehouse_upstream_errors_total');
    await system.demoApp.stop();
    const res = await fetch(`${system.gateway.url}/api/whoami`, {
      headers: { cookie: cookies[2] ?? '' },
    });
    expect(res.status).toBe(502);
    expect(metricValue(await gatewayMetrics(), 'gatehouse_upstream_errors_total')).toBe(before + 1);
  });
});
