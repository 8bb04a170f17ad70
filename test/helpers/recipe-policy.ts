/**
 * Over 300 lines on purpose: the one policy every way in is held to; split, a recipe could be held to part of it.
 *
 * One policy for every way in: the nginx templates, the Caddy and HAProxy recipes in examples/
 * are each held to the same table-driven assertions, over HTTP/1.1 and HTTP/2 (ALPN h2), against
 * a real session-service, Redis and an upstream that records what it received.
 *
 * describeRecipePolicy(name, start) starts Redis, the session-service (a real process), the
 * upstream, then `start` (the proxy in front of them), and declares the tests:
 *   - a browser without a session goes to /auth/login with rd = the path and query it asked for
 *     (a client-sent X-Forwarded-Uri changes nothing); an API client gets 401 JSON; neither reaches
 *     the upstream;
 *   - signed in through the proxy (login page and form on its origin), the upstream receives the
 *     validated identity, how the session signed in (X-Auth-Request-Amr, -Acr, -Auth-Time: a
 *     password, aal1, just now) and a signed identity for the recipe's audience;
 *   - no spelling of any identity header a client sends reaches the upstream (signed in or not);
 *   - the upstream never receives the session cookie, and receives the other cookies;
 *   - no signed identity goes back to a client (from the upstream, /auth/validate, /internal/);
 *   - access tokens (`Authorization: Bearer gatehouse_…`): the upstream receives the identity and
 *     a signed identity naming the token by its id (tok), never the token, while the app's own
 *     Authorization (Basic, another Bearer) passes; a bad token is 401 JSON with WWW-Authenticate
 *     for browsers too (never the login redirect, never a cookie); a revoked token is refused;
 *     a flood of bad tokens is 429 with Retry-After (validate's), not 503;
 *   - fail closed: validate's 503 (Redis down) is 503; a session-service that is down is exactly
 *     503 SESSION_SERVICE_UNAVAILABLE (JSON for API clients, a page naming the code for browsers)
 *     on protected paths and on /auth/login (GET and POST), never a 502; nothing reaches the
 *     upstream.
 * The last test stops the session-service: it runs last.
 */
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS } from '../../common/src/errors.js';
import { IDENTITY_HEADERS } from '../../common/src/identity.js';
import { createAssertionVerifier } from '../../common/src/verify-identity.js';
import { newToken } from '../../session-service/src/domain/access-tokens.js';
import { type TestTokens, testTokens } from './access-tokens.js';
import { CookieJar } from './cookie-jar.js';
import { h2Fetch } from './h2.js';
import { waitFor } from './ports.js';
import {
  type ServiceProcess,
  startSessionServiceProcess,
  TEST_INTERNAL_TOKEN,
  untilReady,
} from './processes.js';
import { rawHttpsRequest } from './raw-https.js';
import { killAndWait, type RedisServer, startRedis } from './redis.js';
import { spellings } from './spellings.js';
import { writeTestUsers } from './users.js';

export const PASSWORD = 'correct horse battery staple';
/** The one user the policy signs in. */
export const ALICE = {
  username: 'alice',
  password: PASSWORD,
  groups: ['staff', 'ops'],
  email: 'alice@example.com',
};
const BROWSER_ACCEPTS = [
  'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8',
  'text/html',
  'text/html;q=0.9, */*;q=0.1',
];
const API_ACCEPTS = ['application/json', '*/*', 'application/json, text/plain, */*', undefined];
/** Where a browser without a session may ask to go: rd must bring it back there exactly. */
const TARGETS = [
  '/',
  '/reports',
  '/reports/2026/q1/',
  '/reports?year=2024',
  '/reports?year=2024&q=a&page=2',
  '/a/b.html?x=1&y=two&z=',
  '/internal/validate?aud=default',
];

export type Transport = 'http/1.1' | 'h2';
export const TRANSPORTS: readonly Transport[] = ['http/1.1', 'h2'];

/** One request over `transport`: header names as given (HTTP/2 lowercases them). */
export async function send(
  transport: Transport,
  url: string,
  init: { method?: string; headers?: Array<[string, string]>; body?: string; ca: string },
): Promise<Response> {
  const { response, alpn } =
    transport === 'h2' ? await h2Fetch(url, init) : await rawHttpsRequest(url, init);
  expect(alpn, `ALPN for ${transport}`).toBe(transport);
  return response;
}

/** One request as the upstream received it. */
export interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  /** Every value of a header, any casing and `_` for `-` (what a CGI-style app would read). */
  read(name: string): string[];
}

/**
 * An upstream that records every request and answers 200 JSON; `/leak` answers with the headers
 * no client may receive (X-Auth-Request-Jwt, X-Auth-Request-Access-Token), as a careless app might.
 */
export async function startRecordingUpstream() {
  const received: Seen[] = [];
  const server = http.createServer((req: IncomingMessage, res) => {
    const rawHeaders = [...req.rawHeaders];
    received.push({
      method: req.method ?? '',
      url: req.url ?? '',
      rawHeaders,
      read(name) {
        const want = name.toLowerCase().replaceAll('_', '-');
        const out: string[] = [];
        for (let i = 0; i < rawHeaders.length; i += 2)
          if (rawHeaders[i]?.toLowerCase().replaceAll('_', '-') === want)
            out.push(rawHeaders[i + 1] ?? '');
        return out;
      },
    });
    req.resume();
    req.on('end', () => {
      if (req.url?.startsWith('/leak')) {
        res.setHeader('X-Auth-Request-Jwt', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJsZWFrIn0.');
        res.setHeader('X-Auth-Request-Access-Token', 'leaked');
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true, url: req.url }));
    });
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    received,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
export type RecordingUpstream = Awaited<ReturnType<typeof startRecordingUpstream>>;

/** What the policy needs of the proxy under test. */
export interface ProxyUnderTest {
  /** https://127.0.0.1:<port> */
  url: string;
  /** The certificate it serves (PEM). */
  ca: string;
  /** The `aud` the identity the upstream receives is signed for. */
  audience: string;
  /** What it printed or logged, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export interface PolicyDeps {
  redis: RedisServer;
  sessionService: ServiceProcess;
  upstream: RecordingUpstream;
  internalToken: string;
}

/** Sign alice in through the proxy as a browser does (login page, then the form, same origin). */
export async function signIn(
  transport: Transport,
  proxy: ProxyUnderTest,
  rd = '/',
): Promise<{ jar: CookieJar; res: Response }> {
  const jar = new CookieJar();
  const page = await send(transport, `${proxy.url}/auth/login?rd=${encodeURIComponent(rd)}`, {
    ca: proxy.ca,
    headers: [['accept', 'text/html']],
  });
  expect(page.status, 'the login page through the proxy').toBe(200);
  jar.store(page);
  const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1];
  expect(token, 'a CSRF token on the login page').toBeTruthy();
  const res = await send(transport, `${proxy.url}/auth/login`, {
    method: 'POST',
    ca: proxy.ca,
    headers: [
      ['accept', 'text/html'],
      ['content-type', 'application/x-www-form-urlencoded'],
      ['origin', proxy.url],
      ['sec-fetch-site', 'same-origin'],
      ['cookie', jar.header()],
    ],
    body: new URLSearchParams({
      username: 'alice',
      password: PASSWORD,
      rd,
      _csrf: token ?? '',
    }).toString(),
  });
  expect(res.status, 'the login form through the proxy').toBe(303);
  jar.store(res);
  expect(jar.get('gatehouse'), 'a session cookie').toBeTruthy();
  return { jar, res };
}

/**
 * Every spelling of every identity header, each with a value that names it: one batch per name
 * (all of them at once would pass the 100 header fields proxies accept, HAProxy's tune.http.maxhdr
 * and the gateway's limit, and be refused before the policy is tried).
 */
function spoofedIdentity(): Array<Array<[string, string]>> {
  return IDENTITY_HEADERS.map((name) => {
    const variants = new Set([
      ...spellings(name),
      // dashes and underscores mixed: a CGI-style app reads these as the name too
      name.replace('-', '_'),
      name.replace(/-([^-]*)$/, '_$1'),
    ]);
    return [...variants].map((spelling): [string, string] => [spelling, `evil-${spelling}`]);
  });
}

/**
 * How alice's session signed in, as the upstream received it: validate's X-Auth-Request-Amr (a
 * password), -Acr (aal1: one factor) and -Auth-Time (epoch seconds, the sign-in moments ago),
 * each exactly once, whatever the client sent under those names.
 */
function expectPasswordSignIn(seen: Seen, what: string): void {
  const amr = seen.read('x-auth-request-amr');
  expect(amr, `${what}: x-auth-request-amr`).toHaveLength(1);
  expect(amr[0]?.split(','), `${what}: x-auth-request-amr`).toContain('pwd');
  expect(seen.read('x-auth-request-acr'), `${what}: x-auth-request-acr`).toEqual(['aal1']);
  const authTime = seen.read('x-auth-request-auth-time');
  expect(authTime, `${what}: x-auth-request-auth-time`).toHaveLength(1);
  expect(authTime[0], `${what}: x-auth-request-auth-time`).toMatch(/^\d+$/);
  const age = Date.now() / 1000 - Number(authTime[0]);
  expect(age, `${what}: seconds since the sign-in`).toBeGreaterThanOrEqual(-1);
  expect(age, `${what}: seconds since the sign-in`).toBeLessThan(60);
}

export function describeRecipePolicy(
  name: string,
  start: (deps: PolicyDeps) => Promise<ProxyUnderTest>,
): void {
  describe(`${name}: the policy every way in is held to`, () => {
    let redis: RedisServer;
    let sessionService: ServiceProcess;
    let upstream: RecordingUpstream;
    let proxy: ProxyUnderTest;
    let tokens: TestTokens;
    let aliceId: string;

    beforeAll(async () => {
      redis = await startRedis();
      const users = await writeTestUsers([ALICE]);
      aliceId = users.users[0]?.id as string;
      sessionService = await startSessionServiceProcess({
        redisUrl: redis.url,
        usersFile: users.path,
        env: { INTERNAL_TOKEN: TEST_INTERNAL_TOKEN },
      });
      upstream = await startRecordingUpstream();
      proxy = await start({ redis, sessionService, upstream, internalToken: TEST_INTERNAL_TOKEN });
      tokens = await testTokens(redis.url);
    });

    afterAll(async () => {
      await tokens?.close().catch(() => {});
      await proxy?.stop();
      await sessionService?.stop();
      await upstream?.close();
      await redis?.stop();
    });

    /** `run` must not let anything reach the upstream. */
    async function reachesNothing<T>(run: () => Promise<T>): Promise<T> {
      const before = upstream.received.length;
      const result = await run();
      expect(
        upstream.received.slice(before).map((r) => r.url),
        'requests that reached the upstream',
      ).toEqual([]);
      return result;
    }

    it('sends a browser without a session to /auth/login with rd = the path and query it asked for', async () => {
      for (const transport of TRANSPORTS)
        for (const target of TARGETS)
          for (const accept of BROWSER_ACCEPTS) {
            const what = `${transport} ${target} (${accept})`;
            const res = await reachesNothing(() =>
              send(transport, `${proxy.url}${target}`, {
                ca: proxy.ca,
                headers: [
                  ['accept', accept],
                  // what a client says about the URI never decides where it goes back to
                  ['x-forwarded-uri', '//evil.example/'],
                  ['x-forwarded-host', 'evil.example'],
                  ['x-original-uri', '/elsewhere'],
                ],
              }),
            );
            expect(res.status, what).toBe(302);
            expect(res.headers.get('cache-control'), what).toMatch(/no-store/);
            const location = new URL(res.headers.get('location') ?? '', proxy.url);
            expect(location.origin, what).toBe(proxy.url);
            expect(location.pathname, what).toBe('/auth/login');
            expect(location.searchParams.get('rd'), what).toBe(target);
          }
    });

    it('answers an API client without a session 401 UNAUTHENTICATED as JSON', async () => {
      for (const transport of TRANSPORTS)
        for (const accept of API_ACCEPTS)
          for (const method of ['GET', 'POST']) {
            const what = `${transport} ${method} (${accept ?? 'no Accept'})`;
            const res = await reachesNothing(() =>
              send(transport, `${proxy.url}/api/things?x=1`, {
                method,
                ca: proxy.ca,
                headers: [
                  ...(accept ? [['accept', accept] as [string, string]] : []),
                  ...(method === 'POST'
                    ? [['content-type', 'application/json'] as [string, string]]
                    : []),
                ],
                ...(method === 'POST' ? { body: '{"a":1}' } : {}),
              }),
            );
            expect(res.status, what).toBe(401);
            expect(res.headers.get('content-type'), what).toMatch(/application\/json/);
            expect(await res.json(), what).toMatchObject({ error: 'UNAUTHENTICATED' });
            expect(res.headers.get('location'), what).toBeNull();
          }
    });

    it('signs in through the proxy; the upstream receives the validated identity, signed for the audience', async () => {
      const verify = createAssertionVerifier({
        jwksUrl: `${sessionService.url}/auth/.well-known/jwks.json`,
        audience: proxy.audience,
      });
      for (const transport of TRANSPORTS) {
        const { jar, res } = await signIn(transport, proxy, '/reports?year=2024&q=a');
        expect(res.headers.get('location'), transport).toBe('/reports?year=2024&q=a');
        for (const cookie of res.headers.getSetCookie()) expect(cookie).toMatch(/;\s*Secure/i);

        const before = upstream.received.length;
        const ok = await send(transport, `${proxy.url}/api/whoami?t=${transport}`, {
          ca: proxy.ca,
          headers: [
            ['accept', 'application/json'],
            ['cookie', jar.header()],
          ],
        });
        expect(ok.status, transport).toBe(200);
        expect(upstream.received.length, transport).toBe(before + 1);
        const seen = upstream.received.at(-1) as Seen;
        expect(seen.url).toBe(`/api/whoami?t=${transport}`);
        expect(seen.read('x-auth-request-user'), transport).toEqual(['alice']);
        expect(seen.read('x-auth-request-groups'), transport).toEqual(['staff,ops']);
        expect(seen.read('x-auth-request-email'), transport).toEqual(['alice@example.com']);
        expectPasswordSignIn(seen, transport);
        const [jwt] = seen.read('x-auth-request-jwt');
        expect(await verify(jwt), transport).toMatchObject({
          name: 'alice',
          groups: ['staff', 'ops'],
          email: 'alice@example.com',
        });
        // what the upstream hears about the client comes from the proxy
        expect(seen.read('x-forwarded-proto'), transport).toEqual(['https']);
      }
    });

    it('lets no spelling of any identity header a client sends reach the upstream', async () => {
      const batches = spoofedIdentity();
      expect(batches.flat().length).toBeGreaterThan(IDENTITY_HEADERS.length * 5);
      for (const transport of TRANSPORTS) {
        const { jar } = await signIn(transport, proxy);
        for (const spoof of batches) {
          const what = `${transport} ${spoof[0]?.[0]}`;
          const anonymous = await reachesNothing(() =>
            send(transport, `${proxy.url}/api/whoami`, {
              ca: proxy.ca,
              headers: [['accept', 'application/json'], ...spoof],
            }),
          );
          expect(anonymous.status, what).toBe(401);
          expect(await anonymous.text(), what).not.toContain('evil-');

          const res = await send(transport, `${proxy.url}/api/whoami`, {
            ca: proxy.ca,
            headers: [['accept', 'application/json'], ['cookie', jar.header()], ...spoof],
          });
          expect(res.status, what).toBe(200);
          const seen = upstream.received.at(-1) as Seen;
          const values = seen.rawHeaders.filter((_v, i) => i % 2 === 1);
          expect(
            values.filter((v) => v.includes('evil-')),
            what,
          ).toEqual([]);
          expect(seen.read('x-auth-request-user'), what).toEqual(['alice']);
          expectPasswordSignIn(seen, what);
          for (const name of ['x-forwarded-user', 'remote-user', 'x-auth-request-access-token'])
            expect(seen.read(name), `${what}: ${name}`).toEqual([]);
        }
      }
    });

    it("keeps the session cookie from the upstream, passing the app's own cookies", async () => {
      for (const transport of TRANSPORTS) {
        const { jar } = await signIn(transport, proxy);
        const session = `gatehouse=${jar.get('gatehouse')}`;
        const forms = [
          `${session}; theme=dark; lang=en`,
          `theme=dark; ${session}; lang=en`,
          `theme=dark; lang=en; ${session}`,
          `theme=dark; __Host-gatehouse=x; ${session}; __Secure-gatehouse=y; lang=en`,
        ];
        for (const cookie of forms) {
          const res = await send(transport, `${proxy.url}/cookies`, {
            ca: proxy.ca,
            headers: [
              ['accept', 'application/json'],
              ['cookie', cookie],
            ],
          });
          expect(res.status, `${transport} ${cookie}`).toBe(200);
          const pairs = (upstream.received.at(-1) as Seen)
            .read('cookie')
            .flatMap((c) => c.split(';'))
            .map((p) => p.trim())
            .filter(Boolean);
          expect(pairs, `${transport} ${cookie}`).toEqual(['theme=dark', 'lang=en']);
        }
        const only = await send(transport, `${proxy.url}/cookies`, {
          ca: proxy.ca,
          headers: [['cookie', session]],
        });
        expect(only.status, transport).toBe(200);
        expect((upstream.received.at(-1) as Seen).read('cookie').join(''), transport).toBe('');
      }
    });

    it('never hands a signed identity to a client', async () => {
      for (const transport of TRANSPORTS) {
        const { jar } = await signIn(transport, proxy);
        const headers: Array<[string, string]> = [
          ['accept', 'application/json'],
          ['cookie', jar.header()],
        ];
        const paths = [
          '/leak',
          '/auth/validate',
          `/auth/validate?aud=${proxy.audience}`,
          `/internal/validate?aud=${proxy.audience}`,
        ];
        for (const path of paths) {
          const res = await send(transport, `${proxy.url}${path}`, { ca: proxy.ca, headers });
          expect(res.status, `${transport} ${path}`).toBe(200);
          expect(res.headers.get('x-auth-request-jwt'), `${transport} ${path}`).toBeNull();
          expect(res.headers.get('x-auth-request-access-token'), `${transport} ${path}`).toBeNull();
        }
        // /internal/ is the app's path like any other: the session-service is not behind it
        expect((upstream.received.at(-1) as Seen).url).toBe(
          `/internal/validate?aud=${proxy.audience}`,
        );
      }
    });

    it("passes an access token's identity and signed identity upstream, never the token; the app's own Authorization passes", async () => {
      const { token, record } = await tokens.mint(aliceId, { name: 'policy' });
      const verify = createAssertionVerifier({
        jwksUrl: `${sessionService.url}/auth/.well-known/jwks.json`,
        audience: proxy.audience,
      });
      for (const transport of TRANSPORTS)
        for (const accept of ['application/json', BROWSER_ACCEPTS[0] as string]) {
          const what = `${transport} (${accept.slice(0, 16)})`;
          const before = upstream.received.length;
          const res = await send(transport, `${proxy.url}/api/things?t=1`, {
            ca: proxy.ca,
            headers: [
              ['accept', accept],
              ['authorization', `Bearer ${token}`],
              ['x-gatehouse-authorization', 'Bearer gatehouse_pat_spoofed'],
            ],
          });
          expect(res.status, what).toBe(200);
          expect(res.headers.getSetCookie(), what).toEqual([]);
          expect(upstream.received.length, what).toBe(before + 1);
          const seen = upstream.received.at(-1) as Seen;
          expect(seen.read('x-auth-request-user'), what).toEqual(['alice']);
          expect(seen.read('x-auth-request-groups'), what).toEqual(['staff,ops']);
          expect(seen.read('x-auth-request-email'), what).toEqual(['alice@example.com']);
          expect(seen.read('authorization'), what).toEqual([]);
          expect(seen.read('x-gatehouse-authorization'), what).toEqual([]);
          expect(seen.rawHeaders.join('\n'), what).not.toContain(token.slice(14));
          const [jwt] = seen.read('x-auth-request-jwt');
          expect(await verify(jwt), what).toMatchObject({ name: 'alice' });
          expect(decodeJwt(jwt as string), what).toMatchObject({ tok: record.id, tok_kind: 'pat' });
        }
      for (const transport of TRANSPORTS) {
        const { jar } = await signIn(transport, proxy);
        for (const own of ['Basic YWxpY2U6YXBwLXBhc3N3b3Jk', 'Bearer eyJhbGciOiJub25lIn0.e30.']) {
          const res = await send(transport, `${proxy.url}/api/things`, {
            ca: proxy.ca,
            headers: [
              ['accept', 'application/json'],
              ['cookie', jar.header()],
              ['authorization', own],
            ],
          });
          expect(res.status, `${transport} ${own}`).toBe(200);
          expect((upstream.received.at(-1) as Seen).read('authorization')).toEqual([own]);
        }
      }
    });

    it('answers a bad access token 401 JSON with WWW-Authenticate, for browsers too; a revoked token is refused', async () => {
      for (const transport of TRANSPORTS)
        for (const accept of [BROWSER_ACCEPTS[0] as string, 'application/json']) {
          const what = `${transport} (${accept.slice(0, 16)})`;
          const res = await reachesNothing(() =>
            send(transport, `${proxy.url}/api/things`, {
              ca: proxy.ca,
              headers: [
                ['accept', accept],
                ['authorization', `Bearer ${newToken('personal')}`],
              ],
            }),
          );
          expect(res.status, what).toBe(401);
          expect(res.headers.get('content-type'), what).toMatch(/^application\/json/);
          expect(res.headers.get('www-authenticate'), what).toBe('Bearer error="invalid_token"');
          expect(res.headers.get('location'), what).toBeNull();
          expect(res.headers.getSetCookie(), what).toEqual([]);
          expect(await res.json(), what).toMatchObject({ error: 'UNAUTHENTICATED' });
        }
      const { token, record } = await tokens.mint(aliceId);
      const ask = (transport: Transport) =>
        send(transport, `${proxy.url}/api/things`, {
          ca: proxy.ca,
          headers: [
            ['accept', 'application/json'],
            ['authorization', `Bearer ${token}`],
          ],
        });
      for (const transport of TRANSPORTS) expect((await ask(transport)).status).toBe(200);
      expect(await tokens.revoke(aliceId, record.id)).toBe(true);
      for (const transport of TRANSPORTS)
        await waitFor(
          async () => (await ask(transport)).status === 401,
          2000,
          `${transport}: the revoked token refused`,
        );
    });

    // Last of the token rows: it leaves this address throttled for tokens.
    it('answers a flood of bad access tokens 429 TOO_MANY_ATTEMPTS with Retry-After, not 503', async () => {
      let last: Response | undefined;
      for (let i = 0; i < 30; i++) {
        last = await send(TRANSPORTS[i % 2] as Transport, `${proxy.url}/api/things`, {
          ca: proxy.ca,
          headers: [
            ['accept', 'application/json'],
            ['authorization', `Bearer ${newToken('personal')}`],
          ],
        });
        if (last.status !== 401) break;
      }
      expect(last?.status).toBe(429);
      for (const transport of TRANSPORTS) {
        const res = await reachesNothing(() =>
          send(transport, `${proxy.url}/api/things`, {
            ca: proxy.ca,
            headers: [
              ['accept', BROWSER_ACCEPTS[0] as string],
              ['authorization', `Bearer ${newToken('service')}`],
            ],
          }),
        );
        expect(res.status, transport).toBe(429);
        expect(res.headers.get('retry-after'), transport).toMatch(/^[1-9]\d*$/);
        expect(await res.json(), transport).toMatchObject({ error: 'TOO_MANY_ATTEMPTS' });
      }
    });

    it('fails closed when validate answers 503 (Redis down): 503, nothing reaches the upstream', async () => {
      const jars = await Promise.all(TRANSPORTS.map((t) => signIn(t, proxy)));
      await killAndWait(redis.process);
      try {
        for (const [i, transport] of TRANSPORTS.entries()) {
          for (const accept of ['application/json', BROWSER_ACCEPTS[0] as string]) {
            const res = await reachesNothing(() =>
              send(transport, `${proxy.url}/api/whoami`, {
                ca: proxy.ca,
                headers: [
                  ['accept', accept],
                  ['cookie', jars[i]?.jar.header() ?? ''],
                ],
              }),
            );
            expect(res.status, `${transport} ${accept}`).toBe(503);
            expect(await res.text(), `${transport} ${accept}`).not.toContain('alice');
          }
        }
      } finally {
        await redis.restart();
        await untilReady(sessionService.url);
      }
    });

    // HAProxy 2.6 retries a refused connection for about 3 s before it gives up (its Lua HTTP
    // client and its backends alike): the requests go at once, not one after the other.
    it('fails closed when the session-service is down: 503 SESSION_SERVICE_UNAVAILABLE on every path, /auth/login included; nothing reaches the upstream', async () => {
      const jars = await Promise.all(TRANSPORTS.map((t) => signIn(t, proxy)));
      await sessionService.stop();
      const cases: Array<{
        what: string;
        path: string;
        method?: 'POST';
        json: boolean;
        signedIn?: true;
      }> = [
        { what: 'API client, signed in', path: '/api/whoami', json: true, signedIn: true },
        { what: 'API client, no session', path: '/api/whoami', json: true },
        { what: 'browser, no session', path: '/api/whoami', json: false },
        { what: 'API client, login page', path: '/auth/login', json: true },
        { what: 'API client, login form', path: '/auth/login', method: 'POST', json: true },
        { what: 'browser, login page', path: '/auth/login', json: false },
        { what: 'browser, login form', path: '/auth/login', method: 'POST', json: false },
      ];
      const answers = await reachesNothing(() =>
        Promise.all(
          TRANSPORTS.flatMap((transport, i) =>
            cases.map(async ({ what, path, method, json, signedIn }) => {
              const headers: Array<[string, string]> = [
                ['accept', json ? 'application/json' : (BROWSER_ACCEPTS[0] as string)],
              ];
              if (signedIn) headers.push(['cookie', jars[i]?.jar.header() ?? '']);
              if (method)
                headers.push(
                  ['content-type', 'application/x-www-form-urlencoded'],
                  ['origin', proxy.url],
                );
              const res = await send(transport, `${proxy.url}${path}`, {
                ca: proxy.ca,
                headers,
                ...(method ? { method, body: 'username=alice&password=x' } : {}),
              });
              const label = `${transport} ${what}: ${method ?? 'GET'} ${path}`;
              return { label, json, res, text: await res.text() };
            }),
          ),
        ),
      );
      for (const { label, json, res, text } of answers) {
        expect(res.status, label).toBe(503);
        expect(text, label).not.toContain('alice');
        if (json) {
          expect(res.headers.get('content-type'), label).toMatch(/^application\/json/);
          expect(JSON.parse(text), label).toEqual({
            error: 'SESSION_SERVICE_UNAVAILABLE',
            message: ERRORS.SESSION_SERVICE_UNAVAILABLE.message,
          });
        } else {
          // browsers get a page, as from the gateway, naming the same code
          expect(res.headers.get('content-type'), label).toMatch(/^text\/html/);
          expect(text, label).toContain('SESSION_SERVICE_UNAVAILABLE');
        }
      }
    }, 30_000);
  });
}
