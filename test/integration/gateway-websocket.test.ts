/**
 * WebSockets through the gateway: opening, while open (a logout, a session-service outage), upstream failures,
 * other upgrades, frame boundaries. Over 300 lines: all share one gateway, session-service and
 * WebSocket upstream.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { FrameBoundary } from '../../gateway/src/websocket-frames.js';
import { type TestTokens, testTokens } from '../helpers/access-tokens.js';
import { type EchoUpstream, startEchoUpstream } from '../helpers/echo-upstream.js';
import { type GatewayApp, startGateway } from '../helpers/gateway.js';
import { jsonLogin } from '../helpers/login.js';
import { reservedDeadPort, waitFor } from '../helpers/ports.js';
import {
  type ServiceProcess,
  startSessionServiceProcess,
  untilReady,
} from '../helpers/processes.js';
import { type RawAnswer, rawHttp } from '../helpers/raw-http.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { writeTestUsers } from '../helpers/users.js';
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.js';

const PASSWORD = 'correct horse battery';
const REVALIDATE_MS = 400;

let redis: RedisServer;
let sessionService: ServiceProcess;
let upstream: WsUpstream;
let echo: EchoUpstream;
let hangServer: net.Server;
const hung: net.Socket[] = [];
let gateway: GatewayApp;
let base: string;
/** A gateway whose session-service is not there. */
let blindBase: string;
const cleanups: Array<() => void> = [];
let tokens: TestTokens;
let aliceId: string;

/** A gateway in-process; `base` is its host:port (WebSocket URLs are built on it). */
async function listen(env: Record<string, string>) {
  const started = await startGateway(env);
  cleanups.push(started.close);
  return { app: started.app, base: `127.0.0.1:${started.port}` };
}

const login = (username: string) => jsonLogin(sessionService.url, username, PASSWORD);

interface Attempt {
  ws?: WebSocket;
  status: number;
  body: string;
}

/** Open a WebSocket; resolves with the socket, or with the HTTP answer that refused it. */
function connect(
  path: string,
  headers: Record<string, string> = {},
  host = base,
): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${host}${path}`, { headers });
    ws.once('open', () => resolve({ ws, status: 101, body: '' }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', reject);
  });
}

/** An upgrade request written as is (the ws client would normalise the path). */
function rawUpgrade(path: string): Promise<RawAnswer> {
  return rawHttp(base.split(':')[1] ?? '', [
    `GET ${path} HTTP/1.1`,
    `Host: ${base}`,
    'Connection: Upgrade',
    'Upgrade: websocket',
    'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  ]);
}

const closed = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string; at: number }>((resolve) =>
    ws.once('close', (code, reason) =>
      resolve({ code, reason: reason.toString(), at: Date.now() }),
    ),
  );

const roundTrip = (ws: WebSocket, text: string) =>
  new Promise<string>((resolve) => {
    ws.once('message', (data) => resolve(data.toString()));
    ws.send(text);
  });

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    { username: 'alice', password: PASSWORD, groups: ['staff'], email: 'alice@example.com' },
    { username: 'root', password: PASSWORD, groups: ['admins'] },
  ]);
  aliceId = users.users[0]?.id as string;
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-gw-ws-'));
  [sessionService, upstream, echo] = await Promise.all([
    startSessionServiceProcess({
      redisUrl: redis.url,
      usersFile: users.path,
      env: { REDIS_COMMAND_TIMEOUT_MS: '150' },
    }),
    startWsUpstream(),
    startEchoUpstream(),
  ]);
  hangServer = net.createServer((s) => {
    hung.push(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => hangServer.listen(0, '127.0.0.1', resolve));
  const routesFile = join(dir, 'routes.yaml');
  writeFileSync(
    routesFile,
    `routes:
  - id: chat
    path: /ws
    upstream: ${upstream.url}
  - id: admin-chat
    path: /admin-ws
    upstream: ${upstream.url}
    allow: { groups: [admins] }
  - id: lobby
    path: /lobby
    upstream: ${upstream.url}
    public: true
  - id: http
    path: /http
    upstream: ${echo.url}
  - id: dead
    path: /dead
    upstream: http://127.0.0.1:${await reservedDeadPort()}
  - id: hang
    path: /hang
    upstream: http://127.0.0.1:${(hangServer.address() as AddressInfo).port}
    timeoutMs: 300
`,
  );
  const env = {
    SESSION_SERVICE_URL: sessionService.url,
    GATEWAY_ROUTES: routesFile,
    WS_REVALIDATE_MS: String(REVALIDATE_MS),
    // a frozen Redis makes validate hang until this deadline: keep the rounds short
    VALIDATE_TIMEOUT_MS: '300',
  };
  tokens = await testTokens(redis.url);
  const main = await listen(env);
  gateway = main.app;
  base = main.base;
  blindBase = (
    await listen({ ...env, SESSION_SERVICE_URL: `http://127.0.0.1:${await reservedDeadPort()}` })
  ).base;
});

afterAll(async () => {
  await tokens?.close().catch(() => {});
  for (const c of cleanups) c();
  for (const s of hung) s.destroy();
  hangServer?.close();
  redis?.resume();
  await upstream?.close();
  await echo?.close();
  await sessionService?.stop();
  await redis?.stop();
});

describe('opening a WebSocket through the gateway', () => {
  it('tunnels a signed-in user’s socket with the identity attached and the spoofed one removed', async () => {
    const cookie = await login('alice');
    const { ws, status } = await connect('/ws/room?x=%2F', {
      cookie: `${cookie}; theme=dark`,
      'X-Auth-Request-User': 'mallory',
      'x-auth-request-groups': 'admins',
      X_Auth_Request_User: 'mallory',
      'Remote-User': 'mallory',
    });
    expect(status).toBe(101);
    if (!ws) return;
    expect(await roundTrip(ws, 'hello')).toBe('echo:hello');
    const seen = upstream.connections.at(-1);
    expect(seen?.url).toBe('/ws/room?x=%2F');
    expect(seen?.header('x-auth-request-user')).toEqual(['alice']);
    expect(seen?.header('x-auth-request-groups')).toEqual(['staff']);
    expect(seen?.header('remote-user')).toEqual([]);
    expect(seen?.rawHeaders.map((h) => h.toLowerCase())).not.toContain('x_auth_request_user');
    expect(seen?.header('cookie')).toEqual(['theme=dark']);
    expect(seen?.header('x-request-id')).toHaveLength(1);
    const [jwt] = seen?.header('x-auth-request-jwt') ?? [];
    expect(JSON.parse(Buffer.from(jwt?.split('.')[1] ?? '', 'base64url').toString()).aud).toBe(
      'chat',
    );
    // a binary message and a large one come through intact
    const big = 'x'.repeat(200_000);
    expect(await roundTrip(ws, big)).toBe(`echo:${big}`);
    ws.close();
  });

  it('opens a public route’s socket without a session and with no identity', async () => {
    const { ws, status } = await connect('/lobby', { 'x-auth-request-user': 'mallory' });
    expect(status).toBe(101);
    expect(upstream.connections.at(-1)?.header('x-auth-request-user')).toEqual([]);
    ws?.close();
  });

  it.each([
    ['without a session', '/ws', {}, 401, 'UNAUTHENTICATED'],
    [
      'with a forged session cookie',
      '/ws',
      { cookie: 'gatehouse=s%3Aforged.sig' },
      401,
      'UNAUTHENTICATED',
    ],
    ['where no route is', '/nowhere', {}, 404, 'NOT_FOUND'],
    ['under the reserved prefix', '/_gatehouse/ws', {}, 404, 'NOT_FOUND'],
  ])(
    'refuses an upgrade %s with a plain HTTP answer, and the upstream never sees it',
    async (_what, path, headers, status, code) => {
      const attempts = upstream.attempts;
      const res = await connect(path, headers);
      expect(res.status).toBe(status);
      expect(JSON.parse(res.body).error).toBe(code);
      expect(upstream.attempts).toBe(attempts);
    },
  );

  it.each([
    '/lobby/../ws',
    '/lobby/%2e%2e/ws',
    '/lobby%2f..%2fws',
    '/lobby\\..\\ws',
    '/lobby/%c0%ae%c0%ae/ws',
    '//lobby/../ws',
    'http://127.0.0.1/ws',
  ])('refuses an upgrade to the hostile path %s with 400 BAD_PATH', async (path) => {
    const attempts = upstream.attempts;
    const res = await rawUpgrade(path);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toBe('BAD_PATH');
    expect(upstream.attempts).toBe(attempts);
  });

  it('answers 403 to a signed-in user the route does not allow', async () => {
    const cookie = await login('alice');
    const attempts = upstream.attempts;
    const res = await connect('/admin-ws', { cookie });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).error).toBe('FORBIDDEN');
    expect(upstream.attempts).toBe(attempts);
    const rootCookie = await login('root');
    const ok = await connect('/admin-ws', { cookie: rootCookie });
    expect(ok.status).toBe(101);
    ok.ws?.close();
  });

  it('answers 401 to a session that was logged out', async () => {
    const cookie = await login('alice');
    await fetch(`${sessionService.url}/auth/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json' },
      body: '{}',
    });
    expect((await connect('/ws', { cookie })).status).toBe(401);
  });

  it('answers 503 when the session-service cannot be reached', async () => {
    const cookie = await login('alice');
    const res = await connect('/ws', { cookie }, blindBase);
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body).error).toBe('SESSION_SERVICE_UNAVAILABLE');
  });
});

describe('while a WebSocket is open', () => {
  it('closes it on both sides within a few seconds of a logout', async () => {
    const cookie = await login('alice');
    const { ws } = await connect('/ws', { cookie });
    if (!ws) throw new Error('not opened');
    const upstreamSide = upstream.connections.at(-1);
    expect(await roundTrip(ws, 'before')).toBe('echo:before');
    const clientClosed = closed(ws);
    const loggedOut = Date.now();
    const logout = await fetch(`${sessionService.url}/auth/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(logout.status).toBe(204);
    const result = await clientClosed;
    expect(result.code).toBe(1008);
    expect(result.reason).toBe('session ended');
    expect(result.at - loggedOut).toBeLessThan(REVALIDATE_MS * 2 + 1500);
    expect((await upstreamSide?.closed)?.code).toBe(1008);
    await waitFor(() => gateway.websockets.size === 0, 5000, 'the tunnel to be gone');
  });

  it('opens for an access token like for a session (no Origin check: no ambient credential), never passes the token on, and closes when the token is revoked', async () => {
    const { token, record } = await tokens.mint(aliceId);
    const { ws } = await connect('/ws', {
      authorization: `Bearer ${token}`,
      origin: 'https://elsewhere.example',
    });
    if (!ws) throw new Error('not opened');
    const upstreamSide = upstream.connections.at(-1);
    expect(upstreamSide?.header('x-auth-request-user')).toEqual(['alice']);
    expect(upstreamSide?.header('authorization')).toEqual([]);
    expect(upstreamSide?.rawHeaders.join('\n')).not.toContain(token.slice(14));
    expect(await roundTrip(ws, 'token')).toBe('echo:token');
    const clientClosed = closed(ws);
    const revoked = Date.now();
    expect(await tokens.revoke(aliceId, record.id)).toBe(true);
    const result = await clientClosed;
    expect(result.code).toBe(1008);
    expect(result.reason).toBe('session ended');
    expect(result.at - revoked).toBeLessThan(REVALIDATE_MS * 2 + 1500);
    expect((await upstreamSide?.closed)?.code).toBe(1008);
    // a read-only token opens no WebSocket (it could write through it); a bad one is 401
    const { token: readOnly } = await tokens.mint(aliceId, { scope: { readOnly: true } });
    const refused = await connect('/ws', { authorization: `Bearer ${readOnly}` });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body).error).toBe('TOKEN_SCOPE');
    const bad = await connect('/ws', { authorization: `Bearer ${token}` });
    expect(bad.status).toBe(401);
    await waitFor(() => gateway.websockets.size === 0, 5000, 'the tunnel to be gone');
  });

  it('rides out a short session-service outage, and closes when it lasts 3 rounds', async () => {
    const cookie = await login('alice');
    const { ws } = await connect('/ws', { cookie });
    if (!ws) throw new Error('not opened');
    let closedEarly = false;
    ws.once('close', () => {
      closedEarly = true;
    });
    // Redis frozen: validate answers 503 after REDIS_COMMAND_TIMEOUT_MS; at most 2 rounds fail.
    redis.pause();
    await new Promise((r) => setTimeout(r, REVALIDATE_MS * 1.2));
    redis.resume();
    await new Promise((r) => setTimeout(r, REVALIDATE_MS * 3));
    expect(closedEarly).toBe(false);
    expect(await roundTrip(ws, 'still here')).toBe('echo:still here');

    const clientClosed = closed(ws);
    const frozen = Date.now();
    redis.pause();
    try {
      const result = await clientClosed;
      expect(result.code).toBe(1013);
      expect(result.at - frozen).toBeGreaterThanOrEqual(REVALIDATE_MS * 2);
      expect(result.at - frozen).toBeLessThan(REVALIDATE_MS * 6 + 2000);
    } finally {
      redis.resume();
      // The session-service may be replacing its Redis connection after the freeze: the next
      // test starts once it is ready again (without this, its login could meet a 503).
      await untilReady(sessionService.url);
    }
  });

  it('closes the client when the upstream drops the connection, and keeps serving', async () => {
    const cookie = await login('alice');
    const { ws } = await connect('/ws', { cookie });
    if (!ws) throw new Error('not opened');
    const clientClosed = closed(ws);
    upstream.connections.at(-1)?.socket.terminate();
    await clientClosed;
    const again = await connect('/ws', { cookie });
    expect(again.status).toBe(101);
    again.ws?.close();
  });
});

describe('when the WebSocket upstream fails', () => {
  it('answers 502 when it refuses the connection, 504 when it never answers', async () => {
    const cookie = await login('alice');
    const refused = await connect('/dead', { cookie });
    expect(refused.status).toBe(502);
    expect(JSON.parse(refused.body).error).toBe('UPSTREAM_UNAVAILABLE');
    const started = Date.now();
    const hang = await connect('/hang', { cookie });
    expect(hang.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('passes on the upstream’s own refusal of the upgrade', async () => {
    const cookie = await login('alice');
    const res = await connect('/http/not-a-socket', { cookie });
    expect(res.status).toBe(200); // the echo upstream answers plain HTTP
    expect(JSON.parse(res.body).url).toBe('/http/not-a-socket');
  });
});

describe('other upgrades', () => {
  it('serves an h2c upgrade request over HTTP/1.1 instead, with the same checks', async () => {
    const cookie = await login('alice');
    const get = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = http.get(
          `http://${base}/http/h2c`,
          {
            headers: {
              connection: 'Upgrade, HTTP2-Settings',
              upgrade: 'h2c',
              'http2-settings': 'AAMAAABkAAQCAAAAAAIAAAAA',
              ...headers,
            },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
      });
    expect(await get({})).toBe(401);
    expect(await get({ cookie })).toBe(200);
    expect(echo.last().url).toBe('/http/h2c');
    expect(echo.last().header('upgrade')).toEqual([]);
    expect(echo.last().header('http2-settings')).toEqual([]);
  });
});

describe('frame boundaries (unit)', () => {
  it('knows when a byte stream sits between frames', () => {
    const frames = new FrameBoundary();
    expect(frames.atBoundary).toBe(true);
    // masked text frame "hi": 0x81, 0x82, 4 mask bytes, 2 payload bytes
    const frame = Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0x69 ^ 1, 0x69 ^ 2]);
    frames.feed(frame.subarray(0, 3));
    expect(frames.atBoundary).toBe(false);
    frames.feed(frame.subarray(3));
    expect(frames.atBoundary).toBe(true);
    // 16-bit length: 300 bytes, unmasked, split across chunks
    const long = Buffer.concat([Buffer.from([0x82, 126, 1, 44]), Buffer.alloc(300)]);
    frames.feed(long.subarray(0, 100));
    expect(frames.atBoundary).toBe(false);
    frames.feed(long.subarray(100));
    expect(frames.atBoundary).toBe(true);
  });
});
