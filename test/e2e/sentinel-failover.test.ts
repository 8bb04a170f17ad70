/**
 * Sentinel failover under load, with real processes: a primary, a replica and three sentinels
 * (test/helpers/redis-topologies.ts, down-after-milliseconds 1000), the session-service on
 * REDIS_SENTINELS, a gateway and the demo-app. The primary is killed while users browse: they stay
 * logged in once the replica is promoted, logins and logouts work on the new primary, and the
 * stretch of 503s in between is short. The figures go to docs/operations.md.
 */
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDoctor } from '../helpers/doctor.js';
import { waitFor } from '../helpers/ports.js';
import { SERVICES, type ServiceProcess, startService } from '../helpers/processes.js';
import { type RedisSentinelSetup, startRedisSentinel } from '../helpers/redis-topologies.js';
import {
  figure,
  JSON_HEADERS,
  jsonLogin,
  startLoad,
  statusCounts,
  writeSharedUsers,
} from '../helpers/reliability.js';

const PASSWORD = 'correct horse battery staple';
const SECRET = 'test-secret-test-secret-test-secret-0123';
const NAMES = Array.from({ length: 10 }, (_, i) => `user${i}`);

let sentinel: RedisSentinelSetup;
let sessionService: ServiceProcess;
let gateway: ServiceProcess;
let demoApp: ServiceProcess;

beforeAll(async () => {
  sentinel = await startRedisSentinel();
  const users = await writeSharedUsers([...NAMES, 'late', 'leaver'], PASSWORD);
  sessionService = await startService({
    name: 'session-service',
    ...SERVICES.sessionService,
    env: {
      REDIS_SENTINELS: sentinel.sentinelList,
      REDIS_SENTINEL_NAME: sentinel.name,
      USERS_FILE: users.path,
      SESSION_SECRET: SECRET,
      LOGIN_THROTTLE_ADDRESS_ATTEMPTS: '100000',
    },
  });
  await waitFor(
    async () => (await fetch(`${sessionService.url}/readyz`)).status === 200,
    15_000,
    'the session-service to reach the master through the sentinels',
  );
  demoApp = await startService({
    name: 'demo-app',
    entry: 'demo-app/src/main.ts',
    portVariable: 'DEMO_APP_PORT',
    healthPath: '/healthz',
    env: { JWKS_URL: `${sessionService.url}/auth/.well-known/jwks.json` },
  });
  gateway = await startService({
    name: 'gateway',
    entry: 'gateway/src/main.ts',
    portVariable: 'GATEWAY_PORT',
    healthPath: '/_gatehouse/healthz',
    env: { SESSION_SERVICE_URL: sessionService.url, UPSTREAM_URL: demoApp.url },
  });
}, 60_000);

afterAll(async () => {
  await Promise.all([gateway?.stop(), demoApp?.stop()]);
  await sessionService?.stop();
  await sentinel?.stop();
});

describe('npm run doctor', () => {
  it('finds Redis through the sentinels, and says when they do not know the master', async () => {
    const doctor = (name: string) =>
      runDoctor({ REDIS_SENTINELS: sentinel.sentinelList, REDIS_SENTINEL_NAME: name });
    const ok = await doctor(sentinel.name);
    expect(ok.stdout).toContain(
      `[ ok ] Redis answers through REDIS_SENTINELS (master "${sentinel.name}")`,
    );
    expect(ok.status).toBe(0);
    const wrong = await doctor('nosuchmaster');
    expect(wrong.stdout).toContain('[FAIL] Redis does not answer through REDIS_SENTINELS');
    expect(wrong.stdout).not.toMatch(/\n\s+at /); // no stack traces from node-redis
    expect(wrong.status).toBe(1);
  }, 30_000);
});

describe('Sentinel failover under load', () => {
  it('users stay logged in across the promotion, writes work on the new primary, 503s are brief', async () => {
    const cookies = await Promise.all(
      NAMES.map(async (name) => ({ name, cookie: await jsonLogin(gateway.url, name, PASSWORD) })),
    );
    const leaver = await jsonLogin(gateway.url, 'leaver', PASSWORD);
    // Asynchronous replication: make sure the replica has the sessions before the primary dies
    // (docs/operations.md says what is lost otherwise).
    const primary = createClient({ url: sentinel.primary.url });
    await primary.connect();
    expect(await primary.wait(1, 2000)).toBe(1);
    primary.destroy();

    const load = startLoad({ url: gateway.url, users: cookies, concurrency: 12 });
    await waitFor(
      () => load.samples.filter((s) => s.status === 200).length >= 50,
      10_000,
      'the load to run',
    );
    const faultAt = Date.now();
    await sentinel.stopPrimary();
    const promoted = await sentinel.waitForFailover(20_000);
    const promotedAt = Date.now();
    expect(promoted.port).toBe(sentinel.replica.port);
    // Everyone is served again, as themselves, with the sessions made on the old primary.
    await waitFor(
      () =>
        NAMES.every((name) =>
          load
            .between(promotedAt)
            .some((s) => s.user === name && s.status === 200 && s.seen === name),
        ),
      20_000,
      'every user to be served again after the promotion',
    );
    const recoveredAt = Date.now();
    // Writes on the new primary: a login and a logout.
    const late = await jsonLogin(gateway.url, 'late', PASSWORD);
    expect((await fetch(`${gateway.url}/api/whoami`, { headers: { cookie: late } })).status).toBe(
      200,
    );
    const out = await fetch(`${gateway.url}/auth/logout`, {
      method: 'POST',
      headers: { ...JSON_HEADERS, cookie: leaver },
      body: '{}',
    });
    expect(out.status).toBe(204);
    expect((await fetch(`${gateway.url}/api/whoami`, { headers: { cookie: leaver } })).status).toBe(
      401,
    );
    await load.stop();

    const samples = load.between(faultAt - 1000);
    // Failing closed and fast, never anything else: no hang, no 500, no 502.
    expect(statusCounts(samples.filter((s) => s.status !== 200 && s.status !== 503))).toEqual({});
    const slowest = Math.max(...load.between(faultAt).map((s) => s.end - s.start));
    expect(slowest).toBeLessThan(2000);
    expect(samples.every((s) => s.status !== 200 || s.seen === s.user)).toBe(true);
    const failed = samples.filter((s) => s.status === 503);
    const firstFailure = Math.min(...failed.map((s) => s.end + load.t0));
    const lastFailure = Math.max(...failed.map((s) => s.end + load.t0));
    const window = failed.length > 0 ? lastFailure - firstFailure : 0;
    figure('sentinel failover: primary killed → replica promoted', promotedAt - faultAt);
    figure('sentinel failover: promoted → every user served again', recoveredAt - promotedAt);
    figure('sentinel failover: seconds of 503s seen by users', window / 1000, 's');
    figure('sentinel failover: slowest answer', slowest);
    process.stdout.write(
      `[figure] sentinel failover: answers around the failover: ${JSON.stringify(statusCounts(samples))}\n`,
    );
    expect(window).toBeLessThan(15_000);
    expect(sessionService.output()).toContain('redis master changed (failover)');
    expect(sessionService.process.exitCode).toBeNull();
  }, 90_000);
});
