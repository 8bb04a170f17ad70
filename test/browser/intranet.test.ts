/**
 * Cross-site request forgery defences in a real browser, on every kind of address the docs allow:
 * a plain-HTTP intranet name (`http://intranet.test:<port>`: not localhost, no TLS, so Chromium
 * sends no Sec-Fetch-* headers and Origin is all there is), localhost, and HTTPS behind nginx.
 * Signing in, signing out and revoking must work on each; forms that another origin (another
 * site, or another port of the same name) submits to the login and logout endpoints must be
 * refused and change nothing in Redis.
 */
import type { Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NginxServer, startNginx } from '../helpers/nginx.js';
import type { System } from '../helpers/processes.js';
import type { RedisServer } from '../helpers/redis.js';
import {
  bodyText,
  httpStatusMessage,
  launchBrowser,
  type Noted,
  submitLogin,
  type TestBrowser,
} from './browser.js';
import { type BrowserSystem, startBrowserSystem } from './browser-system.js';
import { htmlPage, type PageServer, startPages } from './pages.js';

const PASSWORD = 'correct horse battery';
const MALLORY_PASSWORD = 'mallory horse battery';
/** Made-up names, resolved by Chromium itself to 127.0.0.1 (no DNS). */
const HOSTS = '--host-resolver-rules=MAP intranet.test 127.0.0.1, MAP evil.test 127.0.0.1';

let running: BrowserSystem;
let redis: RedisServer;
let system: System;
/** Another origin's pages: forms that submit themselves to Gatehouse. */
let attacker: PageServer;
/** Alice's browser, and her second one (to revoke). */
let laptop: TestBrowser;
let second: TestBrowser;
/** http://intranet.test:<gateway port> */
let lan: string;

beforeAll(async () => {
  attacker = await startPages({
    // ?to=<url>&user=<name>&pass=<password>&noreferrer=1: a form posting itself to `to`.
    '/forge': (req) => {
      const query = new URL(req.url ?? '/', 'http://x').searchParams;
      const fields = ['user', 'pass']
        .filter((f) => query.has(f))
        .map(
          (f) =>
            `<input type="hidden" name="${f === 'user' ? 'username' : 'password'}" value="${query.get(f)}">`,
        )
        .join('');
      // no-referrer makes the browser send `Origin: null` (the Fetch spec's origin serialization).
      const head = query.has('noreferrer') ? '<meta name="referrer" content="no-referrer">' : '';
      return {
        html: htmlPage(
          'Win a prize',
          `<form method="post" action="${query.get('to')}">${fields}<input type="hidden" name="rd" value="/"></form>
<script>document.forms[0].submit();</script>`,
          `${head}<link rel="icon" href="data:,">`,
        ),
      };
    },
  });
  running = await startBrowserSystem({
    users: [
      { username: 'alice', password: PASSWORD },
      { username: 'mallory', password: MALLORY_PASSWORD },
    ],
    browsers: [{ args: [HOSTS] }, { args: [HOSTS] }],
  });
  ({ redis, system } = running);
  [laptop, second] = running.browsers as [TestBrowser, TestBrowser];
  lan = `http://intranet.test:${system.gateway.port}`;
});

afterAll(async () => {
  await running?.stop();
  await attacker?.close();
});

/**
 * What Chromium prints about a plain-HTTP page, whatever the page: it ignores COOP,
 * Origin-Agent-Cluster and Clear-Site-Data from origins that are not potentially trustworthy.
 * Expected there; anything else in the console is still a failure.
 */
const insecureOriginNote = (n: Noted) =>
  n.kind === 'console' &&
  n.url.startsWith('http://intranet.test:') &&
  (n.text.startsWith('The Cross-Origin-Opener-Policy header has been ignored, because the URL') ||
    n.text.startsWith('The page requested an origin-keyed agent cluster') ||
    /^Clear-Site-Data header on '[^']+': Not supported for insecure origins\.$/.test(n.text));
/** Every console message and page error of `b` so far, minus the plain-HTTP notes. */
const unexpected = (b: TestBrowser) => b.take(() => true).filter((n) => !insecureOriginNote(n));

const loginUrl = (base: string, rd: string) => `${base}/auth/login?rd=${encodeURIComponent(rd)}`;
const everything = async () => (await redis.client.keys('*')).sort();
const isPost = (path: string) => (r: Request) =>
  r.method() === 'POST' && new URL(r.url()).pathname === path;

/** Sign in from `base`'s home page; answers the headers the browser sent with the form. */
async function signIn(b: TestBrowser, base: string) {
  const { page } = b;
  await page.goto(`${base}/`);
  expect(page.url()).toBe(loginUrl(base, '/'));
  const sent = page.waitForRequest(isPost('/auth/login'));
  const answer = await submitLogin(page, 'alice', PASSWORD);
  expect(answer.status()).toBe(303);
  await page.waitForURL(`${base}/`);
  expect(await page.locator('#username').textContent()).toBe('alice');
  return (await sent).allHeaders();
}

/** Sign out with the demo-app's button; answers the headers the browser sent. */
async function signOut(b: TestBrowser, base: string) {
  const { page } = b;
  await page.goto(`${base}/`);
  const sent = page.waitForRequest(isPost('/auth/logout'));
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${base}/auth/login`);
  b.take((n) => n.type === 'info' && n.text.startsWith('Clear-Site-Data header'));
  return (await sent).allHeaders();
}

/** Is the browser signed in at `base`? (A fresh request, through the gateway.) */
async function signedInAs(page: Page, base: string): Promise<string | null> {
  await page.goto(`${base}/`);
  if (page.url() !== `${base}/`) return null;
  return page.locator('#username').textContent();
}

describe('on a plain-HTTP intranet name (no TLS, not localhost)', () => {
  it('signs in: the form carries our Origin (no Sec-Fetch-Site on plain HTTP)', async () => {
    const sent = await signIn(laptop, lan);
    // What makes this deployment different: no Fetch Metadata, a real Origin (not null).
    expect(sent['sec-fetch-site']).toBeUndefined();
    expect(sent.origin).toBe(lan);
    expect(unexpected(laptop)).toEqual([]);
  });

  it('revokes another session from "Your sessions"', async () => {
    await signIn(second, lan);
    const { page } = laptop;
    await page.goto(`${lan}/auth/sessions`);
    expect(await page.locator('table.sessions tbody tr').count()).toBe(2);
    const sent = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/revoke'));
    await page.getByRole('button', { name: /^Revoke/ }).click();
    await page.waitForURL(`${lan}/auth/sessions`);
    expect((await sent).headers().origin).toBe(lan);
    expect(await page.locator('table.sessions tbody tr').count()).toBe(1);
    expect(await signedInAs(second.page, lan)).toBeNull();
    expect([...unexpected(laptop), ...unexpected(second)]).toEqual([]);
  });

  describe('forms that another origin submits by itself', () => {
    // Another site, and another port of the same name: same-site, and it shares our cookies.
    const origins = () => [
      `http://evil.test:${attacker.port}`,
      `http://intranet.test:${attacker.port}`,
    ];

    /** Visit the forged page; it posts itself to `path`; answers the status and what was sent. */
    async function forged(base: string, path: string, query: Record<string, string>) {
      const { page } = laptop;
      const url = `${base}/forge?${new URLSearchParams({ to: `${lan}${path}`, ...query })}`;
      const answered = page.waitForResponse((r) => isPost(path)(r.request()));
      await page.goto(url);
      const answer = await answered;
      await page.waitForURL(`${lan}${path}`);
      expect(laptop.take(httpStatusMessage(answer.status(), `${lan}${path}`))).toHaveLength(
        answer.status() >= 400 ? 1 : 0,
      );
      return {
        status: answer.status(),
        origin: (await answer.request().allHeaders()).origin,
        text: await bodyText(page),
      };
    }

    it('a forged logout is refused with 403 and the session stays (Origin foreign or null)', async () => {
      expect(await signedInAs(laptop.page, lan)).toBe('alice');
      const before = await everything();
      for (const base of origins()) {
        for (const noreferrer of [false, true]) {
          const what = `${base}${noreferrer ? ' (no-referrer)' : ''}`;
          const got = await forged(base, '/auth/logout', noreferrer ? { noreferrer: '1' } : {});
          expect(got.origin, what).toBe(noreferrer ? 'null' : base);
          expect(got.status, what).toBe(403);
          expect(got.text, what).toContain('Cross-site requests are not allowed.');
        }
      }
      expect(await everything()).toEqual(before);
      expect(await signedInAs(laptop.page, lan)).toBe('alice');
      expect(unexpected(laptop)).toEqual([]);
    });

    it("a forged login into the attacker's account is refused with 403 and nothing is written", async () => {
      const before = await everything();
      for (const base of origins()) {
        for (const noreferrer of [false, true]) {
          const what = `${base}${noreferrer ? ' (no-referrer)' : ''}`;
          const got = await forged(base, '/auth/login', {
            user: 'mallory',
            pass: MALLORY_PASSWORD,
            ...(noreferrer ? { noreferrer: '1' } : {}),
          });
          expect(got.origin, what).toBe(noreferrer ? 'null' : base);
          expect(got.status, what).toBe(403);
        }
      }
      expect(await everything()).toEqual(before);
      // Still alice, never mallory.
      expect(await signedInAs(laptop.page, lan)).toBe('alice');
      expect(unexpected(laptop)).toEqual([]);
    });
  });

  it("signs out with the app's own button (its page's Origin proves it)", async () => {
    const sent = await signOut(laptop, lan);
    expect(sent['sec-fetch-site']).toBeUndefined();
    expect(sent.origin).toBe(lan);
    expect(await signedInAs(laptop.page, lan)).toBeNull();
    expect(unexpected(laptop)).toEqual([]);
  });
});

describe('on localhost (Chromium sends Fetch Metadata there)', () => {
  it('signs in and out', async () => {
    const local = `http://localhost:${system.gateway.port}`;
    const sent = await signIn(second, local);
    expect(sent['sec-fetch-site']).toBe('same-origin');
    expect((await signOut(second, local))['sec-fetch-site']).toBe('same-origin');
    expect(await signedInAs(second.page, local)).toBeNull();
    expect(unexpected(second)).toEqual([]);
  });
});

describe('over HTTPS behind nginx, on the intranet name', () => {
  let nginx: NginxServer;
  let tls: TestBrowser;

  beforeAll(async () => {
    nginx = await startNginx({
      template: 'edge',
      vars: { GATEWAY_UPSTREAM: `127.0.0.1:${system.gateway.port}`, SERVER_NAME: 'intranet.test' },
    });
    // A browser of its own: nginx sends HSTS, which would turn the plain-HTTP name into https.
    tls = await launchBrowser({ args: [HOSTS, '--ignore-certificate-errors'] });
  });

  afterAll(async () => {
    await tls?.close();
    await nginx?.stop();
  });

  it('signs in and out (Sec-Fetch-Site same-origin, X-Forwarded-* from nginx and the gateway)', async () => {
    const secure = `https://intranet.test:${nginx.httpsPort}`;
    const sent = await signIn(tls, secure);
    expect(sent['sec-fetch-site']).toBe('same-origin');
    expect(sent.origin).toBe(secure);
    expect((await signOut(tls, secure))['sec-fetch-site']).toBe('same-origin');
    expect(await signedInAs(tls.page, secure)).toBeNull();
    expect(tls.take(() => true)).toEqual([]);
  });
});
