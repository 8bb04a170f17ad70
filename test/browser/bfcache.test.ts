/**
 * The back/forward cache, on as in every real browser (Playwright turns it off by default; see
 * launchBrowser): first proof that it is on, then the journey it matters for. A backend that
 * sends no Cache-Control, the user signs out with the page's own button, presses Back: the
 * private page must not come back from memory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { System } from '../helpers/processes.js';
import { bodyText, launchBrowser, submitLogin, type TestBrowser } from './browser.js';
import { type BrowserSystem, startBrowserSystem } from './browser-system.js';
import { htmlPage, type PageServer, startPages } from './pages.js';

const PASSWORD = 'correct horse battery';
/** Every `pageshow`'s `persisted`, in order: true when the page came back from the bfcache. */
const RECORD_SHOWS =
  "<script>window.shows = []; addEventListener('pageshow', (e) => window.shows.push(e.persisted));</script>";
/** No favicon request (it would be a 404 in the console). */
const NO_ICON = '<link rel="icon" href="data:,">';

let running: BrowserSystem;
let system: System;
/** Public pages, and the backend behind the gateway: neither sends any Cache-Control. */
let site: PageServer;
let backend: PageServer;
let browser: TestBrowser;
let gw: string;

beforeAll(async () => {
  [site, backend] = await Promise.all([
    startPages({
      '/a': () => ({ html: htmlPage('A', '<p>Page A</p>', RECORD_SHOWS + NO_ICON) }),
      '/b': () => ({ html: htmlPage('B', '<p>Page B</p>', NO_ICON) }),
    }),
    startPages({
      '/private': (req) => ({
        html: htmlPage(
          'Private',
          `<h1>Private page of ${String(req.headers['x-auth-request-user'] ?? 'nobody')}</h1>
<form method="post" action="/auth/logout"><button type="submit">Sign out</button></form>`,
          RECORD_SHOWS + NO_ICON,
        ),
      }),
    }),
  ]);
  running = await startBrowserSystem({
    users: [{ username: 'alice', password: PASSWORD }],
    system: { gatewayEnv: { UPSTREAM_URL: `http://127.0.0.1:${backend.port}` } },
  });
  system = running.system;
  [browser] = running.browsers as [TestBrowser];
  gw = system.gateway.url;
});

afterAll(async () => {
  await running?.stop();
  await Promise.all([site?.close(), backend?.close()]);
});

/** Open A, go on to B, press Back: what A's pageshow events said (true: from the bfcache). */
async function backToA(b: TestBrowser): Promise<boolean[]> {
  const base = `http://127.0.0.1:${site.port}`;
  await b.page.goto(`${base}/a`);
  // Forget A's first pageshow: from here on only the one Back causes counts.
  await b.page.evaluate('window.shows.length = 0');
  await b.page.goto(`${base}/b`);
  // A page restored from the bfcache fires no load event: wait for the commit, then pageshow.
  await b.page.goBack({ waitUntil: 'commit' });
  await expect.poll(() => b.page.evaluate('window.shows?.length ?? 0')).toBeGreaterThan(0);
  return (await b.page.evaluate('window.shows')) as boolean[];
}

describe('the back/forward cache in the test browser', () => {
  it('is on: Back restores a plain public page from memory (pageshow persisted)', async () => {
    expect(await backToA(browser)).toEqual([true]);
    expect(browser.take(() => true)).toEqual([]);
  });

  it("is off with Playwright's default switches: the same steps load the page again", async () => {
    const plain = await launchBrowser({ bfcache: false });
    try {
      expect(await backToA(plain)).toEqual([false]);
    } finally {
      await plain.close();
    }
  });
});

describe('signing out of a backend page sent without Cache-Control', () => {
  it('Back after Sign out shows the login page, not the private page from the back/forward cache', async () => {
    const { page } = browser;
    await page.goto(`${gw}/private`);
    expect(page.url()).toBe(`${gw}/auth/login?rd=${encodeURIComponent('/private')}`);
    expect((await submitLogin(page, 'alice', PASSWORD)).status()).toBe(303);
    await page.waitForURL(`${gw}/private`);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(
      'Private page of alice',
    );

    await page.evaluate('window.shows.length = 0');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${gw}/auth/login`);
    // Chromium's line that it honoured the logout's Clear-Site-Data comes on its own schedule,
    // after the navigation: wait for it, or it would be left over for the last assertion.
    const cleared: unknown[] = [];
    await expect
      .poll(
        () => {
          cleared.push(
            ...browser.take(
              (n) => n.type === 'info' && n.text.startsWith('Clear-Site-Data header'),
            ),
          );
          return cleared.length;
        },
        { timeout: 10_000 },
      )
      .toBeGreaterThan(0);

    // From the bfcache the page comes back without a load event: wait for the commit and a
    // complete document, whichever it is, then look.
    await page.goBack({ waitUntil: 'commit' });
    // Polled through page.evaluate, not page.waitForFunction: that one evaluates its predicate with
    // eval() inside the page, which the login page's CSP (no 'unsafe-eval') refuses whenever the
    // first poll lands there (a clean-clone run failed so once).
    await expect
      .poll(() => page.evaluate('document.readyState').catch(() => 'navigating'), {
        timeout: 10_000,
      })
      .toBe('complete');
    // Restored from memory, the page would still say whose it is (and its pageshow `persisted`).
    const restored = (await page.evaluate('window.shows ?? null')) as boolean[] | null;
    expect({ url: page.url(), restored }).toEqual({
      url: `${gw}/auth/login?rd=${encodeURIComponent('/private')}`,
      restored: null,
    });
    expect(await bodyText(page)).not.toContain('Private page');
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in');
    expect(browser.take(() => true)).toEqual([]);
  });
});
