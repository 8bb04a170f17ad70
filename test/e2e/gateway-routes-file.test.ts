import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type EchoUpstream, startEchoUpstream } from '../helpers/echo-upstream.js';
import { jsonLogin } from '../helpers/login.js';
import { waitFor } from '../helpers/ports.js';
import { ROOT, SERVICES, type System, startService, startSystem } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { writeTestUsers } from '../helpers/users.js';
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.js';

const PASSWORD = 'correct horse battery';

let redis: RedisServer;
let system: System;
let echo: EchoUpstream;
let wsUpstream: WsUpstream;
let dir: string;
let routesFile: string;
let cookie: string;

const routes = (extra = '') => `routes:
  - id: demo
    upstream: DEMO_URL
  - id: reports
    path: /reports
    upstream: ${echo.url}
    stripPrefix: true
    allow: { groups: [finance] }
  - id: live
    path: /live
    upstream: ${wsUpstream.url}
${extra}`;

const writeRoutes = (text: string) =>
  writeFileSync(routesFile, text.replace('DEMO_URL', system?.demoApp.url ?? 'http://127.0.0.1:1'));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-e2e-routes-'));
  routesFile = join(dir, 'routes.yaml');
  [redis, echo, wsUpstream] = await Promise.all([
    startRedis(),
    startEchoUpstream(),
    startWsUpstream(),
  ]);
  const users = await writeTestUsers([
    { username: 'fran', password: PASSWORD, groups: ['finance'] },
  ]);
  writeRoutes(routes());
  system = await startSystem({
    redisUrl: redis.url,
    usersFile: users.path,
    gatewayEnv: { GATEWAY_ROUTES: routesFile, WS_REVALIDATE_MS: '300' },
    // the demo-app verifies the signed identity: its audience is its route id
    demoEnv: { IDENTITY_AUDIENCE: 'demo' },
  });
  // the first file pointed the demo route at a placeholder: now the demo-app's port is known
  writeRoutes(routes());
  await waitFor(
    async () =>
      (
        await fetch(`${system.gateway.url}/`, {
          headers: { accept: 'text/html' },
          redirect: 'manual',
        })
      ).status === 302,
    10_000,
    'the gateway',
  );
  cookie = await jsonLogin(system.gateway.url, 'fran', PASSWORD);
});

afterAll(async () => {
  await system?.stop();
  await echo?.close();
  await wsUpstream?.close();
  await redis?.stop();
});

describe('a gateway process with GATEWAY_ROUTES', () => {
  it('routes to the demo-app and to a second backend with its allow list', async () => {
    await waitFor(
      async () =>
        (await fetch(`${system.gateway.url}/api/whoami`, { headers: { cookie } })).status === 200,
      10_000,
      'the demo route to be reloaded',
    );
    const res = await fetch(`${system.gateway.url}/reports/q1?x=1`, { headers: { cookie } });
    expect(res.status).toBe(200);
    expect(echo.last().url).toBe('/q1?x=1');
    expect(echo.last().header('x-auth-request-user')).toEqual(['fran']);
  });

  it('picks up a changed file without a restart, and keeps the old table when the new one is invalid', async () => {
    writeRoutes(
      routes(`  - id: extra\n    path: /extra\n    upstream: ${echo.url}\n    public: true\n`),
    );
    await waitFor(
      async () => (await fetch(`${system.gateway.url}/extra/x`)).status === 200,
      10_000,
      'the new route',
    );
    writeFileSync(
      routesFile,
      'routes:\n  - id: x\n    path: /_gatehouse/x\n    upstream: http://h\n',
    );
    await waitFor(
      () => system.gateway.output().includes('routes file invalid; keeping the previous routes'),
      10_000,
      'the invalid file to be reported',
    );
    expect(system.gateway.output()).toContain('/_gatehouse/ is reserved');
    expect((await fetch(`${system.gateway.url}/extra/x`)).status).toBe(200);
    writeRoutes(routes());
    await waitFor(
      async () => (await fetch(`${system.gateway.url}/extra/x`)).status === 401,
      10_000,
      'the route to be gone again',
    );
  });

  it('reloads on SIGHUP', async () => {
    const count = () => system.gateway.output().split('"routes reloaded"').length;
    const before = count();
    system.gateway.process.kill('SIGHUP');
    await waitFor(() => count() > before, 5000, 'a reload after SIGHUP');
  });

  it('tunnels WebSockets and closes them when the session ends', async () => {
    const session = await fetch(`${system.gateway.url}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'fran', password: PASSWORD }),
    });
    const own = session.headers.getSetCookie()[0]?.split(';')[0] ?? '';
    const ws = new WebSocket(`${system.gateway.url.replace('http', 'ws')}/live`, {
      headers: { cookie: own },
    });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const reply = new Promise<string>((resolve) =>
      ws.once('message', (d) => resolve(d.toString())),
    );
    ws.send('ping');
    expect(await reply).toBe('echo:ping');
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await fetch(`${system.gateway.url}/auth/logout`, {
      method: 'POST',
      headers: { cookie: own, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(await closed).toBe(1008);
  });
});

describe('stopping the gateway process', () => {
  it('closes open WebSockets (1001) and exits 0 promptly', async () => {
    const ws = new WebSocket(`${system.gateway.url.replace('http', 'ws')}/live`, {
      headers: { cookie },
    });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    const started = Date.now();
    expect(await system.gateway.stop('SIGTERM')).toBe(0);
    expect(await closed).toBe(1001);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('a gateway process with an invalid routes file', () => {
  it('refuses to start and lists every problem', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'routes:\n  - id: a\n    path: /auth/x\n    upstream: ftp://h\n  - id: a\n    upstream: http://h\n',
    );
    const gateway = await startService({
      name: 'gateway',
      ...SERVICES.gateway,
      env: { GATEWAY_ROUTES: bad },
      waitHealthy: false,
    });
    const code = await new Promise<number | null>((resolve) =>
      gateway.process.once('exit', (c) => resolve(c)),
    );
    expect(code).toBe(1);
    expect(gateway.output()).toContain('invalid configuration:');
    expect(gateway.output()).toContain('routes[0] (a).path: /auth/ is reserved');
    expect(gateway.output()).toContain('routes[0] (a).upstream: must be an http');
    expect(gateway.output()).toContain('routes[1] (a).id: duplicate id');

    const check = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'gateway/src/main.ts', '--check-config'],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', GATEWAY_ROUTES: bad },
        encoding: 'utf8',
      },
    );
    expect(check.status).toBe(1);
    expect(check.stderr).toContain('/auth/ is reserved');
  });
});
