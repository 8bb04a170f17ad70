/**
 * Two-factor authentication in real Chromium through the real gateway, session-service and Redis
 * (issue 14): a user finds "Security" beside "Your sessions", sets up an authenticator app from
 * the QR page (the code computed by the test's own RFC 6238, as an app would), keeps the recovery
 * codes, then signs in on another browser with the password and the code; a third browser, signed
 * in with the password before the app was set up, meets a route that requires a second factor
 * and steps up with a recovery code. No script, no third-party asset, nothing in the console (the
 * CSP holds with the inline SVG QR code). The screenshots are docs/second-factors.md's.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpAt } from '../helpers/totp.js';
import { screenshot, submitLogin, type TestBrowser } from './browser.js';
import { type BrowserSystem, startBrowserSystem } from './browser-system.js';
import { htmlPage, type PageServer, startPages } from './pages.js';

const PASSWORD = 'correct horse battery';
const NO_ICON = '<link rel="icon" href="data:,">';
let app: PageServer;
let running: BrowserSystem;
let first: TestBrowser;
let second: TestBrowser;
let third: TestBrowser;
let gw: string;
let secret = '';
let recoveryCodes: string[] = [];

beforeAll(async () => {
  // The app behind the gateway: a home page, and an admin page that shows how the session signed
  // in (the gateway's headers), on a route that requires a second factor (docs' example).
  app = await startPages({
    '/': () => ({ html: htmlPage('Home', '<h1>Home</h1>', NO_ICON) }),
    '/admin': (req) => ({
      html: htmlPage(
        'Admin',
        `<h1>Admin</h1><p id="acr">${String(req.headers['x-auth-request-acr'])}</p><p id="amr">${String(req.headers['x-auth-request-amr'])}</p>`,
        NO_ICON,
      ),
    }),
  });
  const routesFile = join(mkdtempSync(join(tmpdir(), 'gatehouse-2fa-')), 'routes.yaml');
  writeFileSync(
    routesFile,
    `routes:
  - id: app
    upstream: http://127.0.0.1:${app.port}
  - id: admin
    path: /admin
    upstream: http://127.0.0.1:${app.port}
    require: second-factor
    maxAge: 900
`,
  );
  running = await startBrowserSystem({
    users: [{ username: 'alice', password: PASSWORD }],
    system: { gatewayEnv: { GATEWAY_ROUTES: routesFile } },
    browsers: [{}, {}, {}],
  });
  [first, second, third] = running.browsers as [TestBrowser, TestBrowser, TestBrowser];
  gw = running.system.gateway.url;
});

afterAll(async () => {
  await running?.stop();
  await app?.close();
});

describe('setting up an authenticator app in Chromium', () => {
  it('a third browser signs in with the password alone before the app is set up: aal1', async () => {
    const { page } = third;
    await page.goto(`${gw}/`);
    expect((await submitLogin(page, 'alice', PASSWORD)).status()).toBe(303);
    await page.waitForURL(`${gw}/`);
    const validate = await page.request.get(`${gw}/auth/validate`);
    expect((await validate.json()).authentication.acr).toBe('aal1');
  });

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
    recoveryCodes = (await page.locator('#recovery-codes li').allTextContents()).map((c) =>
      c.trim(),
    );
    await screenshot(page, 'recovery-codes');
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

describe('a route that requires a second factor, in Chromium', () => {
  it('sends a password-only session to the step-up page; a recovery code takes it on with aal2', async () => {
    const { page } = third;
    await page.goto(`${gw}/admin`);
    await page.waitForURL((url) => url.pathname === '/auth/step-up');
    const asked = new URL(page.url());
    expect(asked.searchParams.get('rd')).toBe('/admin');
    expect(asked.searchParams.get('need')).toBe('second-factor');
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Confirm it is you');
    await screenshot(page, 'step-up');

    await page.getByText('Use a recovery code instead').click();
    await page.getByLabel('Recovery code').fill(recoveryCodes[0] ?? '');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForLoadState('load');
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Recovery code used');
    expect(await page.locator('#codes-left').textContent()).toBe('9');
    await page.getByRole('link', { name: 'Continue' }).click();
    await page.waitForURL(`${gw}/admin`);
    expect(await page.locator('#acr').textContent()).toBe('aal2');
    expect(await page.locator('#amr').textContent()).toBe('pwd,otp,mfa');
    expect(third.take(() => true)).toEqual([]);
  });
});
