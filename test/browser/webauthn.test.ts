/**
 * WebAuthn in real Chromium with CDP virtual authenticators, through the real gateway,
 * session-service and Redis (issue 14): a passkey (ctap2, internal, resident keys, user
 * verification) added on the security page signs in alone, no password, at aal2; a u2f security
 * key (usb, no resident keys) is the login's second factor and answers a `need=webauthn`
 * step-up; an answer made on another origin is refused, and so is a key whose counter went
 * backwards (audited); a passkey renamed and then removed on the security page signs nobody in
 * though the authenticator still holds it, and the user's other sessions end. The browser reaches the gateway as `localhost`: an RP ID is a domain, never
 * an IP address, and no PUBLIC_URL is set, so the RP is the request's own origin.
 */
import type { CDPSession, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { screenshot, submitLogin, type TestBrowser } from './browser.js';
import { type BrowserSystem, startBrowserSystem } from './browser-system.js';
import { type PageServer, startPages } from './pages.js';

const PASSWORD = 'correct horse battery';
let running: BrowserSystem;
let passkeyBrowser: TestBrowser;
let keyBrowser: TestBrowser;
let gw: string;
let other: PageServer;

interface VirtualCredential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId?: string;
  privateKey: string;
  userHandle?: string;
  signCount: number;
}

/** A virtual authenticator on the browser's page (CDP WebAuthn domain). */
async function addAuthenticator(page: Page, options: Record<string, unknown>) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: options as never,
  });
  return { cdp, authenticatorId };
}

const credentialsOf = async (cdp: CDPSession, authenticatorId: string) =>
  (await cdp.send('WebAuthn.getCredentials', { authenticatorId }))
    .credentials as VirtualCredential[];

async function authentication(page: Page) {
  const res = await page.request.get(`${gw}/auth/validate`);
  expect(res.status()).toBe(200);
  return (await res.json()).authentication as { amr: string[]; acr: string };
}

async function addKey(page: Page, name: string) {
  await page.goto(`${gw}/auth/security`);
  await page.getByLabel('Name for the new key').fill(name);
  await page.getByRole('button', { name: 'Add a security key or passkey' }).click();
  await expect.poll(() => page.locator('#webauthn-keys').textContent()).toContain(name);
}

const audited = (event: string) => running.system.sessionService.output().includes(`"${event}"`);

let passkey: { cdp: CDPSession; authenticatorId: string };
/** The user handles of alice's passkeys on the virtual authenticator (the rest are carol's). */
const alicesHandles = new Set<string>();
let securityKey: { cdp: CDPSession; authenticatorId: string };

beforeAll(async () => {
  running = await startBrowserSystem({
    users: [
      { username: 'alice', password: PASSWORD },
      { username: 'bob', password: PASSWORD },
      { username: 'carol', password: PASSWORD },
    ],
    browsers: [{}, {}],
  });
  [passkeyBrowser, keyBrowser] = running.browsers as [TestBrowser, TestBrowser];
  gw = `http://localhost:${running.system.gateway.port}`;
  passkey = await addAuthenticator(passkeyBrowser.page, {
    protocol: 'ctap2',
    transport: 'internal',
    hasResidentKey: true,
    hasUserVerification: true,
    isUserVerified: true,
  });
  securityKey = await addAuthenticator(keyBrowser.page, {
    protocol: 'u2f',
    transport: 'usb',
    hasResidentKey: false,
    hasUserVerification: false,
  });
  other = await startPages({ '/': () => ({ html: '<!doctype html><title>other</title>' }) });
});

afterAll(async () => {
  await other?.close();
  await running?.stop();
});

describe('a passkey in Chromium', () => {
  it('is added from the security page after signing in with the password', async () => {
    const { page } = passkeyBrowser;
    await page.goto(`${gw}/auth/security`);
    expect((await submitLogin(page, 'alice', PASSWORD)).status()).toBe(303);
    await page.waitForURL(`${gw}/auth/security`);
    await addKey(page, 'Laptop');
    await screenshot(page, 'webauthn-security');
    const [credential] = await credentialsOf(passkey.cdp, passkey.authenticatorId);
    expect(credential?.isResidentCredential).toBe(true);
    alicesHandles.add(credential?.userHandle ?? '');
    expect(passkeyBrowser.take(() => true)).toEqual([]);
  });

  it('signs in alone, without a password, at aal2 (hwk + user)', async () => {
    const { page, context } = passkeyBrowser;
    await context.clearCookies();
    await page.goto(`${gw}/`);
    await page.waitForURL(/\/auth\/login/);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL(`${gw}/`);
    const auth = await authentication(page);
    expect(auth.acr).toBe('aal2');
    expect(auth.amr).toEqual(['hwk', 'user', 'mfa']);
    expect(audited('login.success')).toBe(true);
    expect(passkeyBrowser.take(() => true)).toEqual([]);
  });

  it('refuses an answer made on another origin (same RP ID, another port)', async () => {
    const { page, context } = passkeyBrowser;
    await context.clearCookies();
    await page.goto(`${gw}/auth/login`);
    const csrf = await page.locator('input[name=_csrf]').first().inputValue();
    const options = await page.evaluate(async (token) => {
      const res = await fetch('/auth/login/passkey/options', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': token },
        body: '{}',
      });
      return res.json();
    }, csrf);
    // The same authenticator, on http://localhost:<other port>: the browser allows the RP ID
    // (a registrable suffix of that origin too); only the server's origin check can refuse it.
    await page.goto(`http://localhost:${other.port}/`);
    const credential = await page.evaluate(async (opts) => {
      const b64 = (s: string) =>
        Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
      const out = (b: ArrayBuffer) =>
        btoa(String.fromCharCode(...new Uint8Array(b)))
          .replace(/\+/g, '-')
          .replace(/\//g, '_')
          .replace(/=+$/, '');
      const got = (await navigator.credentials.get({
        publicKey: { ...opts, challenge: b64(opts.challenge), allowCredentials: [] },
      })) as PublicKeyCredential;
      const r = got.response as AuthenticatorAssertionResponse;
      return {
        id: got.id,
        rawId: out(got.rawId),
        type: got.type,
        clientExtensionResults: {},
        response: {
          clientDataJSON: out(r.clientDataJSON),
          authenticatorData: out(r.authenticatorData),
          signature: out(r.signature),
          ...(r.userHandle ? { userHandle: out(r.userHandle) } : {}),
        },
      };
    }, options);
    await page.goto(`${gw}/auth/login`);
    const status = await page.evaluate(
      async ({ token, body }) =>
        (
          await fetch('/auth/login/passkey', {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-csrf-token': token },
            body: JSON.stringify(body),
          })
        ).status,
      { token: csrf, body: { credential } },
    );
    expect(status).toBe(401);
    expect((await page.request.get(`${gw}/auth/validate`)).status()).toBe(401);
    // The assertion itself was refused (clientDataJSON names the other origin), not its absence.
    expect(running.system.sessionService.output()).toMatch(
      /"event":"login\.failure"[^\n]*"method":"passkey"[^\n]*"reason":"invalid"/,
    );
    passkeyBrowser.take((n) => n.text.includes('401') || n.url.endsWith('/favicon.ico'));
    expect(passkeyBrowser.take(() => true)).toEqual([]);
  });
});

describe('a security key (u2f, no resident key) in Chromium', () => {
  it('is added on the security page', async () => {
    const { page } = keyBrowser;
    await page.goto(`${gw}/auth/security`);
    expect((await submitLogin(page, 'bob', PASSWORD)).status()).toBe(303);
    await page.waitForURL(`${gw}/auth/security`);
    await addKey(page, 'YubiKey');
    const [credential] = await credentialsOf(securityKey.cdp, securityKey.authenticatorId);
    expect(credential?.isResidentCredential).toBe(false);
  });

  it('is the second step of a password sign-in: pwd + hwk, aal2', async () => {
    const { page, context } = keyBrowser;
    await context.clearCookies();
    await page.goto(`${gw}/`);
    expect((await submitLogin(page, 'bob', PASSWORD)).status()).toBe(303);
    await page.waitForURL(`${gw}/auth/login/second-factor`);
    await screenshot(page, 'webauthn-second-step');
    await page.getByRole('button', { name: 'Use your security key or passkey' }).click();
    await page.waitForURL(`${gw}/`);
    const auth = await authentication(page);
    expect(auth.amr).toEqual(['pwd', 'hwk', 'mfa']);
    expect(auth.acr).toBe('aal2');
    expect(keyBrowser.take(() => true)).toEqual([]);
  });

  it('answers a step-up for need=webauthn and goes back to where it was going', async () => {
    const { page } = keyBrowser;
    await page.goto(`${gw}/auth/step-up?need=webauthn&rd=%2Fauth%2Fsessions`);
    await page.getByRole('button', { name: 'Use your security key or passkey' }).click();
    await page.waitForURL(`${gw}/auth/sessions`);
    expect(audited('step_up.success')).toBe(true);
  });

  it('is refused, and audited, when its counter goes backwards (a cloned key)', async () => {
    const { page } = keyBrowser;
    const { cdp, authenticatorId } = securityKey;
    const [used] = await credentialsOf(cdp, authenticatorId);
    expect(used?.signCount).toBeGreaterThan(1);
    // The "clone": the same key pair with an older counter.
    await cdp.send('WebAuthn.removeCredential', {
      authenticatorId,
      credentialId: used?.credentialId ?? '',
    });
    await cdp.send('WebAuthn.addCredential', {
      authenticatorId,
      // A u2f credential is listed without its RP ID; adding one back needs it.
      credential: { ...(used as VirtualCredential), rpId: 'localhost', signCount: 0 },
    });
    await page.goto(`${gw}/auth/step-up?need=webauthn&rd=%2F`);
    await page.getByRole('button', { name: 'Use your security key or passkey' }).click();
    const alert = page.locator('.webauthn .error');
    await expect.poll(() => alert.textContent()).toContain('counter went backwards');
    expect(audited('webauthn.counter_regression')).toBe(true);
    keyBrowser.take((n) => n.text.includes('401'));
    expect(keyBrowser.take(() => true)).toEqual([]);
  });
});

describe('renaming and removing a passkey on the security page', () => {
  /** A session of carol's made elsewhere (a script's JSON sign-in): the "other session". */
  let elsewhere = '';
  const validates = async (cookie: string) =>
    (await fetch(`${gw}/auth/validate`, { headers: { cookie } })).status;

  it('is added, then renamed (the name escaped as text)', async () => {
    const { page, context } = passkeyBrowser;
    const login = await fetch(`${gw}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ username: 'carol', password: PASSWORD }),
    });
    expect(login.status).toBe(200);
    elsewhere = (login.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
    expect(await validates(elsewhere)).toBe(200);
    await context.clearCookies();
    await page.goto(`${gw}/auth/security`);
    expect((await submitLogin(page, 'carol', PASSWORD)).status()).toBe(303);
    await page.waitForURL(`${gw}/auth/security`);
    await addKey(page, 'Work laptop');
    const item = page.locator('#webauthn-keys li');
    await item.getByLabel('New name for Work laptop').fill('<i>Home</i> & co');
    await item.getByRole('button', { name: 'Rename' }).click();
    await page.waitForURL(`${gw}/auth/security?key-renamed=1`);
    await expect.poll(() => item.locator('strong').textContent()).toBe('<i>Home</i> & co');
    expect(await item.locator('i').count()).toBe(0);
    expect(audited('webauthn.renamed')).toBe(true);
  });

  it('is removed: the other sessions end, and the passkey, still on the device, signs nobody in', async () => {
    const { page, context } = passkeyBrowser;
    const { cdp, authenticatorId } = passkey;
    const carols = (await credentialsOf(cdp, authenticatorId)).filter(
      (c) => c.userHandle !== undefined && !alicesHandles.has(c.userHandle),
    );
    expect(carols).toHaveLength(1);
    await page.getByRole('button', { name: 'Remove <i>Home</i> & co' }).click();
    await page.waitForURL(/\/auth\/security\?key-removed=1$/);
    await expect
      .poll(() => page.getByRole('status').textContent())
      .toContain('is removed: it signs nobody in. Ended 1 other session(s).');
    expect(await page.locator('#webauthn-keys').count()).toBe(0);
    expect(running.system.sessionService.output()).toContain(
      `"credentialId":"${carols[0]?.credentialId.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')}"`,
    );
    expect(await validates(elsewhere)).toBe(401);
    expect((await page.request.get(`${gw}/auth/validate`)).status()).toBe(200);

    // Only carol's passkey left on the authenticator, so the browser offers that one.
    for (const c of await credentialsOf(cdp, authenticatorId))
      if (c.credentialId !== carols[0]?.credentialId)
        await cdp.send('WebAuthn.removeCredential', {
          authenticatorId,
          credentialId: c.credentialId,
        });
    expect(await credentialsOf(cdp, authenticatorId)).toHaveLength(1);
    await context.clearCookies();
    await page.goto(`${gw}/auth/login`);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    const alert = page.locator('.webauthn .error');
    await expect.poll(() => alert.textContent()).toContain('was not accepted');
    expect((await page.request.get(`${gw}/auth/validate`)).status()).toBe(401);
    expect(running.system.sessionService.output()).toMatch(
      /"event":"login\.failure"[^\n]*"method":"passkey"[^\n]*"reason":"unknown-credential"/,
    );
    passkeyBrowser.take((n) => n.text.includes('401'));
    expect(passkeyBrowser.take(() => true)).toEqual([]);
  });
});
