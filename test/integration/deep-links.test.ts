import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CookieJar } from '../helpers/cookie-jar.js';
import { type EchoUpstream, startEchoUpstream } from '../helpers/echo-upstream.js';
import { startGateway } from '../helpers/gateway.js';
import { type ServiceProcess, startSessionServiceProcess } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';

/**
 * Deep links as a browser (or curl) sends them, each a request-target the gateway proxies: the
 * links of issue 11 first, then encoded spaces, literal `%`, UTF-8, reserved characters, `;` and
 * `@` in segments, and queries with encoded `&`, `=`, `+`, `#`.
 */
const DEEP_LINKS = [
  '/files/Annual%20Report.pdf',
  '/a%25b',
  '/x/%E2%9C%93',
  '/search?q=a%26b',
  '/files/Annual%20Report%20(final).pdf',
  '/files/100%25/caf%C3%A9',
  '/files/%25bc',
  '/x/%e2%9c%93/',
  '/docs/%E6%97%A5%E6%9C%AC%E8%AA%9E?lang=ja',
  '/app;jsessionid=0123/page;v=1.2',
  '/@alice/alice@example.com',
  "/a/!$&'()*+,;=:@/b",
  '/wiki/C:/x|y^z[1]',
  '/.well-known/thing',
  '/search?q=a%3Db&r=a+b&s=a%2Bb&t=%23frag',
  '/search?q=100%',
  '/search?q=100%25&x=%FF',
  '/search?next=//evil.com&back=https://evil.com',
  '/search?q="x"&r=<b>&s={}&t=`x`',
  '/search?q=a\\b',
  '/?',
];

let redis: RedisServer;
let sessionService: ServiceProcess;
let upstream: EchoUpstream;
let close: () => void;
let base: string;

/** GET `target` exactly as written (fetch would normalise it). */
function get(
  target: string,
  headers: Record<string, string>,
): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(base);
    const req = http.get({ hostname, port, path: target, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location }));
    });
    req.on('error', reject);
  });
}

function unescapeHtml(value: string): string {
  return value
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([{ username: 'alice', password: PASSWORD }]);
  [sessionService, upstream] = await Promise.all([
    startSessionServiceProcess({
      redisUrl: redis.url,
      usersFile: users.path,
      // One login per link from the same address: more than the default 20 a minute.
      env: { LOGIN_THROTTLE_ADDRESS_ATTEMPTS: '1000' },
    }),
    startEchoUpstream(),
  ]);
  ({ url: base, close } = await startGateway({
    SESSION_SERVICE_URL: sessionService.url,
    UPSTREAM_URL: upstream.url,
  }));
});

afterAll(async () => {
  close?.();
  await upstream?.close();
  await sessionService?.stop();
  await redis?.stop();
});

describe('a deep link opened without a session', { timeout: 30_000 }, () => {
  it.each(DEEP_LINKS)('comes back from the login exactly: %s', async (link) => {
    // 1. The gateway sends the browser to the login, the link in rd.
    const first = await get(link, { accept: 'text/html' });
    expect(first.status).toBe(302);
    expect(first.location).toBe(`/auth/login?rd=${encodeURIComponent(link)}`);

    // 2. The login page carries rd in its form, unchanged.
    const jar = new CookieJar();
    const page = await jar.fetch(`${base}${first.location}`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    const html = await page.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
    const rd = unescapeHtml(/name="rd" value="([^"]*)"/.exec(html)?.[1] ?? '');
    expect(rd).toBe(link);

    // 3. Signing in answers 303 to the link, byte for byte.
    const login = await jar.fetch(`${base}/auth/login`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'text/html',
        'sec-fetch-site': 'same-origin',
      },
      body: new URLSearchParams({ username: 'alice', password: PASSWORD, rd, _csrf: token }),
    });
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe(link);

    // 4. Following it with the new session reaches the backend at that very path.
    const seen = upstream.received.length;
    const follow = await get(login.headers.get('location') as string, {
      accept: 'text/html',
      cookie: jar.header(),
    });
    expect(follow.status).toBe(200);
    expect(upstream.received.length).toBe(seen + 1);
    expect(upstream.last().url).toBe(link);
  });
});
