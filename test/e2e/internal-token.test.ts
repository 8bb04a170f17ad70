/**
 * INTERNAL_TOKEN, the proof that a caller may ask for signed identities: required in production
 * (a clear configuration error from both services), and in development, when unset, made once
 * under ./data/ and shared by the session-service and the gateway, even when they start at the
 * same moment (as `npm start` starts them).
 */
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EchoUpstream,
  expectFailsClosed,
  startEchoUpstream,
} from '../helpers/echo-upstream.js';
import { jsonLogin } from '../helpers/login.js';
import { freePort } from '../helpers/ports.js';
import {
  ROOT,
  SERVICES,
  type ServiceProcess,
  startService,
  startSessionServiceProcess,
} from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { runToExit, runTsx } from '../helpers/run-process.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';
let redis: RedisServer;
let echo: EchoUpstream;
let usersFile: string;
const started: ServiceProcess[] = [];

beforeAll(async () => {
  [redis, echo] = await Promise.all([startRedis(), startEchoUpstream()]);
  usersFile = (await writeTestUsers([{ username: 'alice', password: PASSWORD }])).path;
});

afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
  await echo?.close();
  await redis?.stop();
});

/** Runs `node --import tsx <entry>` in ROOT until it exits, with a bare environment plus `env`. */
const run = (entry: string, env: Record<string, string>) =>
  runTsx(entry, [], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
  });

describe('in production, without INTERNAL_TOKEN', () => {
  it('neither the session-service nor the gateway starts: exit 1 and one clear line', async () => {
    const [session, gateway] = await Promise.all([
      run('session-service/src/main.ts', {
        NODE_ENV: 'production',
        SESSION_SECRET: 'a-real-secret-a-real-secret-a-real-secret-0123',
        REDIS_URL: redis.url,
        USERS_FILE: usersFile,
      }),
      run('gateway/src/main.ts', { NODE_ENV: 'production' }),
    ]);
    for (const result of [session, gateway]) {
      expect(result.code, result.output).toBe(1);
      expect(result.output).toMatch(/^invalid configuration:/);
      expect(result.output).toContain('INTERNAL_TOKEN: is required when NODE_ENV=production');
      expect(result.output).not.toMatch(/\n\s+at /); // not a stack trace
    }
  });
});

describe('a gateway whose INTERNAL_TOKEN the session-service refuses', () => {
  it('fails closed: 503 for every protected request, nothing upstream, and a log line saying why', async () => {
    const session = await startSessionServiceProcess({ redisUrl: redis.url, usersFile });
    started.push(session);
    const gateway = await startService({
      name: 'gateway (wrong token)',
      entry: 'gateway/src/main.ts',
      portVariable: 'GATEWAY_PORT',
      healthPath: '/_gatehouse/healthz',
      env: {
        INTERNAL_TOKEN: 'not-the-session-services-token-0123456789',
        SESSION_SERVICE_URL: session.url,
        UPSTREAM_URL: echo.url,
        GATEWAY_METRICS_PORT: 'off',
        LOG_LEVEL: 'warn',
      },
    });
    started.push(gateway);
    const cookie = await jsonLogin(gateway.url, 'alice', PASSWORD);
    // Not "logged out" (401, a login loop): the session is valid, the gateway is misconfigured.
    await expectFailsClosed(`${gateway.url}/page`, cookie, echo);
    expect(gateway.output()).toContain('INTERNAL_TOKEN differs');
  });
});

describe('in development, without INTERNAL_TOKEN', () => {
  it('the session-service and the gateway, started together, make and share one token under ./data/', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'gatehouse-devtoken-'));
    // INTERNAL_TOKEN '' overrides the test token processes.ts gives every service. Both start at
    // once: whichever comes first makes the token, the other must read the same one.
    const port = await freePort();
    const [session, gateway] = await Promise.all([
      startService({
        name: 'session-service',
        ...SERVICES.sessionService,
        cwd,
        port,
        env: {
          NODE_ENV: 'development',
          INTERNAL_TOKEN: '',
          REDIS_URL: redis.url,
          USERS_FILE: usersFile,
          LOG_LEVEL: 'warn',
        },
      }),
      startService({
        name: 'gateway',
        entry: 'gateway/src/main.ts',
        portVariable: 'GATEWAY_PORT',
        healthPath: '/_gatehouse/healthz',
        cwd,
        env: {
          NODE_ENV: 'development',
          INTERNAL_TOKEN: '',
          SESSION_SERVICE_URL: `http://127.0.0.1:${port}`,
          UPSTREAM_URL: echo.url,
          GATEWAY_METRICS_PORT: 'off',
          LOG_LEVEL: 'warn',
        },
      }),
    ]);
    started.push(session, gateway);

    const file = join(cwd, 'data', 'internal-token');
    expect(readFileSync(file, 'utf8').trim().length).toBeGreaterThanOrEqual(32);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    for (const service of [session, gateway])
      expect(service.output()).toContain('INTERNAL_TOKEN not set: using the development token');

    // The gateway holds the session-service's token: it gets the signed identity for its route.
    const cookie = await jsonLogin(gateway.url, 'alice', PASSWORD);
    const res = await fetch(`${gateway.url}/page`, {
      headers: { cookie, accept: 'application/json' },
    });
    expect(res.status).toBe(200);
    const [jwt] = echo.last().header('x-auth-request-jwt');
    expect(decodeJwt(jwt ?? '')).toMatchObject({ aud: 'default', name: 'alice' });
  });

  it('processes that make the token at the same moment all end up with the same one', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'gatehouse-devtoken-race-')), 'data', 'token');
    const code = `import { loadOrCreateDevSecret } from ${JSON.stringify(join(ROOT, 'common/src/dev-secret.ts'))};
process.stdout.write(loadOrCreateDevSecret(process.env.TOKEN_FILE));`;
    const runs = await Promise.all(
      Array.from({ length: 8 }, () =>
        runToExit(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
          env: { PATH: process.env.PATH ?? '', TOKEN_FILE: path },
          timeoutMs: 20_000,
        }),
      ),
    );
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const tokens = runs.map((r) => r.stdout);
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]?.length).toBeGreaterThanOrEqual(32);
    expect(readFileSync(path, 'utf8').trim()).toBe(tokens[0]);
  });
});
