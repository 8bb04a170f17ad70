/**
 * Process lifecycle of the three services as real processes: SIGTERM with requests in flight
 * (they finish, new connections are refused, Redis is closed, exit code 0), bad configuration
 * (exit 1 at once, every problem listed), and Redis absent at start (the service stays up and
 * retries with backoff: no crash loop, no connection storm).
 *
 * Over 300 lines: each part starts its own processes and watches them end; they share the Redis,
 * the users file and the helpers for slow servers, refused ports and exits.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../helpers/ports.js';
import { ROOT, SERVICES, type ServiceProcess, startService } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { figure, JSON_HEADERS, jsonLogin, writeSharedUsers } from '../helpers/reliability.js';
import { storedAuthOf } from '../helpers/stored-sessions.js';

const PASSWORD = 'correct horse battery staple';
const SECRET = 'test-secret-test-secret-test-secret-0123';
const SLOW = 'slowpoke';

let redis: RedisServer;
let usersFile: string;

beforeAll(async () => {
  redis = await startRedis();
  usersFile = (await writeSharedUsers(['alice'], PASSWORD, { slow: [SLOW], slowTimeCost: 100 }))
    .path;
});
afterAll(async () => {
  await redis?.stop();
});

/** A server that answers after `?delay=` ms; counts what it received. */
async function startSlowServer(answer: (req: http.IncomingMessage) => string = () => '{}') {
  let received = 0;
  const server = http.createServer((req, res) => {
    received++;
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 1500);
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answer(req));
    }, delay);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: () => received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Does a new TCP connection to `port` get refused? */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

function exitOf(service: ServiceProcess): Promise<number | null> {
  const child = service.process;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** SIGTERM while `inFlight` requests run: they must finish, new connections must be refused. */
async function terminateWhileBusy<T>(service: ServiceProcess, inFlight: Promise<T>[]) {
  const exited = exitOf(service);
  let finished = 0;
  for (const request of inFlight) void request.then(() => finished++);
  const signalled = Date.now();
  service.process.kill('SIGTERM');
  await waitFor(() => refused(service.port), 2000, `${service.name} to refuse new connections`);
  // Refused while the requests were still running.
  expect(finished).toBe(0);
  const refusedAfter = Date.now() - signalled;
  const answers = await Promise.all(inFlight);
  const code = await exited;
  figure(`SIGTERM ${service.name}: new connections refused after`, refusedAfter);
  figure(`SIGTERM ${service.name}: exited after`, Date.now() - signalled);
  expect(code, service.output()).toBe(0);
  const output = service.output();
  expect(output).toContain('"msg":"shutting down"');
  expect(output).toContain('"msg":"stopped"');
  return { answers, output };
}

describe('SIGTERM with requests in flight', () => {
  it('gateway: in-flight requests to a slow upstream finish, new connections are refused, exit 0', async () => {
    const upstream = await startSlowServer(() => JSON.stringify({ slow: true }));
    const sessionService = await startService({
      name: 'session-service',
      ...SERVICES.sessionService,
      env: { REDIS_URL: redis.url, USERS_FILE: usersFile, SESSION_SECRET: SECRET },
    });
    const gateway = await startService({
      name: 'gateway',
      entry: 'gateway/src/main.ts',
      portVariable: 'GATEWAY_PORT',
      healthPath: '/_gatehouse/healthz',
      env: { SESSION_SERVICE_URL: sessionService.url, UPSTREAM_URL: upstream.url },
    });
    try {
      const cookie = await jsonLogin(gateway.url, 'alice', PASSWORD);
      const inFlight = [1, 2, 3].map(() =>
        fetch(`${gateway.url}/report?delay=1500`, { headers: { cookie } }).then(async (res) => ({
          status: res.status,
          body: await res.text(),
        })),
      );
      await waitFor(() => upstream.received() >= 3, 5000, 'the upstream to receive the requests');
      const { answers } = await terminateWhileBusy(gateway, inFlight);
      for (const answer of answers) {
        expect(answer.status).toBe(200);
        expect(JSON.parse(answer.body)).toEqual({ slow: true });
      }
    } finally {
      await gateway.stop();
      await sessionService.stop();
      await upstream.close();
    }
  });

  it('session-service: a login verifying its password finishes and saves its session, then Redis is closed, exit 0', async () => {
    const sessionService = await startService({
      name: 'session-service',
      ...SERVICES.sessionService,
      env: {
        REDIS_URL: redis.url,
        USERS_FILE: usersFile,
        SESSION_SECRET: SECRET,
        LOG_LEVEL: 'info',
      },
    });
    try {
      await waitFor(
        async () => (await fetch(`${sessionService.url}/readyz`)).status === 200,
        10_000,
        'ready',
      );
      const evals = async () =>
        Number(/cmdstat_eval:calls=(\d+)/.exec(await redis.client.info('commandstats'))?.[1] ?? 0);
      const before = await evals();
      // slowpoke's password takes about a second to verify; the session is saved afterwards.
      const login = fetch(`${sessionService.url}/auth/login`, {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ username: SLOW, password: PASSWORD }),
      }).then(async (res) => ({
        status: res.status,
        cookie: res.headers.getSetCookie().find((c) => c.startsWith('gatehouse=')) ?? '',
      }));
      await waitFor(async () => (await evals()) >= before + 4, 5000, 'the throttle check');
      const { answers, output } = await terminateWhileBusy(sessionService, [login]);
      const [answer] = answers;
      expect(answer?.status).toBe(200);
      // The session was written to Redis after SIGTERM: Redis was closed only afterwards.
      const value = decodeURIComponent(answer?.cookie.split(';')[0]?.split('=')[1] ?? '');
      const sid = value.slice(2, value.lastIndexOf('.'));
      expect((await storedAuthOf(redis.client, sid))?.createdAt).toBeGreaterThan(0);
      expect(output).toContain('"msg":"redis connection closed"');
      expect(output.indexOf('"msg":"redis connection closed"'), output).toBeLessThan(
        output.indexOf('"msg":"stopped"'),
      );
    } finally {
      await sessionService.stop();
    }
  });

  it('demo-app: a request waiting for the JWKS finishes, new connections are refused, exit 0', async () => {
    const jwks = await startSlowServer(() => JSON.stringify({ keys: [] }));
    const demoApp = await startService({
      name: 'demo-app',
      entry: 'demo-app/src/main.ts',
      portVariable: 'DEMO_APP_PORT',
      healthPath: '/healthz',
      env: { JWKS_URL: `${jwks.url}/jwks.json?delay=1500` },
    });
    try {
      const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
      // Well-formed enough that the verifier asks the (slow) JWKS for its key.
      const token = `${b64({ alg: 'EdDSA', kid: 'k1' })}.${b64({ sub: 'x' })}.AAAA`;
      const inFlight = [
        fetch(`${demoApp.url}/api/whoami`, { headers: { 'x-auth-request-jwt': token } }).then(
          (res) => res.status,
        ),
      ];
      await waitFor(() => jwks.received() >= 1, 5000, 'the JWKS request');
      const { answers } = await terminateWhileBusy(demoApp, inFlight);
      // Answered (an unknown key: 401), not cut off.
      expect(answers).toEqual([401]);
    } finally {
      await demoApp.stop();
      await jwks.close();
    }
  });
});

describe('bad configuration', () => {
  async function run(entry: string, env: Record<string, string>) {
    const started = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', entry], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    return { code, stderr, ms: Date.now() - started };
  }

  it('each service exits 1 at once and lists every problem', async () => {
    const [session, gateway, demo] = await Promise.all([
      run('session-service/src/main.ts', {
        SESSION_IDLE_TIMEOUT: 'soon',
        REDIS_URL: 'not a url',
        REDIS_SENTINEL_NAME: 'main',
        SESSION_SECRET: 'short',
        SESSION_SERVICE_PORT: '99999',
      }),
      run('gateway/src/main.ts', {
        GATEWAY_PORT: 'eighty',
        SESSION_SERVICE_URL: 'nowhere',
        VALIDATE_TIMEOUT_MS: '-5',
      }),
      run('demo-app/src/main.ts', { DEMO_APP_PORT: '-1', JWKS_URL: 'nope' }),
    ]);
    for (const [result, problems] of [
      [
        session,
        [
          'SESSION_IDLE_TIMEOUT',
          'REDIS_URL',
          'REDIS_SENTINEL_NAME: only applies with REDIS_SENTINELS',
          'SESSION_SECRET',
          'SESSION_SERVICE_PORT',
        ],
      ],
      [gateway, ['GATEWAY_PORT', 'SESSION_SERVICE_URL', 'VALIDATE_TIMEOUT_MS']],
      [demo, ['DEMO_APP_PORT', 'JWKS_URL']],
    ] as const) {
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(/^invalid configuration:/);
      for (const problem of problems) expect(result.stderr).toContain(problem);
      expect(result.stderr).not.toMatch(/\n\s+at /); // a list, not a stack trace
      expect(result.ms).toBeLessThan(15_000); // (tsx compiles at start: slow on a busy machine)
    }
    figure('bad configuration: exit 1 after', Math.max(session.ms, gateway.ms, demo.ms));
  });
});

describe('Redis absent at start', () => {
  it('the session-service stays up, retries with capped backoff, and connects once Redis is there', async () => {
    // Stands in for Redis: accepts and drops every connection, noting when.
    const attempts: number[] = [];
    const sockets = new Set<Socket>();
    const fake = createServer((socket) => {
      attempts.push(Date.now());
      socket.destroy();
    });
    fake.on('connection', (s) => sockets.add(s));
    const port = await freePort();
    await new Promise<void>((resolve) => fake.listen(port, '127.0.0.1', resolve));
    const sessionService = await startService({
      name: 'session-service',
      ...SERVICES.sessionService,
      env: {
        REDIS_URL: `redis://127.0.0.1:${port}`,
        USERS_FILE: usersFile,
        SESSION_SECRET: SECRET,
      },
    });
    let real: RedisServer | undefined;
    try {
      const started = Date.now();
      // Five seconds without Redis: alive, live, not ready.
      await waitFor(
        async () => {
          expect(sessionService.process.exitCode).toBeNull();
          expect((await fetch(`${sessionService.url}/healthz`)).status).toBe(200);
          expect((await fetch(`${sessionService.url}/readyz`)).status).toBe(503);
          return Date.now() - started > 5000;
        },
        10_000,
        'five seconds without Redis',
      );
      const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] ?? t));
      figure('Redis absent: connection attempts in the first 5 s', attempts.length, 'attempts');
      figure('Redis absent: longest gap between attempts', Math.max(...gaps));
      expect(attempts.length).toBeGreaterThanOrEqual(3); // it retries...
      expect(attempts.length).toBeLessThan(20); // ...with backoff, not in a tight loop
      expect(Math.max(...gaps)).toBeGreaterThan(1000);
      expect(Math.max(...gaps)).toBeLessThan(2500); // capped: Redis coming back is noticed soon
      expect(sessionService.output()).not.toMatch(/Unhandled|uncaught/i);

      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => fake.close(() => resolve()));
      real = await startRedis({ port });
      const upAt = Date.now();
      await waitFor(
        async () => (await fetch(`${sessionService.url}/readyz`)).status === 200,
        10_000,
        'ready once Redis is there',
      );
      figure('Redis absent: ready after Redis appeared', Date.now() - upAt);
    } finally {
      await sessionService.stop();
      await real?.stop();
    }
  });
});
