/**
 * Over 300 lines on purpose: the faults run in order on one system, each leaving it recovered for the next.
 *
 * Redis faults against the real system: the session-service, gateway and demo-app as processes,
 * one real redis-server (AOF on, as docker-compose and `npm start` run it) that the tests start
 * late, kill, freeze (SIGSTOP: no RST, the connection just stops answering), restart empty or with
 * its data. Each fault is checked through the gateway under load (12 concurrent clients) and
 * directly on the session-service: requests fail closed with 503 within 2 s and never hang,
 * nothing crashes, memory stays flat, and everything recovers by itself once Redis is back.
 * Measured detection and recovery times are printed as `[figure]` lines (docs/operations.md).
 *
 * Over 300 lines: the faults run in order against one system and one load harness (each test
 * leaves Redis up for the next); splitting would start the system once per fault.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../gateway/src/config.js';
import { reservedDeadPort, waitFor } from '../helpers/ports.js';
import { type System, startSystem } from '../helpers/processes.js';
import { killAndWait, type RedisServer, startRedis } from '../helpers/redis.js';
import {
  figure,
  JSON_HEADERS,
  jsonLogin,
  type Load,
  memoryFigures,
  type Sample,
  startLoad,
  statusCounts,
  timeUntil,
  touchesSessionCookie,
  writeSharedUsers,
} from '../helpers/reliability.js';
import { signedSessionCookie } from '../helpers/session-service.js';
import { storedAuthAt } from '../helpers/stored-sessions.js';

const PASSWORD = 'correct horse battery staple';
const NAMES = Array.from({ length: 12 }, (_, i) => `user${i}`);
/** Verifying this user's password takes about half a second: time to break Redis meanwhile. */
const SLOW = 'slowpoke';
const gatewayDefaults = loadGatewayConfig({}) as Record<string, unknown>;
/**
 * The gateway may reuse a positive validate answer this long (its validation cache, on while the
 * session-service's revocation stream is up). Read from the gateway's own defaults.
 */
const CACHE_TTL_MS = Number(gatewayDefaults.VALIDATE_CACHE_TTL_MS ?? 0);
/**
 * So answers sent this long after a fault may still be 200 from that cache: an entry lives
 * CACHE_TTL_MS from when its answer reached the gateway, and an answer Redis gave just before the
 * fault may take up to the validate deadline to get there on a busy machine.
 */
const CACHE_ALLOWANCE_MS =
  CACHE_TTL_MS > 0 ? CACHE_TTL_MS + Number(gatewayDefaults.VALIDATE_TIMEOUT_MS ?? 1500) : 0;
/** How long each fault is held while the load runs. */
const FAULT_MS = 7000;

let system: System;
let redis: RedisServer | undefined;
let redisPort: number;
let cookies: Array<{ name: string; cookie: string }> = [];
/** username → user id (the session records keep the id only). */
const userIds = new Map<string, string>();

const gateway = () => system.gateway.url;
const service = () => system.sessionService.url;
const forgedCookie = () => `gatehouse=${signedSessionCookie('no-such-session-in-redis-0123')}`;

function theRedis(): RedisServer {
  if (!redis) throw new Error('redis is not started');
  return redis;
}

beforeAll(async () => {
  const users = await writeSharedUsers(NAMES, PASSWORD, { slow: [SLOW], slowTimeCost: 100 });
  for (const user of users.users) userIds.set(user.username, user.id ?? '');
  redisPort = await reservedDeadPort();
  // Redis is not there yet: the first test starts it.
  system = await startSystem({
    redisUrl: `redis://127.0.0.1:${redisPort}`,
    usersFile: users.path,
    sessionEnv: {
      LOGIN_THROTTLE_ADDRESS_ATTEMPTS: '100000',
      LOGIN_THROTTLE_ADDRESS_FAILURES: '100000',
    },
  });
});

afterAll(async () => {
  await system?.stop();
  await redis?.stop();
});

/** The load of the running test, stopped after it whatever happened. */
let running: Load | undefined;

// A failed test must not leave Redis frozen or dead, or a load running, for the next one.
afterEach(async () => {
  await running?.stop();
  running = undefined;
  if (!redis) return;
  redis.resume();
  if (redis.process.exitCode !== null || redis.process.signalCode !== null) await redis.restart();
  await untilReady();
});

async function timed(url: string, init: RequestInit = {}, timeoutMs = 5000) {
  const started = Date.now();
  const res = await fetch(url, {
    redirect: 'manual',
    ...init,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = await res.text();
  return { status: res.status, ms: Date.now() - started, body, res };
}

function expectAllAlive() {
  for (const service of [system.sessionService, system.gateway, system.demoApp]) {
    expect(service.process.exitCode, `${service.name} exited: ${service.output()}`).toBeNull();
    expect(service.process.signalCode, service.name).toBeNull();
  }
}

const memory = async () => ({
  session: await memoryFigures(system.sessionService.process.pid, `${service()}/metrics`),
  gateway: await memoryFigures(system.gateway.process.pid, system.gatewayMetricsUrl),
});

/**
 * One login after another: these tests are about Redis faults, not a burst of logins (twelve at
 * once queue behind two hashing threads, and on a machine busy with other suites the last ones
 * outlived the gateway's deadline for /auth: a clean-clone run failed so once).
 */
async function loginEveryone() {
  cookies = [];
  for (const name of NAMES)
    cookies.push({ name, cookie: await jsonLogin(gateway(), name, PASSWORD) });
}

async function loadRunning(): Promise<Load> {
  const load = startLoad({ url: gateway(), users: cookies, concurrency: 12 });
  running = load;
  await waitFor(
    () => load.samples.filter((s) => s.status === 200).length >= 50,
    10_000,
    'the load to run',
  );
  return load;
}

/**
 * Everything the load saw around a fault held from `faultAt` to `endAt`: fail closed (503,
 * answered within 2 s, once the gateway's cache allowance is over), nothing else than 200 or
 * 503 ever (no hang, no 500/502/504), and the detection figure.
 */
function checkFailClosed(load: Load, name: string, faultAt: number, endAt: number) {
  const all = load.samples;
  expect(statusCounts(all.filter((s) => s.status !== 200 && s.status !== 503))).toEqual({});
  // (up to `endAt` less half a second: on a busy machine a request timed just before Redis came
  // back may leave the client after it, and rightly get 200)
  const during = load.between(faultAt + CACHE_ALLOWANCE_MS, endAt - 500);
  expect(during.length).toBeGreaterThan(20);
  const late = during
    .filter((s) => s.status !== 503)
    .map(
      (s) =>
        `${s.status} sent +${s.start + load.t0 - faultAt} ms, answered +${s.end + load.t0 - faultAt} ms`,
    );
  expect(late, 'answers other than 503 once the cache allowance was over').toEqual([]);
  expect(statusCounts(during)).toEqual({ 503: during.length });
  const slowest = Math.max(...load.between(faultAt, endAt).map((s) => s.end - s.start));
  expect(slowest).toBeLessThan(2000);
  const after = load.between(faultAt, endAt);
  const first503 = Math.min(
    ...after.filter((s) => s.status === 503).map((s) => s.end + load.t0 - faultAt),
  );
  const last200 = Math.max(
    0,
    ...after.filter((s) => s.status === 200).map((s) => s.start + load.t0 - faultAt),
  );
  figure(`${name}: first 503 through the gateway after the fault`, first503);
  figure(`${name}: last 200 sent after the fault (gateway cache)`, last200);
  figure(`${name}: slowest answer during the fault`, slowest);
  return { first503, last200, slowest };
}

/** When the load first got 200 again for requests sent after `since`, in ms after it. */
function firstSuccessAfter(samples: Sample[], t0: number, since: number): number | null {
  const ok = samples.filter((s) => s.status === 200 && s.start + t0 >= since);
  return ok.length === 0 ? null : Math.min(...ok.map((s) => s.end + t0 - since));
}

async function evalCalls(): Promise<number> {
  const info = await theRedis().client.info('commandstats');
  return Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

/**
 * Session keys in Redis whose session belongs to `username`. The records are sealed: each is
 * opened with the test services' key (a raw search for the name would never find one).
 */
async function sessionsOf(username: string): Promise<string[]> {
  const client = theRedis().client;
  const found: string[] = [];
  const userId = userIds.get(username);
  for await (const keys of client.scanIterator({ MATCH: 'gh:sess:*', COUNT: 500 })) {
    for (const key of keys)
      if ((await storedAuthAt(client, key))?.userId === userId) found.push(key);
  }
  return found;
}

/** Poll until the session-service says ready (200 on /readyz). */
const untilReady = (what = 'the session-service to be ready again') =>
  waitFor(async () => (await timed(`${service()}/readyz`)).status === 200, 10_000, what);

/** Poll until the load has had every user served again (with their own session) since `upAt`. */
const untilEveryoneServed = (load: Load, upAt: number, what: string) =>
  waitFor(
    () =>
      NAMES.every((name) =>
        load.between(upAt).some((s) => s.user === name && s.status === 200 && s.seen === name),
      ),
    10_000,
    what,
  );

type Memory = Awaited<ReturnType<typeof memory>>;

/**
 * After a fault of kind `fault` ended at `upAt` (`event`): the load got 200 again within 5 s,
 * neither service's old generation and external memory grew by 32 MiB or more between `before`
 * and `during` (the fault), nor its resident memory by more than 64 MiB beyond its young
 * generation's capacity (memoryFigures in test/helpers/reliability.ts), and all are alive and
 * ready.
 */
async function expectRecovered(
  fault: string,
  event: string,
  load: Load,
  upAt: number,
  memoryAt: { before: Memory; during: Memory },
) {
  const { before, during } = memoryAt;
  const recovered = firstSuccessAfter(load.samples, load.t0, upAt);
  expect(recovered).not.toBeNull();
  figure(`${fault}: first 200 after ${event}`, recovered ?? 0);
  expect(recovered).toBeLessThan(5000);
  for (const name of ['session', 'gateway'] as const) {
    const label = name === 'session' ? 'session-service' : 'gateway';
    const rss = during[name].rssMiB - before[name].rssMiB;
    const kept = during[name].keptMiB - before[name].keptMiB;
    const young = Math.max(before[name].youngCapacityMiB, during[name].youngCapacityMiB);
    figure(`${fault}: ${label} RSS growth during the fault`, rss, 'MiB');
    figure(`${fault}: ${label} old generation + external growth during the fault`, kept, 'MiB');
    // What stays alive (a queue of commands, pending requests, buffers) ends up there.
    expect(kept, `${label}: old generation + external memory grew`).toBeLessThan(32);
    // Resident memory beyond the young generation's capacity is not garbage awaiting a scavenge.
    expect(
      rss,
      `${label}: RSS grew by more than ${young} MiB of young generation + 64`,
    ).toBeLessThan(young + 64);
  }
  expect((await timed(`${service()}/readyz`)).status).toBe(200);
  expectAllAlive();
}

describe('Redis down when the services start', () => {
  it('they start, say not ready, answer 503, and recover by themselves once Redis appears', async () => {
    expectAllAlive();
    expect((await timed(`${service()}/readyz`)).status).toBe(503);
    // A well-signed cookie: only Redis can say whether its session exists.
    const viaGateway = await timed(`${gateway()}/api/whoami`, {
      headers: { accept: 'application/json', cookie: forgedCookie() },
    });
    expect(viaGateway.status).toBe(503);
    expect(viaGateway.ms).toBeLessThan(2000);
    expect(JSON.parse(viaGateway.body).error).toBe('SESSION_SERVICE_UNAVAILABLE');
    const direct = await timed(`${service()}/auth/validate`, {
      headers: { cookie: forgedCookie() },
    });
    expect(direct.status).toBe(503);
    expect(direct.ms).toBeLessThan(1500);
    const login = await timed(`${gateway()}/auth/login`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ username: 'user0', password: PASSWORD }),
    });
    expect(login.status).toBe(503);
    expect(touchesSessionCookie(login.res)).toBe(false);

    redis = await startRedis({ port: redisPort, appendonly: true });
    const upAt = Date.now();
    const readyMs = await timeUntil(
      async () => (await timed(`${service()}/readyz`)).status === 200,
      10_000,
      'the session-service to be ready',
      upAt,
    );
    const answersMs = await timeUntil(
      async () =>
        (
          await timed(`${gateway()}/api/whoami`, {
            headers: { accept: 'application/json', cookie: forgedCookie() },
          })
        ).status === 401,
      10_000,
      'the gateway to answer 401 for an unknown session',
      upAt,
    );
    figure('down at start: session-service ready after Redis appeared', readyMs);
    figure('down at start: gateway answers again after Redis appeared', answersMs);
    expect(readyMs).toBeLessThan(5000);
    await loginEveryone();
    const res = await fetch(`${gateway()}/api/whoami`, {
      headers: { cookie: cookies[0]?.cookie ?? '' },
    });
    expect(res.status).toBe(200);
    expectAllAlive();
  });
});

describe('Redis killed under load', () => {
  it('fails closed within 2 s, never crashes or grows, and recovers with the sessions kept (AOF)', async () => {
    const load = await loadRunning();
    const before = await memory();
    const faultAt = Date.now();
    await killAndWait(theRedis().process);
    // Direct callers (nginx auth_request, scripts) get the same: 503, at once.
    await waitFor(() => Date.now() - faultAt > CACHE_ALLOWANCE_MS, 10_000, 'the cache allowance');
    const direct = await timed(`${service()}/auth/validate`, {
      headers: { cookie: cookies[0]?.cookie ?? '' },
    });
    expect(direct.status).toBe(503);
    expect(direct.ms).toBeLessThan(1500);
    expect((await timed(`${service()}/readyz`)).status).toBe(503);
    // Hold the fault (an observation window, not a wait for readiness).
    await new Promise((r) => setTimeout(r, FAULT_MS - (Date.now() - faultAt)));
    const during = await memory();
    expectAllAlive();

    await theRedis().restart();
    const upAt = Date.now();
    // Every user's session is back: the restarted Redis replayed its AOF.
    await untilEveryoneServed(load, upAt, 'every user to be served again with the same session');
    await load.stop();

    const { last200 } = checkFailClosed(load, 'killed', faultAt, upAt);
    expect(last200).toBeLessThanOrEqual(CACHE_ALLOWANCE_MS);
    await expectRecovered('killed', 'Redis restarted', load, upAt, { before, during });
  });
});

describe('Redis frozen (SIGSTOP: the connection stays open, nothing answers)', () => {
  it('fails closed within 2 s through the gateway and 1.5 s directly, stays bounded, recovers on SIGCONT', async () => {
    const load = await loadRunning();
    const before = await memory();
    const faultAt = Date.now();
    theRedis().pause();
    await waitFor(() => Date.now() - faultAt > CACHE_ALLOWANCE_MS, 10_000, 'the cache allowance');
    // node-redis alone would wait for these replies forever.
    const direct = await timed(`${service()}/auth/validate`, {
      headers: { cookie: cookies[1]?.cookie ?? '' },
    });
    expect(direct.status).toBe(503);
    expect(direct.ms).toBeLessThan(1500);
    const ready = await timed(`${service()}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.ms).toBeLessThan(1500);
    const login = await timed(`${gateway()}/auth/login`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ username: 'user3', password: PASSWORD }),
    });
    expect(login.status).toBe(503);
    expect(login.ms).toBeLessThan(2000);
    expect(touchesSessionCookie(login.res)).toBe(false);
    await new Promise((r) => setTimeout(r, FAULT_MS - (Date.now() - faultAt)));
    const during = await memory();
    expectAllAlive();

    theRedis().resume();
    const upAt = Date.now();
    await untilEveryoneServed(load, upAt, 'every user to be served again');
    await load.stop();

    checkFailClosed(load, 'frozen', faultAt, upAt);
    await expectRecovered('frozen', 'SIGCONT', load, upAt, { before, during });
  });
});

describe('a login when Redis fails between the password check and the save', () => {
  /** Start slowpoke's login; once its throttle check is done (4 scripts), break Redis. */
  async function loginWhileBreaking(breakRedis: () => Promise<void> | void) {
    const before = await evalCalls();
    // (a busy machine may take several seconds for the slow password check)
    const pending = timed(
      `${gateway()}/auth/login`,
      {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ username: SLOW, password: PASSWORD }),
      },
      20_000,
    );
    // The throttle's four scripts ran: the service is now verifying the password (about 1 s).
    await waitFor(async () => (await evalCalls()) >= before + 4, 5000, 'the throttle check');
    await breakRedis();
    return pending;
  }

  it('killed: 503 and no cookie for a session that was never saved', async () => {
    const login = await loginWhileBreaking(() => killAndWait(theRedis().process));
    expect(login.status).toBe(503);
    expect(JSON.parse(login.body).error).toBe('SESSION_STORE_UNAVAILABLE');
    expect(touchesSessionCookie(login.res)).toBe(false);
    await theRedis().restart();
    expect(await sessionsOf(SLOW)).toEqual([]);
    // The next attempt works.
    await untilReady('ready again');
    expect(await jsonLogin(gateway(), SLOW, PASSWORD)).toMatch(/^gatehouse=/);
  });

  it('frozen: 503 within the deadlines and no cookie; nothing is saved once Redis resumes', async () => {
    const before = await sessionsOf(SLOW);
    const login = await loginWhileBreaking(() => theRedis().pause());
    theRedis().resume();
    expect(login.status).toBe(503);
    expect(touchesSessionCookie(login.res)).toBe(false);
    await untilReady('ready again');
    expect(await sessionsOf(SLOW)).toEqual(before);
  });
});

describe('logout while Redis is down', () => {
  it('answers 503 and keeps the cookie: never a false "you are signed out"', async () => {
    const cookie = await jsonLogin(gateway(), 'user5', PASSWORD);
    await killAndWait(theRedis().process);
    const form = await timed(`${gateway()}/auth/logout`, {
      method: 'POST',
      headers: {
        accept: 'text/html',
        'content-type': 'application/x-www-form-urlencoded',
        'sec-fetch-site': 'same-origin',
        cookie,
      },
      body: '',
    });
    expect(form.status).toBe(503);
    expect(form.res.headers.get('location')).toBeNull();
    expect(touchesSessionCookie(form.res)).toBe(false);
    const json = await timed(`${gateway()}/auth/logout`, {
      method: 'POST',
      headers: { ...JSON_HEADERS, cookie },
      body: '{}',
    });
    // (502 here: the session-service reset the connection the gateway reuses: express-session,
    // whose load failed, re-raises its store error after the 503 went out, and Express's final
    // handler then destroys the socket. See session-middleware.ts.)
    expect(json.status, json.body).toBe(503);
    expect(touchesSessionCookie(json.res)).toBe(false);

    // Once Redis is back the session is still there, and logging out works.
    await theRedis().restart();
    await waitFor(
      async () => (await timed(`${gateway()}/api/whoami`, { headers: { cookie } })).status === 200,
      10_000,
      'the session to be served again',
    );
    const out = await timed(`${gateway()}/auth/logout`, {
      method: 'POST',
      headers: { ...JSON_HEADERS, cookie },
      body: '{}',
    });
    expect(out.status).toBe(204);
    expect(touchesSessionCookie(out.res)).toBe(true);
    expect((await timed(`${gateway()}/api/whoami`, { headers: { cookie } })).status).toBe(401);
  });
});

describe('Redis restarted empty (no persistence)', () => {
  it('old cookies get a clean 401 or a redirect to the login page, never a 5xx other than 503', async () => {
    const cookie = cookies[2]?.cookie ?? '';
    expect((await timed(`${gateway()}/api/whoami`, { headers: { cookie } })).status).toBe(200);
    await killAndWait(theRedis().process);
    rmSync(join(theRedis().dir, 'appendonlydir'), { recursive: true, force: true });
    await theRedis().restart();
    const upAt = Date.now();
    const seen: number[] = [];
    const cleanMs = await timeUntil(
      async () => {
        const res = await timed(`${gateway()}/api/whoami`, {
          headers: { accept: 'application/json', cookie },
        });
        seen.push(res.status);
        return res.status === 401;
      },
      10_000,
      'a clean 401',
      upAt,
    );
    figure('restarted empty: old cookie answered 401 after Redis came back', cleanMs);
    expect(seen.filter((s) => s !== 503 && s !== 401)).toEqual([]);
    const page = await timed(`${gateway()}/reports?q=1`, {
      headers: { accept: 'text/html', cookie },
    });
    expect(page.status).toBe(302);
    expect(page.res.headers.get('location')).toBe('/auth/login?rd=%2Freports%3Fq%3D1');
    const direct = await timed(`${service()}/auth/validate`, { headers: { cookie } });
    expect(direct.status).toBe(401);
    expect(await jsonLogin(gateway(), 'user2', PASSWORD)).toMatch(/^gatehouse=/);
    expectAllAlive();
  });
});
