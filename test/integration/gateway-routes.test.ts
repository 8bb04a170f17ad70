import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/src/config.js';
import { createRouteStore } from '../../gateway/src/routes-file.js';
import { type EchoUpstream, startEchoUpstream } from '../helpers/echo-upstream.js';
import { type GatewayApp, type InProcessGateway, startGateway } from '../helpers/gateway.js';
import { jsonLogin } from '../helpers/login.js';
import { waitFor } from '../helpers/ports.js';
import { type ServiceProcess, startSessionServiceProcess } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';
const HTML = { accept: 'text/html,application/xhtml+xml' };

describe('two backends behind one gateway', () => {
  let redis: RedisServer;
  let sessionService: ServiceProcess;
  let echo: EchoUpstream;
  let python: ChildProcess;
  let pythonUrl: string;
  let base: string;
  let routesFile: string;
  let gateway: InProcessGateway;
  let app: GatewayApp;
  let alice: string;
  let bob: string;

  const login = (username: string) => jsonLogin(base, username, PASSWORD);
  const validateCount = async () => {
    const text = await (await fetch(`${sessionService.url}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith('gatehouse_validate_total'))
      .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
  };
  const routesYaml = (extra = '') => `routes:
  - id: app
    path: /app
    upstream: ${echo.url}
    allow:
      groups: [staff]
  - id: docs
    path: /docs
    upstream: ${pythonUrl}
    stripPrefix: true
    allow:
      groups: [writers]
      users: [carol]
  - id: status
    path: /status
    upstream: ${echo.url}
    public: true
  - id: api-host
    host: API.Example.com
    upstream: ${echo.url}/api-host
${extra}`;

  beforeAll(async () => {
    redis = await startRedis();
    const users = await writeTestUsers([
      { username: 'alice', password: PASSWORD, groups: ['staff'] },
      { username: 'bob', password: PASSWORD, groups: ['writers'] },
      { username: 'carol', password: PASSWORD },
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-gw-routes-'));
    mkdirSync(join(dir, 'site'));
    writeFileSync(join(dir, 'site', 'guide.txt'), 'the writers guide\n');
    // Port 0: python says which port it got (-u: unbuffered, the line comes at once).
    python = spawn(
      'python3',
      ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', join(dir, 'site')],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let said = '';
    python.stdout?.on('data', (d: Buffer) => {
      said += d.toString();
    });
    [sessionService, echo] = await Promise.all([
      startSessionServiceProcess({ redisUrl: redis.url, usersFile: users.path }),
      startEchoUpstream(),
    ]);
    await waitFor(() => /port \d+/.test(said), 10_000, 'python http.server to say its port');
    pythonUrl = `http://127.0.0.1:${/port (\d+)/.exec(said)?.[1]}`;
    await waitFor(
      async () => (await fetch(`${pythonUrl}/guide.txt`).catch(() => null))?.status === 200,
      10_000,
      'python http.server',
    );
    routesFile = join(dir, 'routes.yaml');
    writeFileSync(routesFile, routesYaml());
    gateway = await startGateway({
      SESSION_SERVICE_URL: sessionService.url,
      GATEWAY_ROUTES: routesFile,
    });
    ({ app, url: base } = gateway);
    [alice, bob] = await Promise.all([login('alice'), login('bob')]);
  });

  afterAll(async () => {
    gateway?.close();
    python?.kill();
    await echo?.close();
    await sessionService?.stop();
    await redis?.stop();
  });

  it('sends each prefix to its own backend for the groups allowed there', async () => {
    const a = await fetch(`${base}/app/home`, { headers: { cookie: alice } });
    expect(a.status).toBe(200);
    expect(echo.last().url).toBe('/app/home');
    expect(echo.last().header('x-auth-request-user')).toEqual(['alice']);

    const b = await fetch(`${base}/docs/guide.txt`, { headers: { cookie: bob } });
    expect(b.status).toBe(200);
    expect(await b.text()).toBe('the writers guide\n');
  });

  it('answers 403 (JSON, or a page for browsers), never a redirect, to a signed-in user not allowed', async () => {
    const api = await fetch(`${base}/docs/guide.txt`, { headers: { cookie: alice } });
    expect(api.status).toBe(403);
    expect(await api.json()).toEqual({ error: 'FORBIDDEN', message: expect.any(String) });
    const page = await fetch(`${base}/app/home`, {
      headers: { cookie: bob, ...HTML },
      redirect: 'manual',
    });
    expect(page.status).toBe(403);
    expect(page.headers.get('location')).toBeNull();
    expect(page.headers.get('content-type')).toContain('text/html');
  });

  it('admits a user named in allow.users whatever the groups', async () => {
    const carol = await login('carol');
    expect((await fetch(`${base}/docs/guide.txt`, { headers: { cookie: carol } })).status).toBe(
      200,
    );
    expect((await fetch(`${base}/app/home`, { headers: { cookie: carol } })).status).toBe(403);
  });

  it('still sends a browser without a session to the login page', async () => {
    const res = await fetch(`${base}/docs/guide.txt`, { headers: HTML, redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/auth/login?rd=%2Fdocs%2Fguide.txt');
  });

  it('serves a public route without a session and without asking the session-service', async () => {
    const before = await validateCount();
    const res = await fetch(`${base}/status/ping`, {
      headers: { 'x-auth-request-user': 'mallory', cookie: alice },
    });
    expect(res.status).toBe(200);
    expect(echo.last().header('x-auth-request-user')).toEqual([]);
    expect(await validateCount()).toBe(before);
  });

  it('routes by Host, case-insensitively and whatever the port, onto the upstream’s base path', async () => {
    const res = await new Promise<number>((resolve, reject) => {
      const req = http.get(
        `${base}/v1/items`,
        { headers: { host: 'api.EXAMPLE.com:8443', cookie: alice } },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      );
      req.on('error', reject);
    });
    expect(res).toBe(200);
    expect(echo.last().url).toBe('/api-host/v1/items');
  });

  it('answers 404 when no route fits', async () => {
    const res = await fetch(`${base}/nowhere`, { headers: { cookie: alice } });
    expect(res.status).toBe(404);
    expect((await res.json()).error).toBe('NOT_FOUND');
    const page = await fetch(`${base}/nowhere`, { headers: { cookie: alice, ...HTML } });
    expect(page.status).toBe(404);
    expect(page.headers.get('content-type')).toContain('text/html');
  });

  describe('reloading the routes file', () => {
    it('swaps the table without dropping a kept-alive connection or a request in flight', async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const ports: number[] = [];
      const get = (path: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.get(`${base}${path}`, { agent, headers: { cookie: alice } }, (r) => {
            let body = '';
            r.on('data', (d: Buffer) => {
              body += d.toString();
            });
            r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
          });
          req.on('socket', (s) => ports.push(s.localPort ?? -1));
          req.on('error', reject);
        });
      expect((await get('/app/x')).status).toBe(200);
      expect((await get('/new/x')).status).toBe(404);

      // a server-sent event stream open across the reload
      const stream = await fetch(`${base}/app/events?sse=2`, { headers: { cookie: alice } });
      const reader = stream.body?.getReader();
      if (!reader) throw new Error('no body');
      const first = new TextDecoder().decode((await reader.read()).value);
      expect(first).toContain('event 1');

      writeFileSync(
        routesFile,
        routesYaml(`  - id: new\n    path: /new\n    upstream: ${echo.url}\n`),
      );
      expect(app.reloadRoutes()).toEqual({ ok: true, routes: 5 });

      expect((await get('/new/x')).status).toBe(200);
      expect(echo.last().url).toBe('/new/x');
      expect(new Set(ports).size).toBe(1); // one connection throughout

      echo.nextEvent();
      let rest = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        rest += new TextDecoder().decode(value);
      }
      expect(rest).toContain('event 2');
      agent.destroy();
    });

    it('keeps the current table when the new file is invalid, and says why', async () => {
      writeFileSync(routesFile, 'routes:\n  - id: broken\n    path: /auth\n');
      const result = app.reloadRoutes();
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.problems.join('\n')).toMatch(
        /routes\[0\] \(broken\)\.path: \/auth\/ is reserved/,
      );
      expect(result.problems.join('\n')).toMatch(/routes\[0\] \(broken\)\.upstream/);
      expect((await fetch(`${base}/new/x`, { headers: { cookie: alice } })).status).toBe(200);
    });

    it('refuses at start a file that is invalid or missing', () => {
      expect(() =>
        createRouteStore({ file: routesFile, defaultUpstream: 'http://x', defaultTimeoutMs: 1 }),
      ).toThrow(ConfigError);
      expect(() =>
        createRouteStore({
          file: join(tmpdir(), 'no-such-routes.yaml'),
          defaultUpstream: 'http://x',
          defaultTimeoutMs: 1,
        }),
      ).toThrow(/cannot read/);
    });
  });
});
