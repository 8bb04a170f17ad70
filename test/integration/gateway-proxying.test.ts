/**
 * What the gateway's proxy does to a request and its answer, one describe per part of the path
 * (bodies, hop-by-hop headers, X-Forwarded-*, cookies, identity headers, the signed identity,
 * upstream failures). Over 300 lines: all run over one gateway, session-service and echo upstream.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  downloadBytes,
  type EchoUpstream,
  sha256,
  startEchoUpstream,
} from '../helpers/echo-upstream.js';
import { type InProcessGateway, startGateway } from '../helpers/gateway.js';
import { jsonLogin } from '../helpers/login.js';
import { reservedDeadPort } from '../helpers/ports.js';
import { type ServiceProcess, startSessionServiceProcess } from '../helpers/processes.js';
import { rawHttp } from '../helpers/raw-http.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';

let redis: RedisServer;
let sessionService: ServiceProcess;
let echo: EchoUpstream;
let resetServer: net.Server;
let hangServer: net.Server;
/**
 * Answers the first GET on each connection (kept alive), then closes it on the next request; a
 * POST it only counts, and closes the connection without answering.
 */
let staleServer: net.Server;
let staleConnections = 0;
let stalePosts = 0;
const hung: net.Socket[] = [];
const gateways: InProcessGateway[] = [];
/** The gateway trusting loopback (the default TRUST_PROXY) and one trusting nobody. */
let trusting: string;
let untrusting: string;
let unsigned: string;
/** `gatehouse=…` of a session of alice (groups staff). */
let session: string;

async function listenGateway(env: Record<string, string>): Promise<string> {
  const gateway = await startGateway(env);
  gateways.push(gateway);
  return gateway.url;
}

const login = (base: string, username: string) => jsonLogin(base, username, PASSWORD);

/** Send bytes as they are (duplicate headers, odd casing) and read the whole answer. */
const rawRequest = (base: string, text: string) => rawHttp(new URL(base).port, text);

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    { username: 'alice', password: PASSWORD, groups: ['staff'], email: 'alice@example.com' },
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-gw-proxy-'));
  [sessionService, echo] = await Promise.all([
    startSessionServiceProcess({ redisUrl: redis.url, usersFile: users.path }),
    startEchoUpstream(),
  ]);
  // an upstream that resets every connection, and one that accepts and never answers
  resetServer = net.createServer((s) => s.on('data', () => s.resetAndDestroy()));
  hangServer = net.createServer((s) => {
    hung.push(s);
    s.on('error', () => {});
  });
  // A server whose keep-alive ran out just as the gateway reused the connection (the race every
  // keep-alive client meets): it answers once per connection, then closes on the next request.
  staleServer = net.createServer((s) => {
    staleConnections += 1;
    let answered = false;
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      if (d.toString('latin1').startsWith('POST ')) stalePosts += 1;
      if (answered || d.toString('latin1').startsWith('POST ')) return s.destroy();
      answered = true;
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfresh');
    });
  });
  await Promise.all(
    [resetServer, hangServer, staleServer].map(
      (s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve)),
    ),
  );
  const portOf = (s: net.Server) => (s.address() as AddressInfo).port;
  const routesFile = join(dir, 'routes.yaml');
  writeFileSync(
    routesFile,
    `routes:
  - id: app
    upstream: ${echo.url}
  - id: pub
    path: /public
    upstream: ${echo.url}
    public: true
  - id: refused
    path: /refused
    upstream: http://127.0.0.1:${await reservedDeadPort()}
  - id: reset
    path: /reset
    upstream: http://127.0.0.1:${portOf(resetServer)}
  - id: hang
    path: /hang
    upstream: http://127.0.0.1:${portOf(hangServer)}
    timeoutMs: 300
  - id: stale
    path: /stale
    upstream: http://127.0.0.1:${portOf(staleServer)}
`,
  );
  const env = { SESSION_SERVICE_URL: sessionService.url, GATEWAY_ROUTES: routesFile };
  [trusting, untrusting, unsigned] = await Promise.all([
    listenGateway(env),
    listenGateway({ ...env, TRUST_PROXY: 'false' }),
    listenGateway({ ...env, JWT_ENABLED: 'false' }),
  ]);
  session = await login(trusting, 'alice');
});

afterAll(async () => {
  for (const g of gateways) g.close();
  for (const s of hung) s.destroy();
  resetServer?.close();
  hangServer?.close();
  staleServer?.close();
  await echo?.close();
  await sessionService?.stop();
  await redis?.stop();
});

describe('request bodies', () => {
  it('passes a JSON body byte for byte with its content type', async () => {
    const body = JSON.stringify({ name: 'Zoë', list: [1, 2, 3], nested: { ok: true } });
    const res = await fetch(`${trusting}/api/items?x=1`, {
      method: 'POST',
      headers: { cookie: session, 'content-type': 'application/json; charset=utf-8' },
      body,
    });
    expect(res.status).toBe(200);
    const seen = echo.last();
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/api/items?x=1');
    expect(seen.body.toString('utf8')).toBe(body);
    expect(seen.header('content-type')).toEqual(['application/json; charset=utf-8']);
    expect(seen.header('content-length')).toEqual([String(Buffer.byteLength(body))]);
  });

  it('passes a form body unchanged', async () => {
    const body = 'a=1&b=%C3%A9t%C3%A9&c=x+y&c=z';
    await fetch(`${trusting}/form`, {
      method: 'PUT',
      headers: { cookie: session, 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    expect(echo.last().method).toBe('PUT');
    expect(echo.last().body.toString('latin1')).toBe(body);
  });

  it('passes a multipart upload with binary content byte for byte', async () => {
    const file = randomBytes(1024 * 1024);
    const form = new FormData();
    form.append('title', 'report');
    form.append('file', new Blob([file]), 'data.bin');
    const res = await fetch(`${trusting}/upload`, {
      method: 'POST',
      headers: { cookie: session },
      body: form,
    });
    expect(res.status).toBe(200);
    const seen = echo.last();
    const boundary = /boundary=(.+)$/.exec(seen.header('content-type')[0] ?? '')?.[1] ?? '';
    expect(boundary).not.toBe('');
    expect(seen.body.includes(Buffer.from(boundary))).toBe(true);
    expect(seen.body.includes(file)).toBe(true);
    expect((await res.json()).bodyLength).toBe(seen.body.length);
  });

  it('streams a chunked request body and re-frames it as chunked', async () => {
    const { port } = new URL(trusting);
    const parts = ['first;', 'second;', 'third'];
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        { port, method: 'POST', path: '/chunked', headers: { cookie: session } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      let i = 0;
      const next = () => {
        const part = parts[i++];
        if (part === undefined) return void req.end();
        req.write(part);
        setTimeout(next, 20);
      };
      next();
    });
    expect(status).toBe(200);
    const seen = echo.last();
    expect(seen.body.toString()).toBe(parts.join(''));
    expect(seen.header('transfer-encoding')).toEqual(['chunked']);
    expect(seen.header('content-length')).toEqual([]);
  });

  it('passes an empty body as empty', async () => {
    // An empty body: fetch sends Content-Length: 0 itself (undici 7's dispatcher, the process's
    // global one once the gateway loads undici, refuses a hand-set content-length).
    await fetch(`${trusting}/empty`, { method: 'POST', headers: { cookie: session }, body: '' });
    expect(echo.last().body.length).toBe(0);
    expect(echo.last().header('content-length')).toEqual(['0']);
    await fetch(`${trusting}/empty`, { headers: { cookie: session } });
    expect(echo.last().method).toBe('GET');
    expect(echo.last().header('content-length')).toEqual([]);
    expect(echo.last().header('transfer-encoding')).toEqual([]);
  });
});

describe('response bodies', () => {
  it('streams a 20 MB download intact', async () => {
    const size = 20 * 1024 * 1024;
    const res = await fetch(`${trusting}/files/big.bin?download=${size}`, {
      headers: { cookie: session },
    });
    expect(res.status).toBe(200);
    const data = Buffer.from(await res.arrayBuffer());
    expect(data.length).toBe(size);
    expect(sha256(data)).toBe(sha256(downloadBytes(size)));
  });

  it('delivers server-sent events as they come: the first arrives before the second is sent', async () => {
    const res = await fetch(`${trusting}/events?sse=2`, {
      headers: { cookie: session, accept: 'text/event-stream' },
    });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body?.getReader();
    if (!reader) throw new Error('no body');
    const decoder = new TextDecoder();
    let text = '';
    // The upstream holds the second event until nextEvent(): a buffering proxy never gets here.
    while (!text.includes('data: event 1\n\n')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    expect(text).toBe('id: 1\ndata: event 1\n\n');
    echo.nextEvent();
    while (!text.includes('data: event 2\n\n')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    expect(text).toContain('id: 2\ndata: event 2\n\n');
    await reader.cancel();
  });

  it('passes statuses without a body (204, 304) as they are', async () => {
    const a = await fetch(`${trusting}/x?status=204`, { headers: { cookie: session } });
    expect(a.status).toBe(204);
    const b = await fetch(`${trusting}/x?status=304`, { headers: { cookie: session } });
    expect(b.status).toBe(304);
  });

  it('answers HEAD with the headers of a download and no body: the next request on the same connection is intact', async () => {
    // One kept-alive connection: a stray body after the HEAD answer would corrupt the next one.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ask = (method: string, path: string) =>
      new Promise<{ status: number; length: string | undefined; body: string }>(
        (resolve, reject) => {
          http
            .request(
              `${trusting}${path}`,
              { method, agent, headers: { cookie: session } },
              (res) => {
                let body = '';
                res.on('data', (d: Buffer) => {
                  body += d.toString();
                });
                res.on('end', () =>
                  resolve({
                    status: res.statusCode ?? 0,
                    length: res.headers['content-length'],
                    body,
                  }),
                );
              },
            )
            .on('error', reject)
            .end();
        },
      );
    try {
      const head = await ask('HEAD', '/files/big.bin?download=100000');
      expect(head.status).toBe(200);
      expect(echo.last().method).toBe('HEAD');
      expect(head.body).toBe('');
      const next = await ask('GET', '/after-head');
      expect(next.status).toBe(200);
      expect(JSON.parse(next.body).url).toBe('/after-head');
    } finally {
      agent.destroy();
    }
  });
});

describe('hop-by-hop headers', () => {
  it('forwards none of them, nor the headers Connection lists, and keeps end-to-end ones', async () => {
    const { status } = await rawRequest(
      trusting,
      [
        'GET /hop HTTP/1.1',
        'Host: gateway.test',
        `Cookie: ${session}`,
        'Connection: close, X-Hop-Secret',
        'X-Hop-Secret: listed in Connection',
        'Keep-Alive: timeout=5',
        'TE: trailers',
        'Trailer: X-Checksum',
        'Proxy-Connection: keep-alive',
        'Proxy-Authorization: Basic dXNlcjpwYXNz',
        'X-End-To-End: kept',
        '',
        '',
      ].join('\r\n'),
    );
    expect(status).toBe(200);
    const seen = echo.last();
    for (const name of [
      'x-hop-secret',
      'keep-alive',
      'te',
      'trailer',
      'proxy-connection',
      'proxy-authorization',
      'upgrade',
    ])
      expect(seen.header(name), name).toEqual([]);
    // the gateway's own connection to the upstream, never the client's
    expect(seen.header('connection')).toEqual(['keep-alive']);
    expect(seen.header('x-end-to-end')).toEqual(['kept']);
    expect(seen.header('host')).toEqual([new URL(echo.url).host]);
  });

  it('drops the hop-by-hop headers of the answer too', async () => {
    const res = await fetch(`${trusting}/hop?hopByHop=1`, { headers: { cookie: session } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-secret-hop')).toBeNull();
    expect(res.headers.get('proxy-connection')).toBeNull();
    expect(res.headers.get('x-end-to-end')).toBe('kept');
    expect(await res.text()).toBe('ok');
  });
});

describe('X-Forwarded-*', () => {
  const spoofed = {
    'x-forwarded-for': '203.0.113.9',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'public.example.com',
    'x-real-ip': '203.0.113.9',
    forwarded: 'for=203.0.113.9',
  };

  it('keeps a trusted proxy’s values and appends the real peer', async () => {
    await fetch(`${trusting}/fwd`, { headers: { cookie: session, ...spoofed } });
    const seen = echo.last();
    expect(seen.header('x-forwarded-for')).toEqual(['203.0.113.9, 127.0.0.1']);
    expect(seen.header('x-forwarded-proto')).toEqual(['https']);
    expect(seen.header('x-forwarded-host')).toEqual(['public.example.com']);
    // X-Real-IP and Forwarded never pass from the client: the gateway sets X-Real-IP itself, to
    // the client address the trusted chain gives.
    expect(seen.header('x-real-ip')).toEqual(['203.0.113.9']);
    expect(seen.header('forwarded')).toEqual([]);
  });

  it('replaces an untrusted peer’s values with the real connection’s', async () => {
    const session2 = await login(untrusting, 'alice');
    const res = await fetch(`${untrusting}/fwd`, { headers: { cookie: session2, ...spoofed } });
    expect(res.status).toBe(200);
    const seen = echo.last();
    const host = new URL(untrusting).host;
    expect(seen.header('x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(seen.header('x-forwarded-proto')).toEqual(['http']);
    expect(seen.header('x-forwarded-host')).toEqual([host]);
    expect(seen.header('x-real-ip')).toEqual(['127.0.0.1']);
    expect(seen.header('forwarded')).toEqual([]);
  });
});

describe('cookies', () => {
  it('removes the session cookie (any of its names) and passes the others unchanged', async () => {
    await fetch(`${trusting}/c`, {
      headers: { cookie: `theme=dark; ${session}; __Host-gatehouse=s%3Aabc; lang="en-GB"` },
    });
    expect(echo.last().header('cookie')).toEqual(['theme=dark; lang="en-GB"']);
  });

  it('drops the Cookie header when only the session cookie was in it', async () => {
    await fetch(`${trusting}/c`, { headers: { cookie: session } });
    expect(echo.last().header('cookie')).toEqual([]);
  });
});

describe('identity headers', () => {
  const spoofLines = [
    'X-Auth-Request-User: mallory',
    'x-auth-request-user: mallory2',
    'X-AUTH-REQUEST-USER: mallory3',
    'X-Auth-Request-Groups: admins',
    'x-auth-request-groups: root',
    'X-Auth-Request-Email: m@evil.example',
    'X-Auth-Request-Expires: 2999-01-01T00:00:00.000Z',
    'X-Auth-Request-Jwt: eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.',
    'X_Auth_Request_User: underscore',
    'x_auth_request_groups: admins',
    'X-Forwarded-User: mallory',
    'X-Forwarded-Groups: admins',
    'Remote-User: mallory',
    'REMOTE-USER: mallory',
    'X_Forwarded_For: 6.6.6.6',
    'X_Request_Id: spoofed',
  ];
  /** GET `path` from the trusted address with every spoofed line (and `lines` before them). */
  const spoofedGet = (path: string, lines: string[] = []) =>
    rawRequest(
      trusting,
      [`GET ${path} HTTP/1.1`, 'Host: gateway.test', ...lines, ...spoofLines, 'Connection: close']
        .concat('', '')
        .join('\r\n'),
    );
  /** The header names as sent, lower-cased (rawHeaders alternates name and value). */
  const rawNamesOf = (rawHeaders: string[]) =>
    rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  const managed = [
    'x-auth-request-user',
    'x-auth-request-groups',
    'x-auth-request-email',
    'x-auth-request-expires',
    'x-auth-request-jwt',
  ];

  it('replaces every client copy, in any casing and number, with the session’s identity', async () => {
    const { status } = await spoofedGet('/who', [`Cookie: ${session}`]);
    expect(status).toBe(200);
    const seen = echo.last();
    expect(seen.header('x-auth-request-user')).toEqual(['alice']);
    expect(seen.header('x-auth-request-groups')).toEqual(['staff']);
    expect(seen.header('x-auth-request-email')).toEqual(['alice@example.com']);
    expect(seen.header('x-auth-request-expires')).toHaveLength(1);
    expect(seen.header('x-auth-request-expires')[0]).not.toContain('2999');
    expect(seen.header('x-auth-request-jwt').join()).not.toContain('eyJhbGciOiJub25lIn0');
    const names = rawNamesOf(seen.rawHeaders);
    for (const name of ['x_auth_request_user', 'x_auth_request_groups', 'x_forwarded_for'])
      expect(names).not.toContain(name);
    for (const name of ['x-forwarded-user', 'x-forwarded-groups', 'remote-user'])
      expect(seen.header(name), name).toEqual([]);
    expect(seen.header('x-request-id')).toHaveLength(1);
    expect(seen.header('x-request-id')[0]).not.toBe('spoofed');
  });

  it('strips them all on a public route and adds none', async () => {
    const { status } = await spoofedGet('/public/page');
    expect(status).toBe(200);
    const seen = echo.last();
    expect(seen.url).toBe('/public/page');
    for (const name of [...managed, 'x-forwarded-user', 'remote-user'])
      expect(seen.header(name), name).toEqual([]);
    const names = rawNamesOf(seen.rawHeaders);
    expect(names).not.toContain('x_auth_request_user');
  });

  it('answers 401 to a spoofed identity without a session', async () => {
    const { status } = await spoofedGet('/who');
    expect(status).toBe(401);
  });
});

describe('signed identity (X-Auth-Request-Jwt)', () => {
  const payloadOf = (jwt: string) =>
    JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as Record<
      string,
      unknown
    >;

  it('passes the session-service’s JWT for the route (aud = route id) to the upstream', async () => {
    await fetch(`${trusting}/jwt`, { headers: { cookie: session } });
    const [jwt] = echo.last().header('x-auth-request-jwt');
    expect(jwt).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const payload = payloadOf(jwt ?? '');
    expect(payload.aud).toBe('app');
    expect(payload.sub ?? payload.name).toBeTruthy();
  });

  it('asks for none when JWT_ENABLED=false', async () => {
    const session3 = await login(unsigned, 'alice');
    const res = await fetch(`${unsigned}/jwt`, { headers: { cookie: session3 } });
    expect(res.status).toBe(200);
    expect(echo.last().header('x-auth-request-jwt')).toEqual([]);
    expect(echo.last().header('x-auth-request-user')).toEqual(['alice']);
  });
});

describe('when the upstream fails', () => {
  it('answers 502 when the connection is refused (JSON, or a page for browsers)', async () => {
    const res = await fetch(`${trusting}/refused/x`, { headers: { cookie: session } });
    expect(res.status).toBe(502);
    expect((await res.json()).error).toBe('UPSTREAM_UNAVAILABLE');
    const page = await fetch(`${trusting}/refused/x`, {
      headers: { cookie: session, accept: 'text/html' },
    });
    expect(page.status).toBe(502);
    expect(page.headers.get('content-type')).toContain('text/html');
  });

  it('answers 502 when the upstream resets the connection', async () => {
    const res = await fetch(`${trusting}/reset/x`, { headers: { cookie: session } });
    expect(res.status).toBe(502);
    expect((await res.json()).error).toBe('UPSTREAM_UNAVAILABLE');
  });

  it('answers 504 after the route’s timeoutMs when the upstream never answers', async () => {
    const started = Date.now();
    const res = await fetch(`${trusting}/hang/x`, { headers: { cookie: session } });
    expect(res.status).toBe(504);
    expect((await res.json()).error).toBe('UPSTREAM_TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(3000);
    const page = await fetch(`${trusting}/hang/x`, {
      headers: { cookie: session, accept: 'text/html' },
    });
    expect(page.status).toBe(504);
    expect(await page.text()).toContain('<h1>');
  });

  it('retries a GET once on a new connection when the upstream closed the kept-alive one it reused; never a request with a body', async () => {
    const first = await fetch(`${trusting}/stale/a`, { headers: { cookie: session } });
    expect(first.status).toBe(200);
    expect(await first.text()).toBe('fresh');
    const before = staleConnections;
    // Reuses the kept-alive connection, which the upstream closes: retried on a new one.
    const again = await fetch(`${trusting}/stale/b`, { headers: { cookie: session } });
    expect(again.status).toBe(200);
    expect(await again.text()).toBe('fresh');
    expect(staleConnections).toBe(before + 1);
    // A request with a body may have been acted upon: never sent twice; the client hears 502.
    const posted = await fetch(`${trusting}/stale/c`, {
      method: 'POST',
      headers: { cookie: session, 'content-type': 'text/plain' },
      body: 'pay once',
    });
    expect(posted.status).toBe(502);
    expect(stalePosts).toBe(1);
  });

  it('keeps serving afterwards', async () => {
    const res = await fetch(`${trusting}/still-alive`, { headers: { cookie: session } });
    expect(res.status).toBe(200);
  });
});
