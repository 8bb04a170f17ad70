/**
 * Over 300 lines on purpose: one table of spellings per trust class, all on one fixture of real processes.
 *
 * A signed identity (X-Auth-Request-Jwt) is minted only for a trusted caller, never for a browser
 * (security issue 11, classes 1 and 9). Real processes throughout: Redis, the session-service, a
 * gateway with two routes (`app` for everyone, `finance` for the finance group only), echo
 * upstreams that record what they received, and a real nginx running the auth-request template.
 *
 * Signed in as alice (not in finance), every spelling of "validate, signed for finance" that a
 * client can send, through the gateway and through nginx, must come back without a token for
 * `finance`; the internal endpoint answers only the internal token; the app behind nginx never
 * receives the session cookie. Positive controls show the tokens still reach the upstreams.
 *
 * Over 300 lines: one table of spellings per way in (gateway, nginx, the internal endpoint), over
 * one set of processes; kept together so the tables read as the trust policy.
 */

import { mkdtempSync, writeFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EchoUpstream, startEchoUpstream } from '../helpers/echo-upstream.js';
import { jsonLogin } from '../helpers/login.js';
import { type NginxServer, startNginx } from '../helpers/nginx.js';
import {
  SERVICES,
  type ServiceProcess,
  startService,
  startSessionServiceProcess,
  TEST_INTERNAL_TOKEN,
} from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';
const COMPACT_JWT = /[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/g;

let redis: RedisServer;
let sessionService: ServiceProcess;
let gateway: ServiceProcess;
let nginx: NginxServer;
let appEcho: EchoUpstream;
let financeEcho: EchoUpstream;
/** `gatehouse=<value>` of alice (groups: dev) and of fran (groups: finance). */
let alice: string;
let fran: string;
let usersPath: string;

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * One request with the path sent byte for byte (no URL parsing, no dot-segment removal), over
 * HTTP to `base` or over HTTPS trusting `ca` only.
 */
function send(
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string | string[]>; ca?: string } = {},
): Promise<Answer> {
  const url = new URL(base);
  const request = url.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: options.method ?? 'GET',
        headers: { accept: 'application/json', ...options.headers },
        agent: false,
        ...(options.ca ? { ca: options.ca, servername: 'localhost' } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The audiences of every signed token anywhere in an answer (headers and body). */
function audiencesIn(answer: Answer): string[] {
  const text = `${JSON.stringify(answer.headers)}\n${answer.body}`;
  const auds: string[] = [];
  for (const [token] of text.matchAll(COMPACT_JWT)) {
    try {
      const aud = decodeJwt(token).aud;
      auds.push(...(Array.isArray(aud) ? aud : [String(aud)]));
    } catch {
      // not a JWT
    }
  }
  return auds;
}

const login = (username: string) => jsonLogin(gateway.url, username, PASSWORD);

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-trust-'));
  [redis, appEcho, financeEcho] = await Promise.all([
    startRedis(),
    startEchoUpstream(),
    startEchoUpstream(),
  ]);
  const users = await writeTestUsers([
    { username: 'alice', password: PASSWORD, groups: ['dev'] },
    { username: 'fran', password: PASSWORD, groups: ['finance'] },
  ]);
  usersPath = users.path;
  const routes = join(dir, 'routes.yaml');
  // No route at `/`: a path no route serves (/internal/…) is the gateway's own 404.
  writeFileSync(
    routes,
    `routes:
  - id: app
    path: /app
    upstream: ${appEcho.url}
  - id: finance
    path: /finance
    upstream: ${financeEcho.url}
    allow: { groups: [finance] }
`,
  );
  sessionService = await startSessionServiceProcess({
    redisUrl: redis.url,
    usersFile: users.path,
    env: { LOGIN_THROTTLE_ADDRESS_ATTEMPTS: '100000' },
  });
  gateway = await startService({
    name: 'gateway',
    ...SERVICES.gateway,
    env: {
      SESSION_SERVICE_URL: sessionService.url,
      GATEWAY_ROUTES: routes,
      GATEWAY_METRICS_PORT: 'off',
      // every request asks the session-service: nothing here may be answered from a cache
      VALIDATE_CACHE_TTL_MS: '0',
      LOG_LEVEL: 'warn',
    },
  });
  nginx = await startNginx({
    template: 'auth-request',
    vars: {
      PROTECTED_UPSTREAM: `127.0.0.1:${appEcho.port}`,
      SESSION_SERVICE_UPSTREAM: `127.0.0.1:${sessionService.port}`,
      IDENTITY_AUDIENCE: 'app',
    },
  });
  [alice, fran] = [await login('alice'), await login('fran')];
}, 60_000);

afterAll(async () => {
  await nginx?.stop();
  await gateway?.stop();
  await sessionService?.stop();
  await Promise.all([appEcho?.close(), financeEcho?.close()]);
  await redis?.stop();
});

/** Ways a client may ask for "validate, signed for finance" (and for an audience it may use). */
const SPELLINGS = [
  '/auth/validate?aud=finance',
  '/auth/validate?aud=app',
  '/auth/validate/?aud=finance',
  '/auth//validate?aud=finance',
  '/auth/validate?aud=finance&aud=finance',
  '/auth/validate?aud=app&aud=finance',
  '/auth/%76alidate?aud=finance',
  '/auth/%76%61%6c%69%64%61%74%65?aud=finance',
  '/AUTH/VALIDATE?aud=finance',
  '/auth/Validate?aud=finance',
  '/auth/validate?AUD=finance',
  '/auth/validate?aud%3Dfinance',
  '/auth/validate?%61ud=finance',
  '/auth/validate%3Faud=finance',
  '/auth/validate;aud=finance?aud=finance',
  '/auth/./validate?aud=finance',
  '/auth/x/../validate?aud=finance',
  '/auth/validate?aud=finance&',
  '/app/../auth/validate?aud=finance',
  '/internal/validate?aud=finance',
  '/internal/validate/?aud=finance',
  '/internal//validate?aud=finance',
  '/INTERNAL/VALIDATE?aud=finance',
  '/%69nternal/validate?aud=finance',
  '/auth/../internal/validate?aud=finance',
  '/auth/%2e%2e/internal/validate?aud=finance',
  '/auth/..%2finternal/validate?aud=finance',
  '/_gatehouse_validate?aud=finance',
  '/_gatehouse_validate',
];

/** The headers a client adds; an Authorization header must not make anyone an internal caller. */
const EXTRAS: Array<Record<string, string>> = [
  {},
  { authorization: 'Bearer not-the-internal-token-but-long-enough-0123456789' },
  { 'x-forwarded-uri': '/finance/report', 'x-auth-request-jwt': 'eyJhbGciOiJub25lIn0.e30.' },
];

describe('signed in as a user not allowed on finance', () => {
  it('gets no token for finance through the gateway, whatever the spelling or method', async () => {
    const wrong: string[] = [];
    for (const path of SPELLINGS)
      for (const method of ['GET', 'HEAD'])
        for (const extra of EXTRAS) {
          const res = await send(gateway.url, path, {
            method,
            headers: { cookie: alice, ...extra },
          });
          const where = `${method} ${path} ${Object.keys(extra).join(',')} -> ${res.status}`;
          if (res.headers['x-auth-request-jwt'] !== undefined)
            wrong.push(`${where}: X-Auth-Request-Jwt`);
          if (audiencesIn(res).includes('finance')) wrong.push(`${where}: a token for finance`);
          if (res.status >= 500) wrong.push(`${where}: server error`);
          // Nothing under /internal/ is served by the gateway: no route (404), or a path it
          // refuses before routing (400); never the session-service.
          if (/^\/(internal|INTERNAL|%69nternal)\//.test(path) && ![400, 404].includes(res.status))
            wrong.push(`${where}: expected 404 or 400`);
        }
    expect(wrong).toEqual([]);
    // (the finance upstream was never reached by alice)
    expect(financeEcho.received).toEqual([]);
  });

  it('gets no token for finance through nginx, whatever the spelling or method', async () => {
    const wrong: string[] = [];
    for (const path of SPELLINGS)
      for (const method of ['GET', 'HEAD'])
        for (const extra of EXTRAS) {
          const res = await send(nginx.httpsUrl, path, {
            method,
            headers: { cookie: alice, ...extra },
            ca: nginx.ca,
          });
          const where = `${method} ${path} ${Object.keys(extra).join(',')} -> ${res.status}`;
          if (res.headers['x-auth-request-jwt'] !== undefined)
            wrong.push(`${where}: X-Auth-Request-Jwt`);
          if (audiencesIn(res).includes('finance')) wrong.push(`${where}: a token for finance`);
          if (res.status >= 500) wrong.push(`${where}: server error`);
          // The auth subrequest's location is internal to nginx.
          if (path.startsWith('/_gatehouse_validate') && res.status !== 404)
            wrong.push(`${where}: expected 404`);
          // Under /internal/ it is the protected app that answers (nginx routes only /auth/ to
          // the session-service): the echo app's JSON, not a validate answer.
          if (/^\/(internal|INTERNAL|%69nternal)\//.test(path) && method === 'GET') {
            const body = JSON.parse(res.body || '{}') as { rawHeaders?: unknown; user?: unknown };
            if (!body.rawHeaders || body.user)
              wrong.push(`${where}: not the protected app's answer`);
          }
        }
    expect(wrong).toEqual([]);
  });

  it('is refused on finance (403) with no token in the answer, and nothing reaches its upstream', async () => {
    for (const path of ['/finance', '/finance/report?aud=finance']) {
      const res = await send(gateway.url, path, { headers: { cookie: alice } });
      expect(res.status, path).toBe(403);
      expect(audiencesIn(res), path).toEqual([]);
    }
    expect(financeEcho.received).toEqual([]);
  });
});

describe('the trusted callers still get the signed identity', () => {
  it('the gateway passes a token with aud = the route id to an allowed upstream, for each route', async () => {
    const app = await send(gateway.url, '/app/page?aud=finance', { headers: { cookie: alice } });
    expect(app.status).toBe(200);
    const [appToken] = appEcho.last().header('x-auth-request-jwt');
    expect(decodeJwt(appToken ?? '')).toMatchObject({ aud: 'app', name: 'alice' });

    const finance = await send(gateway.url, '/finance/report', { headers: { cookie: fran } });
    expect(finance.status).toBe(200);
    const [financeToken] = financeEcho.last().header('x-auth-request-jwt');
    expect(decodeJwt(financeToken ?? '')).toMatchObject({ aud: 'finance', name: 'fran' });
  });

  it('nginx passes a token for its fixed IDENTITY_AUDIENCE only, whatever the query says', async () => {
    for (const path of ['/page', '/page?aud=finance', '/page?aud=finance&aud=finance']) {
      const res = await send(nginx.httpsUrl, path, { headers: { cookie: alice }, ca: nginx.ca });
      expect(res.status, path).toBe(200);
      const tokens = appEcho.last().header('x-auth-request-jwt');
      expect(tokens, path).toHaveLength(1);
      expect(decodeJwt(tokens[0] ?? ''), path).toMatchObject({ aud: 'app', name: 'alice' });
    }
  });
});

describe('GET /internal/validate on the session-service itself', () => {
  const token = TEST_INTERNAL_TOKEN;
  /** Ways of not presenting the internal token (each with alice's session cookie). */
  const NOT_THE_TOKEN: Array<[string, Record<string, string>, string?]> = [
    ['no Authorization', {}],
    ['Bearer and nothing', { authorization: 'Bearer' }],
    ['Bearer and a space', { authorization: 'Bearer ' }],
    ['a short token', { authorization: 'Bearer abc' }],
    ['the token less its last character', { authorization: `Bearer ${token.slice(0, -1)}` }],
    ['the token and one more character', { authorization: `Bearer ${token}x` }],
    ['the token in upper case', { authorization: `Bearer ${token.toUpperCase()}` }],
    ['two spaces before the token', { authorization: `Bearer  ${token}` }],
    ['the token without a scheme', { authorization: token }],
    ['another scheme', { authorization: `Token ${token}` }],
    ['Basic', { authorization: `Basic ${Buffer.from(`gateway:${token}`).toString('base64')}` }],
    ['the token in another header', { 'x-internal-token': token }],
    ['the token in a cookie', { cookie: `internal_token=${token}` }],
    ['the token in the query', {}, `&token=${token}&access_token=${token}`],
  ];

  it('answers 401 INVALID_INTERNAL_TOKEN and no token to every caller without the internal token', async () => {
    const wrong: string[] = [];
    for (const [name, headers, query = ''] of NOT_THE_TOKEN)
      for (const method of ['GET', 'HEAD']) {
        const cookie = [alice, headers.cookie].filter(Boolean).join('; ');
        const res = await send(sessionService.url, `/internal/validate?aud=finance${query}`, {
          method,
          headers: { ...headers, cookie },
        });
        const where = `${method} ${name} -> ${res.status}`;
        if (res.status !== 401) wrong.push(where);
        if (res.headers['x-auth-request-jwt'] !== undefined) wrong.push(`${where}: a token`);
        if (res.headers['x-auth-request-user'] !== undefined) wrong.push(`${where}: an identity`);
        if (!String(res.headers['www-authenticate']).startsWith('Bearer'))
          wrong.push(`${where}: WWW-Authenticate`);
        if (method === 'GET' && JSON.parse(res.body).error !== 'INVALID_INTERNAL_TOKEN')
          wrong.push(`${where}: ${res.body}`);
      }
    expect(wrong).toEqual([]);
  });

  it('with the token: a token for a well-formed aud given once, 400 otherwise, 401 without a session', async () => {
    const auth = { authorization: `Bearer ${token}` };
    const ok = await send(sessionService.url, '/internal/validate?aud=finance', {
      headers: { ...auth, cookie: alice },
    });
    expect(ok.status).toBe(200);
    expect(decodeJwt(String(ok.headers['x-auth-request-jwt']))).toMatchObject({
      aud: 'finance',
      name: 'alice',
    });
    expect(JSON.parse(ok.body).user.username).toBe('alice');

    for (const query of [
      '',
      '?aud=',
      '?aud=a&aud=b',
      '?aud=fin%20ance',
      `?aud=${'a'.repeat(65)}`,
      '?aud=x/y',
    ]) {
      const res = await send(sessionService.url, `/internal/validate${query}`, {
        headers: { ...auth, cookie: alice },
      });
      expect(res.status, query).toBe(400);
      expect(JSON.parse(res.body), query).toMatchObject({ error: 'INVALID_AUDIENCE' });
      expect(res.headers['x-auth-request-jwt'], query).toBeUndefined();
    }

    const anonymous = await send(sessionService.url, '/internal/validate?aud=finance', {
      headers: auth,
    });
    expect(anonymous.status).toBe(401);
    expect(JSON.parse(anonymous.body)).toMatchObject({ error: 'UNAUTHENTICATED' });
    expect(anonymous.headers['x-auth-request-jwt']).toBeUndefined();
  });

  it('the public validate on the session-service itself never signs, whatever it is asked', async () => {
    for (const path of [
      '/auth/validate?aud=finance',
      '/auth/validate/?aud=finance',
      '/AUTH/validate?aud=app',
    ])
      for (const authorization of [undefined, `Bearer ${token}`]) {
        const res = await send(sessionService.url, path, {
          headers: { cookie: alice, ...(authorization ? { authorization } : {}) },
        });
        expect(res.status, path).toBe(200);
        expect(res.headers['x-auth-request-jwt'], path).toBeUndefined();
      }
  });
});

describe('the app behind nginx never receives the session cookie', () => {
  const V = () => alice.slice('gatehouse='.length);
  /** Cookie header sent -> the Cookie header the app must receive (undefined: none at all). */
  const CASES: Array<[string, () => string, string | undefined]> = [
    ['alone', () => `gatehouse=${V()}`, undefined],
    ['first', () => `gatehouse=${V()}; a=1; b=2`, 'a=1; b=2'],
    ['in the middle', () => `a=1; gatehouse=${V()}; b=2`, 'a=1; b=2'],
    ['last', () => `a=1; b=2; gatehouse=${V()}`, 'a=1; b=2'],
    ['without spaces', () => `a=1;gatehouse=${V()};b=2`, 'a=1;b=2'],
    ['with spaces around the name', () => `a=1;  gatehouse = ${V()} ;b=2`, 'a=1;b=2'],
    ['duplicated', () => `gatehouse=${V()}; a=1; gatehouse=${V()}`, 'a=1'],
    ['as __Host-', () => `gatehouse=${V()}; __Host-gatehouse=${V()}; a=1`, 'a=1'],
    ['as __Secure-', () => `a=1; __Secure-gatehouse=${V()}; gatehouse=${V()}; b=2`, 'a=1; b=2'],
    ['valueless', () => `gatehouse=${V()}; a=1; __Host-gatehouse; b=2`, 'a=1; b=2'],
    [
      'four copies among others',
      () =>
        `gatehouse=${V()}; a=1; gatehouse=${V()}; b=2; __Host-gatehouse=x; c=3; gatehouse=${V()}; d=4`,
      'a=1; b=2; c=3; d=4',
    ],
    [
      'five copies (no cookies rather than one too many)',
      () => Array.from({ length: 5 }, (_, i) => `gatehouse=${V()}; k${i}=${i}`).join('; '),
      undefined,
    ],
    [
      'lookalike names kept',
      () => `gatehouse=${V()}; gatehousex=1; xgatehouse=2; gatehouse_b=3; Gatehouse=4`,
      'gatehousex=1; xgatehouse=2; gatehouse_b=3; Gatehouse=4',
    ],
  ];

  it.each(CASES)('session cookie %s', async (_name, header, expected) => {
    const res = await send(nginx.httpsUrl, '/cookie-check', {
      headers: { cookie: header() },
      ca: nginx.ca,
    });
    expect(res.status).toBe(200);
    const seen = appEcho.last();
    expect(seen.url).toBe('/cookie-check');
    expect(seen.header('cookie')).toEqual(expected === undefined ? [] : [expected]);
    expect(seen.header('cookie').join()).not.toContain(V());
  });

  it('is stripped from every Cookie header line a client sends', async () => {
    const res = await send(nginx.httpsUrl, '/cookie-check', {
      headers: { cookie: ['a=1', alice, 'b=2'] },
      ca: nginx.ca,
    });
    expect(res.status).toBe(200);
    const cookies = appEcho.last().header('cookie').join('; ');
    expect(cookies).not.toContain(V());
    expect(cookies).toMatch(/a=1/);
    expect(cookies).toMatch(/b=2/);
  });
});

describe('with another COOKIE_NAME (SESSION_COOKIE_NAME=sid)', () => {
  let service: ServiceProcess;
  let proxy: NginxServer;
  let sid: string;

  beforeAll(async () => {
    service = await startSessionServiceProcess({
      redisUrl: redis.url,
      usersFile: usersPath,
      env: { COOKIE_NAME: 'sid', LOGIN_THROTTLE_ADDRESS_ATTEMPTS: '100000' },
    });
    proxy = await startNginx({
      template: 'auth-request',
      vars: {
        PROTECTED_UPSTREAM: `127.0.0.1:${appEcho.port}`,
        SESSION_SERVICE_UPSTREAM: `127.0.0.1:${service.port}`,
        IDENTITY_AUDIENCE: 'app',
        SESSION_COOKIE_NAME: 'sid',
      },
    });
    const res = await fetch(`${service.url}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ username: 'alice', password: PASSWORD }),
    });
    expect(res.status).toBe(200);
    sid =
      res.headers
        .getSetCookie()
        .find((c) => c.startsWith('sid='))
        ?.split(';')[0] ?? '';
    expect(sid).not.toBe('');
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await service?.stop();
  });

  it.each([
    ['alone', () => sid, undefined],
    ['first, a cookie named gatehouse kept', () => `${sid}; gatehouse=1; a=2`, 'gatehouse=1; a=2'],
    ['last, with its __Host- form', () => `a=1; __Host-sid=x; ${sid}`, 'a=1'],
  ] as Array<[string, () => string, string | undefined]>)(
    'removes sid %s',
    async (_name, header, expected) => {
      const res = await send(proxy.httpsUrl, '/cookie-check-sid', {
        headers: { cookie: header() },
        ca: proxy.ca,
      });
      expect(res.status).toBe(200);
      const seen = appEcho.last();
      expect(seen.url).toBe('/cookie-check-sid');
      expect(seen.header('cookie')).toEqual(expected === undefined ? [] : [expected]);
    },
  );
});
