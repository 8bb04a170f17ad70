/**
 * "Sign in with an OpenID Connect provider" (issue 15) in real Chromium, through the real gateway,
 * session-service and Redis, against two test OpenID Providers configured at once (oidc-system.ts):
 * the round trip back to the deep link with the claims mapped (nested roles, Entra group ids),
 * the groups a route allows, the domain and group refusals, a cancel at the provider, the second
 * step for a user with an authenticator app (and none when the provider vouches for MFA), and
 * signing out: at the provider too or not, and back-channel logout from the provider's own page.
 *
 * Tampered callbacks and ID tokens, key rotation and a provider that is down: oidc-tokens.test.ts.
 */
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { externalUserId } from '../../session-service/src/domain/external-users.js';
import { OIDC_LOGIN_FORM, OIDC_LOGOUT_FORM } from '../helpers/oidc-provider.js';
import { storedAuthOf } from '../helpers/stored-sessions.js';
import { totpAt } from '../helpers/totp.js';
import type { Noted } from './browser.js';
import {
  countKeys,
  ENTRA,
  GOLD_ACR,
  KC,
  type OidcBrowserSystem,
  sessionIdOf,
  signInAtProvider,
  startOidcBrowserSystem,
  statusLine,
  storedSessionOf,
  type Tab,
  toProvider,
} from './oidc-system.js';

let s: OidcBrowserSystem;
const opened: Tab[] = [];
/** Alice (Keycloak) and Bob (Entra ID), signed in by the first tests, used by the next ones. */
let alice: Tab;
let bob: Tab;

/** A new browser for one test; every console message it printed is checked after the test. */
async function fresh(): Promise<Tab> {
  const tab = await s.fresh();
  opened.push(tab);
  return tab;
}

beforeAll(async () => {
  s = await startOidcBrowserSystem();
}, 120_000);

afterAll(async () => {
  await s?.stop();
});

afterEach(async () => {
  const unexpected = [...opened, alice, bob].flatMap((t) => t?.take(() => true) ?? []);
  await Promise.all(opened.splice(0).map((t) => t.close()));
  expect(unexpected).toEqual([]);
});

/**
 * Wait (with a deadline) until `count` notes matching `match` have come, and take them: Chromium's
 * console lines arrive on their own schedule, after the navigation that caused them.
 */
async function expectNoted(tab: Tab, match: (n: Noted) => boolean, count: number) {
  const seen: Noted[] = [];
  // (10 s: a clean-clone run on Node 24 saw the line come later than the default second)
  await expect
    .poll(
      () => {
        seen.push(...tab.take(match));
        return seen.length;
      },
      { timeout: 10_000 },
    )
    .toBe(count);
}

/** Chromium says it honoured the logout's Clear-Site-Data (an info line, expected). */
const clearedSiteData = (n: Noted) =>
  n.type === 'info' &&
  n.text.startsWith('Clear-Site-Data header on ') &&
  n.text.includes('/auth/logout');

const seenAt = (path: string) => s.backend.seen.filter((r) => r.url === path);

describe('signing in with a provider', () => {
  it('a deep link → the login page with both buttons → Keycloak → back at the deep link, roles from realm_access.roles', async () => {
    alice = await s.fresh();
    const { page, context } = alice;
    const deep = '/reports/q3?year=2024&tab=a%20b';
    await page.goto(`${s.gw}${deep}`);
    await page.waitForURL((u) => u.pathname === '/auth/login');
    expect(new URL(page.url()).searchParams.get('rd')).toBe(deep);
    const kcLink = page.locator(`a#oidc-${KC.id}`);
    const entraLink = page.locator(`a#oidc-${ENTRA.id}`);
    expect(await kcLink.textContent()).toBe('Sign in with Keycloak');
    expect(await entraLink.textContent()).toBe('Sign in with Entra ID');
    expect(new URL((await kcLink.getAttribute('href')) ?? '', s.gw).searchParams.get('rd')).toBe(
      deep,
    );

    await kcLink.click();
    await page.waitForURL((u) => u.origin === s.kc.issuer);
    expect(await countKeys(s, 'gh:oidc-login:*')).toBe(1);
    const callback = page.waitForResponse((r) =>
      r.url().startsWith(`${s.gw}/auth/oidc/${KC.id}/callback?`),
    );
    await signInAtProvider(page, 'alice');
    expect((await callback).status()).toBe(303);
    await page.waitForURL(`${s.gw}${deep}`);
    expect(await page.locator('#user').textContent()).toBe('alice');

    const [seen] = seenAt(deep);
    expect(seen).toMatchObject({
      method: 'GET',
      user: 'alice',
      email: 'alice@example.com',
      groups: 'admins,staff',
      acr: 'aal1',
    });
    // The sign-in in flight is used up; the session knows its provider session (back-channel).
    expect(await countKeys(s, 'gh:oidc-login:*')).toBe(0);
    const stored = await storedSessionOf(s, context);
    expect(stored).toMatchObject({
      userId: externalUserId('oidc', KC.id, 'kc-sub-alice'),
      idp: { provider: KC.id, sid: s.kc.sidFor('kc-sub-alice', KC.clientId) },
    });
  });

  it('Entra ID: group object ids become the names groupNames gives them', async () => {
    bob = await s.fresh();
    const { page } = bob;
    const deep = '/projects?filter=mine';
    await toProvider(s, page, ENTRA, deep);
    await signInAtProvider(page, 'bob');
    await page.waitForURL(`${s.gw}${deep}`);
    expect(seenAt(deep)[0]).toMatchObject({
      user: 'bob',
      email: 'bob@example.com',
      groups: 'staff,developers',
    });
  });
});

describe('groups from the provider, as a route allows them', () => {
  it('alice (admins, from realm_access.roles) reaches /admin; bob (staff, developers) gets 403', async () => {
    const answer = await alice.page.goto(`${s.gw}/admin/users?page=2`);
    expect(answer?.status()).toBe(200);
    expect(seenAt('/admin/users?page=2')).toMatchObject([
      { user: 'alice', groups: 'admins,staff' },
    ]);

    const refused = await bob.page.goto(`${s.gw}/admin/users?page=3`);
    expect(refused?.status()).toBe(403);
    expect(seenAt('/admin/users?page=3')).toEqual([]);
    expect(bob.take(statusLine(403))).toHaveLength(1);
    // Still signed in: only that route is closed to him.
    expect((await bob.page.goto(`${s.gw}/elsewhere`))?.status()).toBe(200);
    expect(seenAt('/elsewhere')).toMatchObject([{ user: 'bob' }]);
  });
});

describe('who may not sign in at all', () => {
  const refusals = [
    ['carol', 'a verified address at another domain', 'email domain not allowed'],
    ['dave', 'an address at example.com the provider did not verify', 'email domain not allowed'],
    ['erin', 'in none of the allowed groups', 'in none of the allowed groups'],
  ] as const;
  for (const [login, what, reason] of refusals) {
    it(`${login}, ${what}: the 403 page, no session, nothing reaches the backend`, async () => {
      const tab = await fresh();
      const { page, context } = tab;
      const before = { seen: s.backend.seen.length, sessions: await countKeys(s, 'gh:sess:*') };
      await toProvider(s, page, ENTRA, `/from-${login}`);
      const callback = page.waitForResponse((r) =>
        r.url().startsWith(`${s.gw}/auth/oidc/${ENTRA.id}/callback?`),
      );
      await signInAtProvider(page, login);
      expect((await callback).status()).toBe(403);
      await page.waitForLoadState('load');
      expect(await page.locator('body').textContent()).toContain(
        'Your account is not allowed to sign in here.',
      );
      expect(tab.take(statusLine(403))).toHaveLength(1);
      expect((await context.cookies(s.gw)).map((c) => c.name)).not.toContain('gatehouse');
      expect(s.backend.seen.length).toBe(before.seen);
      expect(await countKeys(s, 'gh:sess:*')).toBe(before.sessions);
      expect(await countKeys(s, 'gh:oidc-login:*')).toBe(0);
      // Not remembered as a user either, and the audit log says why.
      expect(s.system.sessionService.output()).toMatch(
        new RegExp(`"event":"login.failure"[^\\n]*"reason":"oidc_claims: ${reason}`),
      );
      const validate = await page.request.get(`${s.gw}/auth/validate`);
      expect(validate.status()).toBe(401);
    });
  }

  it('cancel at the provider: a clear page, no session', async () => {
    const tab = await fresh();
    const { page, context } = tab;
    const before = s.backend.seen.length;
    await toProvider(s, page, KC, '/cancelled');
    const callback = page.waitForResponse((r) =>
      r.url().startsWith(`${s.gw}/auth/oidc/${KC.id}/callback?`),
    );
    await page.locator(OIDC_LOGIN_FORM.cancel).click();
    const answer = await callback;
    expect(new URL(answer.url()).searchParams.get('error')).toBe('access_denied');
    expect(answer.status()).toBe(403);
    await page.waitForLoadState('load');
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(
      'The sign-in was cancelled or refused at the provider. You are not signed in.',
    );
    expect(await page.locator('body').textContent()).toContain('Error code: SIGN_IN_NOT_ALLOWED');
    expect(tab.take(statusLine(403))).toHaveLength(1);
    expect((await context.cookies(s.gw)).map((c) => c.name)).not.toContain('gatehouse');
    expect(s.backend.seen.length).toBe(before);
    expect(await countKeys(s, 'gh:oidc-login:*')).toBe(0);
  });
});

describe('a second factor', () => {
  it('tina sets up an authenticator app after her first sign-in; the next one asks for a code', async () => {
    const first = await fresh();
    await toProvider(s, first.page, KC, '/');
    await signInAtProvider(first.page, 'tina');
    await first.page.waitForURL(`${s.gw}/`);
    await first.page.goto(`${s.gw}/auth/security/totp`);
    await first.page.getByText("Can't scan it?").click();
    const secret = ((await first.page.locator('#totp-secret').textContent()) ?? '').replace(
      /\s/g,
      '',
    );
    await first.page
      .getByLabel('Code from your authenticator app')
      .fill(totpAt(secret, Date.now()));
    await first.page.getByRole('button', { name: 'Turn on' }).click();
    await first.page.waitForLoadState('load');
    expect(await first.page.getByRole('heading', { level: 1 }).textContent()).toBe(
      'Save your recovery codes',
    );

    const second = await fresh();
    const { page } = second;
    const deep = '/ledger?month=03';
    await toProvider(s, page, KC, deep);
    const callback = page.waitForResponse((r) =>
      r.url().startsWith(`${s.gw}/auth/oidc/${KC.id}/callback?`),
    );
    await signInAtProvider(page, 'tina');
    // A page of ours, then the second step (a same-site navigation: the pending-login cookie).
    expect((await callback).status()).toBe(200);
    await page.waitForURL(`${s.gw}/auth/login/second-factor`);
    expect(seenAt(deep)).toEqual([]);
    expect((await page.request.get(`${s.gw}/auth/validate`)).status()).toBe(401);
    await page.getByLabel('Code from your authenticator app').fill(totpAt(secret, Date.now(), 1));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL(`${s.gw}${deep}`);
    expect(seenAt(deep)).toMatchObject([{ user: 'tina', acr: 'aal2', amr: 'pwd,otp,mfa' }]);
  });

  const vouched = [
    ['maud', "amr ['pwd', 'otp', 'mfa']"],
    ['gina', `acr ${GOLD_ACR} (in mfaAcrValues)`],
  ] as const;
  for (const [login, what] of vouched) {
    it(`${login}, whose provider says ${what}, is not asked: the backend sees aal2`, async () => {
      const { page, context } = await fresh();
      const deep = `/vault?who=${login}`;
      await toProvider(s, page, KC, deep);
      await signInAtProvider(page, login);
      await page.waitForURL(`${s.gw}${deep}`);
      expect(seenAt(deep)).toMatchObject([{ user: login, acr: 'aal2', amr: 'pwd,otp,mfa' }]);
      expect((await storedSessionOf(s, context))?.amr).toEqual(['pwd', 'otp', 'mfa']);
    });
  }
});

describe('signing out', () => {
  it('Keycloak (providerLogout: true): the session ends here, then the provider asks, then the login page', async () => {
    const tab = await fresh();
    const { page, context } = tab;
    await toProvider(s, page, KC, '/');
    await signInAtProvider(page, 'lou');
    await page.waitForURL(`${s.gw}/`);
    const sid = await sessionIdOf(context, s.gw);
    expect(sid).not.toBeNull();
    expect(await storedAuthOf(s.redis.client, sid ?? '')).not.toBeNull();

    const logout = page.waitForResponse((r) => r.url() === `${s.gw}/auth/logout`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    const answer = await logout;
    expect(answer.status()).toBe(303);
    const to = new URL(answer.headers().location ?? '');
    expect(to.origin).toBe(s.kc.issuer);
    expect(to.searchParams.get('post_logout_redirect_uri')).toBe(`${s.gw}/auth/login`);
    expect(to.searchParams.get('client_id')).toBe(KC.clientId);
    // Over here before the provider is even asked.
    expect(await storedAuthOf(s.redis.client, sid ?? '')).toBeNull();
    expect(await sessionIdOf(context, s.gw)).toBeNull();
    await expectNoted(tab, clearedSiteData, 1);

    await page.locator(OIDC_LOGOUT_FORM.yes).click();
    await page.waitForURL((u) => u.origin === s.gw && u.pathname === '/auth/login');
    expect(s.kc.sessionsOf('kc-sub-lou')).toEqual([]);
    expect((await page.request.get(`${s.gw}/auth/validate`)).status()).toBe(401);
  });

  it('Entra ID (providerLogout: false): straight to the login page', async () => {
    const tab = await fresh();
    const { page, context } = tab;
    await toProvider(s, page, ENTRA, '/');
    await signInAtProvider(page, 'frank');
    await page.waitForURL(`${s.gw}/`);
    const sid = await sessionIdOf(context, s.gw);
    const endSession = () => s.entra.requests.filter((r) => r.path === '/session/end').length;
    const ended = endSession();
    const logout = page.waitForResponse((r) => r.url() === `${s.gw}/auth/logout`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    expect((await logout).headers().location).toBe('/auth/login');
    await page.waitForURL(`${s.gw}/auth/login`);
    expect(await storedAuthOf(s.redis.client, sid ?? '')).toBeNull();
    expect(endSession()).toBe(ended);
    await expectNoted(tab, clearedSiteData, 1);
    // Still signed in at the provider: only Gatehouse's session ended, and signing in again
    // takes no password (the provider's form never shows).
    expect(s.entra.sessionsOf('entra-oid-frank')).toHaveLength(1);
    await page.getByRole('link', { name: `Sign in with ${ENTRA.name}` }).click();
    await page.waitForURL(`${s.gw}/`);
    expect(await page.locator('#user').textContent()).toBe('frank');
    expect(await sessionIdOf(context, s.gw)).not.toBe(sid);
  });

  it("back-channel: signing out on the provider's own page ends the session here; the next request goes to the login page", async () => {
    const { page, context } = await fresh();
    await toProvider(s, page, KC, '/');
    await signInAtProvider(page, 'bea');
    await page.waitForURL(`${s.gw}/`);
    const sid = (await sessionIdOf(context, s.gw)) ?? '';
    const providerSid = s.kc.sidFor('kc-sub-bea', KC.clientId);
    expect(providerSid).toBeTruthy();
    expect((await storedAuthOf(s.redis.client, sid))?.idp?.sid).toBe(providerSid);
    const indexed = `gh:oidc-sid:${KC.id}:${createHash('sha256')
      .update(providerSid ?? '')
      .digest('base64url')}`;
    expect(await s.redis.client.zRange(indexed, 0, -1)).toHaveLength(1);

    const delivered = s.kc.backchannelDeliveries.length;
    await page.goto(`${s.kc.issuer}/session/end`);
    await page.locator(OIDC_LOGOUT_FORM.yes).click();
    await page.waitForLoadState('load');
    await expect.poll(() => s.kc.backchannelDeliveries.length).toBe(delivered + 1);
    expect(s.kc.backchannelDeliveries.at(-1)).toMatchObject({
      clientId: KC.clientId,
      sid: providerSid,
      status: 200,
    });
    expect(await storedAuthOf(s.redis.client, sid)).toBeNull();
    // The provider session's index of Gatehouse sessions is gone with them.
    expect(await s.redis.client.exists(indexed)).toBe(0);

    const before = seenAt('/after-provider-logout').length;
    await page.goto(`${s.gw}/after-provider-logout`);
    await page.waitForURL((u) => u.pathname === '/auth/login');
    expect(new URL(page.url()).searchParams.get('rd')).toBe('/after-provider-logout');
    expect(seenAt('/after-provider-logout').length).toBe(before);
  });
});
