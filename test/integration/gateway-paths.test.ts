import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EchoUpstream, startEchoUpstream } from '../helpers/echo-upstream.js';
import { startGateway } from '../helpers/gateway.js';
import { jsonLogin } from '../helpers/login.js';
import { type ServiceProcess, startSessionServiceProcess } from '../helpers/processes.js';
import { rawHttp } from '../helpers/raw-http.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';

let redis: RedisServer;
let sessionService: ServiceProcess;
/** Behind the public route `/public`. */
let publicUpstream: EchoUpstream;
/** Behind the protected `/` and `/admin` (admins only). */
let protectedUpstream: EchoUpstream;
/** Behind `/strip` (stripPrefix). */
let strippedUpstream: EchoUpstream;
let close: () => void;
let base: string;
let session: string;

/** Send a request-target exactly as written (fetch would normalise it) and read the answer. */
function raw(
  target: string,
  options: { method?: string; cookie?: string } = {},
): Promise<{ status: number; body: string }> {
  const { port } = new URL(base);
  const lines = [
    `${options.method ?? 'GET'} ${target} HTTP/1.1`,
    'Host: gateway.test',
    'Accept: application/json',
    ...(options.cookie ? [`Cookie: ${options.cookie}`] : []),
    'Connection: close',
  ];
  return rawHttp(port, lines);
}

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    { username: 'alice', password: PASSWORD, groups: ['staff'] },
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-gw-paths-'));
  [sessionService, publicUpstream, protectedUpstream, strippedUpstream] = await Promise.all([
    startSessionServiceProcess({ redisUrl: redis.url, usersFile: users.path }),
    startEchoUpstream(),
    startEchoUpstream(),
    startEchoUpstream(),
  ]);
  const routesFile = join(dir, 'routes.json');
  writeFileSync(
    routesFile,
    JSON.stringify({
      routes: [
        { id: 'app', path: '/', upstream: protectedUpstream.url },
        {
          id: 'admin',
          path: '/admin',
          upstream: protectedUpstream.url,
          allow: { groups: ['admins'] },
        },
        { id: 'pub', path: '/public', upstream: publicUpstream.url, public: true },
        {
          id: 'strip',
          path: '/strip',
          upstream: `${strippedUpstream.url}/base`,
          stripPrefix: true,
        },
      ],
    }),
  );
  ({ url: base, close } = await startGateway({
    SESSION_SERVICE_URL: sessionService.url,
    GATEWAY_ROUTES: routesFile,
  }));
  session = await jsonLogin(base, 'alice', PASSWORD);
});

afterAll(async () => {
  close?.();
  await Promise.all([
    publicUpstream?.close(),
    protectedUpstream?.close(),
    strippedUpstream?.close(),
  ]);
  await sessionService?.stop();
  await redis?.stop();
});

/** Paths that try to leave the public prefix (or confuse a parser) to reach `/admin`. */
const HOSTILE = [
  '/public/../admin',
  '/public/./admin',
  '/public/..',
  '/public/../../admin',
  '/public/%2e%2e/admin',
  '/public/%2E%2E/admin',
  '/public/%2e./admin',
  '/public/.%2E/admin',
  '/public/%2e/admin',
  '/public%2f..%2fadmin',
  '/public%2F..%2Fadmin',
  '/public/..%2fadmin',
  '/public/..%2Fadmin',
  '/public\\..\\admin',
  '/public\\admin',
  '/public/%5c..%5cadmin',
  '/public%5Cadmin',
  '/public/%c0%ae%c0%ae/admin',
  '/public/%C0%AE%C0%AE/admin',
  '/public/%e0%80%ae%e0%80%ae/admin',
  '/public/%c0%af..%c0%afadmin',
  '//public/../admin',
  '//public/admin',
  '/public//admin',
  '/public/%00/admin',
  '/public%00',
  '/public/%zz',
  '/public/%2',
  '/public/%',
  '/public/%ff',
  '/public/..;/admin',
  '/public/%2e%2e;/admin',
  '/public/%252e%252e/admin',
  '/public/%252f',
  '/public/%0a/admin',
];

describe('hostile paths, before any route decision', () => {
  it.each(HOSTILE)('refuses %s with 400 BAD_PATH, and no upstream sees it', async (target) => {
    const before = [publicUpstream.received.length, protectedUpstream.received.length];
    const res = await raw(target);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toBe('BAD_PATH');
    // with a session too: refused before anything else
    expect((await raw(target, { cookie: session })).status).toBe(400);
    expect([publicUpstream.received.length, protectedUpstream.received.length]).toEqual(before);
  });

  it.each([
    ['absolute-form', 'GET', 'http://127.0.0.1/public/x'],
    ['absolute-form to another host', 'GET', 'http://evil.example/admin'],
    ['asterisk-form', 'OPTIONS', '*'],
  ])('refuses the %s request-target', async (_name, method, target) => {
    const before = protectedUpstream.received.length + publicUpstream.received.length;
    const res = await raw(target, { method, cookie: session });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toBe('BAD_PATH');
    expect(protectedUpstream.received.length + publicUpstream.received.length).toBe(before);
  });

  it('applies to the gateway’s own paths too', async () => {
    expect((await raw('/auth/static/../login')).status).toBe(400);
    expect((await raw('/_gatehouse/%2e%2e/healthz')).status).toBe(400);
  });
});

describe('prefix matching by whole segments', () => {
  it('serves /public, /public/ and /public/x without a session', async () => {
    for (const path of ['/public', '/public/', '/public/x/y?z=1']) {
      const res = await raw(path);
      expect(res.status, path).toBe(200);
      expect(publicUpstream.last().url).toBe(path);
    }
  });

  it('does not treat /publicity or /public.html as public', async () => {
    for (const path of ['/publicity', '/public.html', '/publicx/y']) {
      const before = publicUpstream.received.length;
      expect((await raw(path)).status, path).toBe(401);
      expect(publicUpstream.received.length).toBe(before);
      expect((await raw(path, { cookie: session })).status).toBe(200);
      expect(protectedUpstream.last().url).toBe(path);
    }
  });

  it('matches on the decoded path, so an encoded letter cannot dodge a stricter prefix', async () => {
    // /%61dmin is /admin to most frameworks: it must get /admin's rules (admins only)
    const res = await raw('/%61dmin/panel', { cookie: session });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).error).toBe('FORBIDDEN');
    // and an encoded public path is public, sent upstream as it was written
    expect((await raw('/%70ublic/x')).status).toBe(200);
    expect(publicUpstream.last().url).toBe('/%70ublic/x');
  });

  it('strips the prefix and sends the remainder with its original encoding', async () => {
    expect((await raw('/strip/a%20b/%41?q=%2F&x', { cookie: session })).status).toBe(200);
    expect(strippedUpstream.last().url).toBe('/base/a%20b/%41?q=%2F&x');
    expect((await raw('/strip', { cookie: session })).status).toBe(200);
    expect(strippedUpstream.last().url).toBe('/base/');
    expect((await raw('/strip?only=query', { cookie: session })).status).toBe(200);
    expect(strippedUpstream.last().url).toBe('/base/?only=query');
  });

  it('never routes the reserved prefixes, whatever the encoding', async () => {
    const before = protectedUpstream.received.length;
    expect((await raw('/_gatehouse/anything', { cookie: session })).status).toBe(404);
    expect((await raw('/%5fgatehouse/healthz', { cookie: session })).status).toBe(404);
    expect((await raw('/%61uth/validate', { cookie: session })).status).toBe(404);
    expect(protectedUpstream.received.length).toBe(before);
  });
});
