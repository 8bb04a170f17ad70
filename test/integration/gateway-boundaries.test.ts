/**
 * The gateway's trust boundaries end to end, on real processes: a real session-service on a real
 * Redis, the gateway in-process, and backends that try what an attacker's backend (or an
 * attacker's page) would. Each describe names the class of issue 11 it closes; the unit tables of
 * the same policies are in test/unit/gateway-policies.test.ts.
 *
 * Over 300 lines: one describe per class of issue 11 over one fixture; kept together so the file
 * reads as the list of boundaries.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { AUTHENTICATION_HEADERS } from '../../common/src/authentication.js';
import { MAX_COOKIE_BYTES, MAX_HEADER_FIELDS } from '../../common/src/limits.js';
import { FORWARDING, IDENTITY, OVERRIDES } from '../../gateway/src/request-headers.js';
import { startGateway } from '../helpers/gateway.js';
import { jsonLogin } from '../helpers/login.js';
import { reservedDeadPort } from '../helpers/ports.js';
import { type ServiceProcess, startSessionServiceProcess } from '../helpers/processes.js';
import { rawHttp } from '../helpers/raw-http.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { spellings } from '../helpers/spellings.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';

/** What the hostile backend received, newest last. */
const received: Array<{ url: string; rawHeaders: string[] }> = [];
const upgrades: string[] = [];
let backend: http.Server;
let backendUrl: string;
let redis: RedisServer;
let sessionService: ServiceProcess;
let base: string;
let port: number;
/** A gateway whose session-service is not there. */
let blindBase: string;
/** A gateway that gives up on /auth/ bodies after 300 ms. */
let impatientBase: string;
let metricsServer: http.Server;
let metricsUrl: string;
let session: string;
const cleanups: Array<() => void> = [];

function header(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]?.toLowerCase() === name) out.push(raw[i + 1] ?? '');
  return out;
}

/**
 * A backend that records what it got and answers what the query asks: `?cookie=<Set-Cookie
 * line>` (repeatable), `?clear=1` (Clear-Site-Data), `?jwt=1` (X-Auth-Request-Jwt), `?type=`
 * (Content-Type, default text/html), `?cc=` (Cache-Control). WebSocket upgrades are accepted
 * with a Set-Cookie of the session cookie in the 101 answer.
 */
async function startHostileBackend() {
  const server = http.createServer((req: IncomingMessage, res) => {
    received.push({ url: req.url ?? '', rawHeaders: [...req.rawHeaders] });
    req.resume();
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const headers: Array<[string, string]> = [
      ['Content-Type', query.get('type') ?? 'text/html; charset=utf-8'],
    ];
    for (const line of query.getAll('cookie')) headers.push(['Set-Cookie', line]);
    if (query.get('clear')) headers.push(['Clear-Site-Data', '"cookies", "storage"']);
    if (query.get('jwt')) headers.push(['X-Auth-Request-Jwt', 'aaa.bbb.ccc']);
    const cc = query.get('cc');
    if (cc) headers.push(['Cache-Control', cc]);
    res.writeHead(200, headers.flat());
    res.end('<p>private page of the backend</p>');
  });
  const wss = new WebSocketServer({ server });
  wss.on('headers', (headers, req) => {
    upgrades.push(req.url ?? '');
    headers.push('Set-Cookie: gatehouse=s%3Aattacker; Path=/', 'Set-Cookie: app=1');
  });
  wss.on('connection', (socket) => socket.on('message', (m: Buffer) => socket.send(`echo:${m}`)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const c of wss.clients) c.terminate();
    server.closeAllConnections();
    server.close();
  });
  return server;
}

async function listenGateway(env: Record<string, string>) {
  const gateway = await startGateway(env);
  cleanups.push(gateway.close);
  return gateway;
}

/** Writes a request as is and reads the whole answer (the connection is closed after it). */
const raw = (request: string, toPort = port) => rawHttp(toPort, request);

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    { username: 'alice', password: PASSWORD, groups: ['staff'] },
  ]);
  sessionService = await startSessionServiceProcess({ redisUrl: redis.url, usersFile: users.path });
  backend = await startHostileBackend();
  backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-boundaries-'));
  const routesFile = join(dir, 'routes.yaml');
  writeFileSync(
    routesFile,
    JSON.stringify({
      routes: [
        { id: 'app', path: '/', upstream: backendUrl },
        { id: 'pub', path: '/pub', upstream: backendUrl, public: true },
        { id: 'own-caching', path: '/own-caching', upstream: backendUrl, cache: 'upstream' },
        {
          id: 'live',
          path: '/live',
          upstream: backendUrl,
          websocketOrigins: ['https://partner.example.net'],
        },
        // Only nobody may use the admin host: a Host that skipped this route would be a bypass.
        {
          id: 'admin',
          host: 'admin.example.com',
          upstream: backendUrl,
          allow: { users: ['nobody'] },
        },
      ],
    }),
  );
  const env = { SESSION_SERVICE_URL: sessionService.url, GATEWAY_ROUTES: routesFile };
  ({ port, url: base } = await listenGateway(env));
  const blind = await listenGateway({
    ...env,
    SESSION_SERVICE_URL: `http://127.0.0.1:${await reservedDeadPort()}`,
  });
  blindBase = blind.url;
  impatientBase = (await listenGateway({ ...env, AUTH_BODY_TIMEOUT_MS: '300' })).url;
  metricsServer = http.createServer((req, res) => void blind.app.serveMetrics(req, res));
  await new Promise<void>((resolve) => metricsServer.listen(0, '127.0.0.1', resolve));
  metricsUrl = `http://127.0.0.1:${(metricsServer.address() as AddressInfo).port}`;
  cleanups.push(() => metricsServer.close());

  session = await jsonLogin(base, 'alice', PASSWORD);
  expect(session).toMatch(/^gatehouse=s%3A/);
});

afterAll(async () => {
  for (const cleanup of cleanups) cleanup();
  await sessionService?.stop();
  await redis?.stop();
});

describe('upstream → browser: backends never write Gatehouse cookies (class 3)', () => {
  const names = [
    'gatehouse',
    'GATEHOUSE',
    '__Host-gatehouse',
    '__HOST-gatehouse',
    '__Secure-gatehouse',
    'gatehouse-csrf',
    '__Host-gatehouse-csrf',
  ];
  const attrs = [
    '; Path=/',
    '; Path=/auth; Domain=127.0.0.1',
    '; Max-Age=0',
    '; Secure; SameSite=None',
  ];
  for (const path of ['/page', '/pub/page']) {
    it(`drops ${names.length * attrs.length} spellings from ${path} (protected and public routes), keeping the app's own`, async () => {
      const query = new URLSearchParams();
      for (const name of names)
        for (const a of attrs) query.append('cookie', `${name}=s%3Aattacker.sig${a}`);
      query.append('cookie', 'app-pref=dark; Path=/');
      query.set('clear', '1');
      query.set('jwt', '1');
      const res = await fetch(`${base}${path}?${query}`, { headers: { cookie: session } });
      expect(res.status).toBe(200);
      expect(res.headers.getSetCookie()).toEqual(['app-pref=dark; Path=/']);
      expect(res.headers.get('clear-site-data')).toBeNull();
      expect(res.headers.get('x-auth-request-jwt')).toBeNull();
      // The session is intact afterwards.
      expect((await fetch(`${base}/again`, { headers: { cookie: session } })).status).toBe(200);
    });
  }

  it('drops them from a 101 WebSocket answer too', async () => {
    const setCookies = await new Promise<string[]>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/live`, { headers: { cookie: session } });
      ws.once('upgrade', (res) => {
        resolve(([] as string[]).concat(res.headers['set-cookie'] ?? []));
        ws.close();
      });
      ws.once('error', reject);
    });
    expect(setCookies).toEqual(['app=1']);
  });

  it('passes none of Gatehouse’s cookies to a backend (session and CSRF, any prefix)', async () => {
    const login = await fetch(`${base}/auth/login`, { headers: { accept: 'text/html' } });
    const csrf = login.headers.getSetCookie().find((c) => c.startsWith('gatehouse-csrf='));
    expect(csrf).toBeDefined();
    const cookie = `theme=dark; ${csrf?.split(';')[0]}; ${session}; __Host-gatehouse=x; __Secure-gatehouse-csrf=y`;
    await fetch(`${base}/cookies`, { headers: { cookie } });
    expect(header(received.at(-1)?.rawHeaders ?? [], 'cookie')).toEqual(['theme=dark']);
  });
});

describe('client → upstream: forwarding and override headers (class 4)', () => {
  const names = [
    ...FORWARDING,
    ...OVERRIDES,
    'x-forwarded-port',
    'x-forwarded-prefix',
    'x-forwarded-server',
  ];
  it(`no spelling of ${names.length} forwarding and override names reaches the backend`, async () => {
    const headers = new Headers({ cookie: session });
    for (const name of names)
      for (const spelling of spellings(name)) headers.append(spelling, `evil-${name}`);
    const res = await fetch(`${base}/admin/delete-all`, { headers });
    expect(res.status).toBe(200);
    const seen = received.at(-1);
    expect(seen?.url).toBe('/admin/delete-all');
    const values = (seen?.rawHeaders ?? []).filter((_v, i) => i % 2 === 1);
    expect(values.filter((v) => v.startsWith('evil-'))).toEqual([]);
    expect(header(seen?.rawHeaders ?? [], 'x-real-ip')).toEqual(['127.0.0.1']);
  });

  // Who the user is and how they signed in (X-Auth-Request-Amr, -Acr, -Auth-Time): the gateway's.
  const identity = [...IDENTITY];
  it(`no spelling of ${identity.length} identity and authentication names reaches the backend; the gateway's arrive once`, async () => {
    for (const name of AUTHENTICATION_HEADERS) expect(identity).toContain(name);
    for (const path of ['/page', '/pub/page']) {
      const headers = new Headers({ cookie: session });
      for (const name of identity)
        for (const spelling of spellings(name)) headers.append(spelling, `evil-${name}`);
      expect((await fetch(`${base}${path}`, { headers })).status, path).toBe(200);
      const seen = received.at(-1)?.rawHeaders ?? [];
      expect(
        seen.filter((v, i) => i % 2 === 1 && v.startsWith('evil-')),
        path,
      ).toEqual([]);
      const signedIn = path !== '/pub/page';
      expect(header(seen, 'x-auth-request-user'), path).toEqual(signedIn ? ['alice'] : []);
      expect(header(seen, 'x-auth-request-amr'), path).toEqual(signedIn ? ['pwd'] : []);
      expect(header(seen, 'x-auth-request-acr'), path).toEqual(signedIn ? ['aal1'] : []);
      expect(header(seen, 'x-auth-request-auth-time'), path).toHaveLength(signedIn ? 1 : 0);
    }
  });
});

describe('Host (class 5)', () => {
  const malformed = [
    'admin.example.com:80:80',
    'admin.example.com:abc',
    'admin.example.com:99999',
    'admin.example.com:',
    'admin.example.com@127.0.0.1',
    '127.0.0.1@admin.example.com',
    'admin.example.com/x',
    '[admin.example.com]',
    'admin.example.com, other.example',
  ];
  it.each(malformed)('answers 400 BAD_HOST to Host %j and sends nothing upstream', async (host) => {
    const before = received.length;
    const res = await raw(
      `GET /x HTTP/1.1\r\nHost: ${host}\r\nCookie: ${session}\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'BAD_HOST' });
    expect(received.length).toBe(before);
  });

  it('refuses two Host headers', async () => {
    const res = await raw(
      `GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(400);
  });

  it('routes every valid spelling of the admin host to its route (403 for alice)', async () => {
    for (const host of [
      'admin.example.com',
      'ADMIN.example.com',
      'admin.example.com.',
      'admin.example.com:8080',
    ]) {
      const res = await raw(
        `GET /x HTTP/1.1\r\nHost: ${host}\r\nCookie: ${session}\r\nConnection: close\r\n\r\n`,
      );
      expect(res.status, host).toBe(403);
    }
  });
});

describe('limits (class 6): 431 with a message, never a silent truncation or a login loop', () => {
  it('answers 431 to a Cookie header between 8 and 16 KiB, for browsers too (no redirect to login)', async () => {
    const padding = `pad=${'x'.repeat(MAX_COOKIE_BYTES)}`;
    const res = await fetch(`${base}/page`, {
      headers: { cookie: `${session}; ${padding}`, accept: 'text/html' },
      redirect: 'manual',
    });
    expect(res.status).toBe(431);
    expect(await res.text()).toContain('Clear the cookies');
  });

  it(`answers 431 past ${MAX_HEADER_FIELDS} header fields; at the limit the gateway's own headers all arrive`, async () => {
    const many = (n: number) =>
      Array.from({ length: n }, (_v, i) => `X-Filler-${i}: v\r\n`).join('');
    const over = await raw(
      `GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${session}\r\n${many(MAX_HEADER_FIELDS)}Connection: close\r\n\r\n`,
    );
    expect(over.status).toBe(431);
    const before = received.length;
    const at = await raw(
      `POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${session}\r\nContent-Length: 5\r\n${many(MAX_HEADER_FIELDS - 4)}Connection: close\r\n\r\nhello`,
    );
    expect(at.status).toBe(200);
    expect(received.length).toBe(before + 1);
    const seen = received.at(-1)?.rawHeaders ?? [];
    expect(header(seen, 'x-auth-request-user')).toEqual(['alice']);
    expect(header(seen, 'content-length')).toEqual(['5']);
  });

  it('answers 431 JSON (not a bare status line) when the header section passes 16 KiB', async () => {
    const res = await raw(
      `GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'y'.repeat(17 * 1024)}\r\n\r\n`,
    );
    expect(res.status).toBe(431);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'HEADERS_TOO_LARGE' });
  });
});

describe('internal endpoints (class 8)', () => {
  const spellingsOfMetrics = [
    '/_gatehouse/metrics',
    '/_gatehouse/metrics/',
    '/_gatehouse/Metrics',
    '/_gatehouse/METRICS',
    '/_gatehouse/%6detrics',
    '/_gatehouse/metrics;x',
    '/_gatehouse/metrics?x=1',
    '/_gatehouse/healthz/',
    '/_gatehouse/Healthz',
  ];
  it.each(spellingsOfMetrics)(
    'answers 404 to %s on the public port, and nothing reaches a backend',
    async (path) => {
      const before = received.length;
      const res = await fetch(`${base}${path}`, { headers: { cookie: session } });
      expect(res.status).toBe(404);
      expect(await res.text()).not.toContain('gatehouse_');
      expect(received.length).toBe(before);
    },
  );

  it('serves /_gatehouse/healthz exactly, and metrics on their own listener', async () => {
    expect((await fetch(`${base}/_gatehouse/healthz`)).status).toBe(200);
    const metrics = await fetch(`${metricsUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('gatehouse_gateway_auth_total');
    expect((await fetch(`${metricsUrl}/metrics/`)).status).toBe(404);
    expect((await fetch(`${metricsUrl}/Metrics`)).status).toBe(404);
  });
});

describe('session-service down (class 11)', () => {
  for (const [method, path] of [
    ['GET', '/auth/login'],
    ['POST', '/auth/login'],
    ['POST', '/auth/logout'],
    ['GET', '/auth/validate'],
    ['GET', '/page'],
  ] as const) {
    it(`${method} ${path} answers 503 SESSION_SERVICE_UNAVAILABLE`, async () => {
      const res = await fetch(`${blindBase}${path}`, {
        method,
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          cookie: session,
        },
        ...(method === 'POST' ? { body: '{"username":"alice","password":"x"}' } : {}),
      });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: 'SESSION_SERVICE_UNAVAILABLE' });
      expect(res.headers.get('retry-after')).toBe('1');
    });
  }
});

describe('cache policy of protected pages (class 13)', () => {
  it('adds no-store to protected HTML sent without a policy; keeps the app’s own; opt-out per route', async () => {
    const cc = async (path: string) =>
      (await fetch(`${base}${path}`, { headers: { cookie: session } })).headers.get(
        'cache-control',
      );
    expect(await cc('/page')).toBe('no-store');
    expect(await cc('/page?type=application/json')).toBe('private');
    expect(await cc('/page?cc=max-age%3D60')).toBe('max-age=60');
    expect(await cc('/own-caching/page')).toBeNull();
    expect(await cc('/pub/page')).toBeNull();
  });
});

describe('slow bodies to /auth/* (class 14)', () => {
  it('reads a body whole before asking the session-service: 408 for one too slow, and logins go on meanwhile', async () => {
    const slow = Array.from({ length: 20 }, () => {
      const socket = net.connect(Number(new URL(impatientBase).port), '127.0.0.1');
      socket.write(
        'POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user',
      );
      return new Promise<string>((resolve) => {
        let data = '';
        socket.on('data', (d: Buffer) => {
          data += d.toString();
        });
        socket.on('close', () => resolve(data));
        socket.on('error', () => resolve(data));
      });
    });
    const login = await fetch(`${impatientBase}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ username: 'alice', password: PASSWORD }),
    });
    expect(login.status).toBe(200);
    for (const answer of await Promise.all(slow)) expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('answers 413 to a body over 64 KiB without passing it on', async () => {
    const res = await fetch(`${base}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ username: 'alice', password: 'x'.repeat(70 * 1024) }),
    });
    expect(res.status).toBe(413);
  });
});

describe('cross-site WebSocket hijacking (class 2)', () => {
  const open = (origin: string | undefined, path = '/live', extra: Record<string, string> = {}) =>
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, {
        headers: { cookie: session, ...extra },
        ...(origin ? { origin } : {}),
      });
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      ws.once('error', reject);
    });

  it.each([
    'http://evil.127.0.0.1.nip.io',
    'http://127.0.0.1:1', // same host, another port
    'https://127.0.0.1', // another scheme
    'http://localhost', // another name for the same machine
    'null',
    'http://127.0.0.1.evil.net',
    'https://partner.example.net.evil.org',
  ])('refuses Origin %s with 403 before the backend hears of it', async (origin) => {
    const before = upgrades.length;
    expect(await open(origin.replace('127.0.0.1:1', `127.0.0.1:${port + 1}`))).toBe(403);
    expect(upgrades.length).toBe(before);
  });

  it('refuses Sec-Fetch-Site cross-site and same-site without a listed Origin', async () => {
    expect(await open(undefined, '/live', { 'sec-fetch-site': 'same-site' })).toBe(403);
    expect(await open(undefined, '/live', { 'sec-fetch-site': 'cross-site' })).toBe(403);
  });

  it('opens from its own origin, from a listed one, and from a client that sends no Origin', async () => {
    expect(await open(`http://127.0.0.1:${port}`)).toBe(101);
    expect(
      await open('https://partner.example.net', '/live', { 'sec-fetch-site': 'cross-site' }),
    ).toBe(101);
    expect(await open(undefined)).toBe(101);
    // The allow-list is per route: the partner may not open sockets on another route.
    expect(await open('https://partner.example.net', '/other')).toBe(403);
  });
});
