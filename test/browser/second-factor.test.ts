/**
 * Two-factor authentication in real Chromium through the real gateway, session-service and Redis
 * (issue 14): a user finds "Security" beside "Your sessions", sets up an authenticator app from
 * the QR page (the code computed by the test's own RFC 6238, as an app would), keeps the recovery
 * codes, then signs in on another browser with the password and the code. No script, no
 * third-party asset, nothing in the console (the CSP holds with the inline SVG QR code).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpAt } from '../helpers/totp.js';
import { screenshot, submitLogin, type TestBrowser } from './browser.js';
import { type BrowserSystem, startBrowserSystem } from './browser-system.js';

const PASSWORD = 'correct horse battery';
let running: BrowserSystem;
let first: TestBrowser;
let second: TestBrowser;
let gw: string;
let secret = '';

beforeAll(async () => {
  running = await startBrowserSystem({
    users: [{ username: 'alice', password: PASSWORD }],
    browsers: [{}, {}],
  });
  [first, second] = running.browsers as [TestBrowser, TestBrowser];
  gw = running.system.gateway.url;
});

afterAll(async () => {
  await running?.stop();
});

describe('setting up an authenticator app in Chromium', () => {
  it('from Your sessions to Security, the QR code, a first code, the recovery codes', async () => {
    const { page } = first;
    await page.goto(`${gw}/auth/sessions`);
    expect((await submitLogin(page, 'alice', PASSWORD)).status()).toBe(303);
    await page.waitForURL(`${gw}/auth/sessions`);
    await page.getByRole('link', { name: 'Security (two-factor authentication)' }).click();
    await page.waitForURL(`${gw}/auth/security`);
    await page.getByRole('link', { name: 'Set up an authenticator app' }).click();
    await page.waitForURL(`${gw}/auth/security/totp`);
    const qr = page.locator('figure.qr svg');
    await expect.poll(() => qr.isVisible()).toBe(true);
    const box = await qr.boundingBox();
    expect(box?.width).toBeGreaterThan(100);
    await screenshot(page, 'totp-enrol');

    await page.getByText("Can't scan it?").click();
    secret = ((await page.locator('#totp-secret').textContent()) ?? '').replace(/\s/g, '');
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    await page.getByLabel('Code from your authenticator app').fill(totpAt(secret, Date.now()));
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.waitForLoadState('load');
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(
      'Save your recovery codes',
    );
    expect(await page.locator('#recovery-codes li').count()).toBe(10);
    await page.getByRole('link', { name: 'Continue' }).click();
    await page.waitForURL(`${gw}/auth/security`);
    expect(await page.locator('#codes-left').textContent()).toBe('10');
    expect(first.take(() => true)).toEqual([]);
  });

  it('another browser signs in with the password, then the code on the second page', async () => {
    const { page } = second;
    await page.goto(`${gw}/`);
    expect((await submitLogin(page, 'alice', PASSWORD)).status()).toBe(303);
    await page.waitForURL(`${gw}/auth/login/second-factor`);
    await screenshot(page, 'totp-second-step');
    // The next step's code (one step of skew is allowed): the enrolment used this step's.
    await page.getByLabel('Code from your authenticator app').fill(totpAt(secret, Date.now(), 1));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL(`${gw}/`);
    const validate = await page.request.get(`${gw}/auth/validate`);
    expect(validate.status()).toBe(200);
    expect((await validate.json()).authentication.acr).toBe('aal2');
    expect(second.take(() => true)).toEqual([]);
  });
});
