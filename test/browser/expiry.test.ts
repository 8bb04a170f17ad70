/**
 * Session expiry in a real browser, on a system with short lifetimes (idle 2 s, absolute 4 s):
 * an ended session sends the user to the login page, and signing in takes them back to where
 * they were.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { submitLogin, type TestBrowser } from './browser.js';
import { type BrowserSystem, startBrowserSystem } from './browser-system.js';

const PASSWORD = 'correct horse battery';
const IDLE_MS = 2_000;
const ABSOLUTE_MS = 4_000;

let running: BrowserSystem;
let browser: TestBrowser;
let gw: string;

const loginUrl = (rd: string) => `${gw}/auth/login?rd=${encodeURIComponent(rd)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  running = await startBrowserSystem({
    users: [{ username: 'alice', password: PASSWORD }],
    system: {
      sessionEnv: {
        SESSION_IDLE_TIMEOUT: String(IDLE_MS / 1000),
        SESSION_ABSOLUTE_TIMEOUT: String(ABSOLUTE_MS / 1000),
      },
      // The gateway may reuse a validate answer briefly; keep that well under the 2 s idle
      // timeout, as it is in production (2 s against 30 min), or reuse would hide activity.
      gatewayEnv: { VALIDATE_CACHE_TTL_MS: '200' },
    },
  });
  [browser] = running.browsers as [TestBrowser];
  gw = running.system.gateway.url;
});

afterAll(async () => {
  await running?.stop();
});

afterEach(() => {
  expect(browser?.take(() => true) ?? []).toEqual([]);
});

/** Sign in from the login page the browser is on; it must land on `where`. */
async function signInAndLandOn(where: string) {
  const { page } = browser;
  expect((await submitLogin(browser.page, 'alice', PASSWORD)).status()).toBe(303);
  await page.waitForURL(`${gw}${where}`);
  expect(await page.locator('#username').textContent()).toBe('alice');
}

describe('an ended session', () => {
  it('idle too long: the next page is the login page, and signing in goes back there', async () => {
    const { page } = browser;
    await page.goto(`${gw}/?tab=idle`);
    expect(page.url()).toBe(loginUrl('/?tab=idle'));
    await signInAndLandOn('/?tab=idle');
    const lastRequest = Date.now();

    // Wait out the idle timeout (the one wait that has to be a wait), then come back.
    await sleep(lastRequest + IDLE_MS + 300 - Date.now());
    await page.reload();
    expect(page.url()).toBe(loginUrl('/?tab=idle'));
    await signInAndLandOn('/?tab=idle');
  });

  it('busy but old: the absolute timeout ends it all the same, and signing in goes back', async () => {
    const { page } = browser;
    await browser.context.clearCookies(); // a new visit: no session from the step before
    await page.goto(`${gw}/?tab=busy`);
    expect(page.url()).toBe(loginUrl('/?tab=busy'));
    const before = Date.now();
    await signInAndLandOn('/?tab=busy');
    const after = Date.now();

    // Keep using it, well within the idle timeout each time, until it ends.
    const stillIn: number[] = [];
    let endedAt = 0;
    while (Date.now() < after + ABSOLUTE_MS + 3_000) {
      await sleep(400);
      const sent = Date.now();
      await page.reload();
      if (page.url() !== `${gw}/?tab=busy`) {
        endedAt = sent;
        break;
      }
      stillIn.push(sent - before);
    }
    expect(page.url()).toBe(loginUrl('/?tab=busy'));
    // It outlived the idle timeout (activity slid it) and ended once the absolute one was up.
    expect(Math.max(...stillIn)).toBeGreaterThan(IDLE_MS + 500);
    expect(endedAt - before).toBeGreaterThanOrEqual(ABSOLUTE_MS - 100);
    expect(endedAt - after).toBeLessThan(ABSOLUTE_MS + 1_500);

    await signInAndLandOn('/?tab=busy');
  });
});
