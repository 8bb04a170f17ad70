/**
 * Over 300 lines on purpose: the recipe policy, WebSockets and TLS checks all share one nginx edge in front of one gateway.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import https from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import {
  BROWSER_ACCEPT as HTML,
  httpsFetch,
  type NginxServer,
  signInThroughNginx,
  startNginx,
} from '../helpers/nginx.js';
import { SERVICES, type System, startService, startSystem } from '../helpers/processes.js';
import { describeRecipePolicy, PASSWORD } from '../helpers/recipe-policy.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { writeTestUsers } from '../helpers/users.js';

const text = (html: string) => html.replace(/<[^>]*>/g, '');

describe('nginx edge (TLS) in front of the gateway', () => {
  let redis: RedisServer;
  let system: System;
  let nginx: NginxServer;

  beforeAll(async () => {
    redis = await startRedis();
    const users = await writeTestUsers([
      { username: 'alice', password: PASSWORD, groups: ['staff'], email: 'alice@example.com' },
    ]);
    system = await startSystem({ redisUrl: redis.url, usersFile: users.path });
    nginx = await startNginx({
      template: 'edge',
      vars: { GATEWAY_UPSTREAM: `127.0.0.1:${system.gateway.port}` },
    });
  });

  afterAll(async () => {
    await nginx?.stop();
    await system?.stop();
    await redis?.stop();
  });

  /** Log alice in through nginx; answers the client holding her session. */
  const login = (rd = '/') =>
    signInThroughNginx(nginx, { username: 'alice', password: PASSWORD }, rd);

  it('redirects every plain-HTTP request to HTTPS with 301, keeping path and query', async () => {
    for (const path of ['/', '/reports?year=2024&q=a%20b', '/_gatehouse/healthz', '/auth/login']) {
      const res = await fetch(`${nginx.httpUrl}${path}`, { redirect: 'manual' });
      expect(res.status, path).toBe(301);
      expect(res.headers.get('location')).toBe(`https://127.0.0.1:${nginx.httpsPort}${path}`);
    }
    const post = await fetch(`${nginx.httpUrl}/auth/login`, {
      method: 'POST',
      redirect: 'manual',
      body: 'username=alice',
    });
    expect(post.status).toBe(301);
  });

  it('serves TLS 1.3 and 1.2 with the development certificate, and sends HSTS', async () => {
    const protocol = (maxVersion: 'TLSv1.2' | 'TLSv1.3') =>
      new Promise<string | null>((resolve, reject) => {
        const socket = tlsConnect(
          { host: '127.0.0.1', port: nginx.httpsPort, ca: nginx.ca, maxVersion },
          () => {
            const p = socket.getProtocol();
            socket.end();
            resolve(p);
          },
        );
        socket.once('error', reject);
      });
    expect(await protocol('TLSv1.3')).toBe('TLSv1.3');
    expect(await protocol('TLSv1.2')).toBe('TLSv1.2');

    const res = await httpsFetch(`${nginx.httpsUrl}/_gatehouse/healthz`, { ca: nginx.ca });
    expect(res.status).toBe(200);
    expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
    expect(res.headers.get('server') ?? '').not.toMatch(/\d/);
  });

  it('sends a browser without a session to the login page with rd', async () => {
    const res = await httpsFetch(`${nginx.httpsUrl}/reports?year=2024&q=x`, {
      ca: nginx.ca,
      headers: { accept: HTML },
    });
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location') ?? '', nginx.httpsUrl);
    expect(location.origin).toBe(nginx.httpsUrl);
    expect(location.pathname).toBe('/auth/login');
    expect(location.searchParams.get('rd')).toBe('/reports?year=2024&q=x');

    const api = await httpsFetch(`${nginx.httpsUrl}/api/whoami`, {
      ca: nginx.ca,
      headers: { accept: 'application/json' },
    });
    expect(api.status).toBe(401);
    expect(await api.json()).toMatchObject({ error: 'UNAUTHENTICATED' });
  });

  it('logs in through nginx: a Secure session cookie, then the app greets alice', async () => {
    const { client, res } = await login('/');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    const cookies = res.headers.getSetCookie();
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) {
      expect(cookie).toMatch(/;\s*Secure/i);
      expect(cookie).toMatch(/;\s*HttpOnly/i);
    }

    const home = await client.fetch(`${nginx.httpsUrl}/`, { headers: { accept: HTML } });
    expect(home.status).toBe(200);
    expect(text(await home.text())).toContain('Welcome, alice');
  });

  it('gives the app the request id nginx made, and sends it back to the client', async () => {
    const { client } = await login('/');
    const res = await client.fetch(`${nginx.httpsUrl}/api/whoami`, {
      headers: { accept: 'application/json', 'x-request-id': 'client-chosen-id' },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { user: { username: string }; requestId: string };
    expect(body.user.username).toBe('alice');
    const header = res.headers.get('x-request-id');
    expect(header).toMatch(/^[0-9a-f]{32}$/);
    expect(body.requestId).toBe(header);
    expect(body.requestId).not.toBe('client-chosen-id');
  });

  it('never lets a client-sent identity header reach the app', async () => {
    const spoof = {
      'x-auth-request-user': 'mallory',
      'x-auth-request-groups': 'admin',
      'x-auth-request-email': 'mallory@example.com',
    };
    const anonymous = await httpsFetch(`${nginx.httpsUrl}/api/whoami`, {
      ca: nginx.ca,
      headers: { accept: 'application/json', ...spoof },
    });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).not.toContain('mallory');

    const { client } = await login('/');
    const res = await client.fetch(`${nginx.httpsUrl}/api/whoami`, {
      headers: { accept: 'application/json', ...spoof },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      user: { username: string; groups: string[]; email: string };
    };
    expect(body.user).toMatchObject({
      username: 'alice',
      groups: ['staff'],
      email: 'alice@example.com',
    });
  });

  it('refuses a body over client_max_body_size (10m) with 413', async () => {
    const { client } = await login('/');
    const res = await client.fetch(`${nginx.httpsUrl}/api/upload`, {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(10 * 1024 * 1024 + 1),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: 'PAYLOAD_TOO_LARGE' });
  });
});

/**
 * What nginx itself does to traffic, with a stand-in upstream in the gateway's place: streaming,
 * WebSocket upgrades, and the headers the upstream receives.
 */
describe('nginx edge: what passes through to the upstream', () => {
  let upstream: Server;
  let nginx: NginxServer;
  const seen: IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      seen.push(req.headers);
      if (req.url === '/events') {
        // Server-sent events: the first event goes out at once, the stream stays open.
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
        res.write('data: first\n\n');
        req.once('close', () => res.end());
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.headers));
    });
    const wss = new WebSocketServer({ server: upstream });
    wss.on('connection', (socket, req) => {
      seen.push(req.headers);
      socket.on('message', (data) => socket.send(`echo:${String(data)}`));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const address = upstream.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    nginx = await startNginx({ template: 'edge', vars: { GATEWAY_UPSTREAM: `127.0.0.1:${port}` } });
  });

  afterAll(async () => {
    await nginx?.stop();
    upstream?.closeAllConnections();
    await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
  });

  it('replaces what the client says about itself and about identity', async () => {
    const res = await httpsFetch(`${nginx.httpsUrl}/headers`, {
      ca: nginx.ca,
      headers: {
        'x-forwarded-for': '203.0.113.9',
        'x-forwarded-proto': 'http',
        'x-forwarded-host': 'evil.example',
        forwarded: 'for=203.0.113.9',
        'x-request-id': 'client-chosen-id',
        'x-auth-request-user': 'mallory',
        'x-auth-request-jwt': 'forged',
        'remote-user': 'mallory',
        'x-auth-request-amr': 'pwd,otp,mfa',
        'x-auth-request-acr': 'aal2',
        'x-auth-request-auth-time': '4102444800',
      },
    });
    const headers = (await res.json()) as Record<string, string>;
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(headers['x-forwarded-proto']).toBe('https');
    expect(headers.host).toBe(`127.0.0.1:${nginx.httpsPort}`);
    expect(headers['x-forwarded-host']).toBe(`127.0.0.1:${nginx.httpsPort}`);
    expect(headers['x-request-id']).toMatch(/^[0-9a-f]{32}$/);
    expect(res.headers.get('x-request-id')).toBe(headers['x-request-id']);
    for (const name of [
      'forwarded',
      'x-auth-request-user',
      'x-auth-request-jwt',
      'remote-user',
      'x-auth-request-amr',
      'x-auth-request-acr',
      'x-auth-request-auth-time',
    ]) {
      expect(headers[name], name).toBeUndefined();
    }
  });

  it('streams server-sent events as they are written (no buffering)', async () => {
    const first = await new Promise<string>((resolve, reject) => {
      const req = https.get(
        `${nginx.httpsUrl}/events`,
        { ca: nginx.ca, headers: { accept: 'text/event-stream' } },
        (res) => {
          res.once('data', (chunk: Buffer) => {
            resolve(chunk.toString());
            req.destroy();
          });
        },
      );
      req.once('error', reject);
    });
    expect(first).toContain('data: first');
  });

  it('passes WebSocket upgrades through', async () => {
    const socket = new WebSocket(`wss://127.0.0.1:${nginx.httpsPort}/ws`, { ca: nginx.ca });
    const reply = await new Promise<string>((resolve, reject) => {
      socket.once('open', () => socket.send('hello'));
      socket.once('message', (data) => resolve(String(data)));
      socket.once('error', reject);
    });
    socket.close();
    expect(reply).toBe('echo:hello');
    expect(seen.at(-1)?.['x-request-id']).toMatch(/^[0-9a-f]{32}$/);
  });
});

// nginx (TLS, HTTP/2) in front of the gateway is held to the same policy as the proxy recipes,
// over HTTP/1.1 and HTTP/2, with an upstream that records what it received behind the gateway.
describeRecipePolicy('nginx edge in front of the gateway', async (deps) => {
  const gateway = await startService({
    name: 'gateway',
    ...SERVICES.gateway,
    env: {
      REDIS_URL: deps.redis.url,
      SESSION_SERVICE_URL: deps.sessionService.url,
      UPSTREAM_URL: `http://${deps.upstream.address}`,
      INTERNAL_TOKEN: deps.internalToken,
    },
  });
  const nginx = await startNginx({
    template: 'edge',
    vars: { GATEWAY_UPSTREAM: `127.0.0.1:${gateway.port}` },
  }).catch(async (err: unknown) => {
    await gateway.stop();
    throw err;
  });
  return {
    url: nginx.httpsUrl,
    ca: nginx.ca,
    // the gateway signs for the route id: the one route UPSTREAM_URL makes is "default"
    audience: 'default',
    output: () => `${nginx.output()}\n${gateway.output()}`,
    async stop() {
      await nginx.stop();
      await gateway.stop();
    },
  };
});
