/**
 * What comes back from an OpenID Connect provider must hold up, in real Chromium through the real
 * gateway and session-service (oidc-system.ts): a callback with a changed state, replayed, or
 * opened in another browser (login CSRF); an ID token tampered with at the provider's token
 * endpoint (nonce, aud, iss, exp, iat, signature, a foreign key, alg none); the provider rotating
 * its keys; the provider down when the user clicks, and going down during the sign-in. Every
 * refusal is Gatehouse's own page with its code, and leaves no session and nothing at the backend.
 */
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { externalUserId } from '../../session-service/src/domain/external-users.js';
import type { TamperTools } from '../helpers/oidc-provider.js';
import {
  countKeys,
  KC,
  type OidcBrowserSystem,
  signInAtProvider,
  startOidcBrowserSystem,
  statusLine,
  storedSessionOf,
  type Tab,
  toProvider,
} from './oidc-system.js';

let s: OidcBrowserSystem;
/** Rob's Gatehouse user id (what a session record names him by). */
const ROB = externalUserId('oidc', KC.id, 'kc-sub-rob');
const opened: Tab[] = [];

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
  s.kc.tamper(null);
  await s.kc.start();
  const unexpected = opened.flatMap((t) => t.take(() => true));
  await Promise.all(opened.splice(0).map((t) => t.close()));
  expect(unexpected).toEqual([]);
});

const isCallback = (url: URL | string) => {
  const u = typeof url === 'string' ? new URL(url) : url;
  return u.origin === s.gw && u.pathname === `/auth/oidc/${KC.id}/callback`;
};

const HELD =
  '<!doctype html><title>held</title><link rel="icon" href="data:,"><p id="held">held</p>';

/**
 * Runs `paused` when the browser is about to request Gatehouse's callback, then sends the request
 * on (`continue`) or answers it with a placeholder page instead (`hold`). Chromium's Fetch domain
 * directly: the callback is the end of the provider's redirects, and page.route() never sees a
 * redirect's target.
 */
async function onCallback(page: Page, paused: (url: string) => Promise<'hold' | 'continue'>) {
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Fetch.requestPaused', (event) => {
    void paused(event.request.url).then((action) =>
      action === 'hold'
        ? cdp.send('Fetch.fulfillRequest', {
            requestId: event.requestId,
            responseCode: 200,
            responseHeaders: [{ name: 'content-type', value: 'text/html; charset=utf-8' }],
            body: Buffer.from(HELD).toString('base64'),
          })
        : cdp.send('Fetch.continueRequest', { requestId: event.requestId }),
    );
  });
  await cdp.send('Fetch.enable', {
    patterns: [{ urlPattern: `${s.gw}/auth/oidc/${KC.id}/callback*`, requestStage: 'Request' }],
  });
  return () => cdp.detach();
}

/**
 * Signs in at the provider, but keeps the browser from reaching Gatehouse's callback: resolves to
 * the callback URL the provider sent it to (the page shows a placeholder instead).
 */
async function heldCallback(page: Page, login: string): Promise<string> {
  let held = '';
  const detach = await onCallback(page, async (url) => {
    held = url;
    return 'hold';
  });
  await signInAtProvider(page, login);
  await page.locator('#held').waitFor();
  await detach();
  return held;
}

/** Gatehouse's 400 page for a sign-in that cannot complete, and nothing signed in. */
async function expectRefused(tab: Tab, status = 400, code = 'SIGN_IN_INVALID') {
  await tab.page.waitForLoadState('load');
  expect(await tab.page.locator('body').textContent()).toContain(`Error code: ${code}`);
  expect(tab.take(statusLine(status))).toHaveLength(1);
  expect((await tab.context.cookies(s.gw)).map((c) => c.name)).not.toContain('gatehouse');
  expect((await tab.page.request.get(`${s.gw}/auth/validate`)).status()).toBe(401);
}

const seenAt = (path: string) => s.backend.seen.filter((r) => r.url === path);

describe('the callback', () => {
  it('with a changed state: 400, no session', async () => {
    const tab = await fresh();
    await toProvider(s, tab.page, KC, '/state');
    const callback = new URL(await heldCallback(tab.page, 'rob'));
    const state = callback.searchParams.get('state') ?? '';
    callback.searchParams.set(
      'state',
      `${state.slice(0, -2)}${state.endsWith('AA') ? 'BB' : 'AA'}`,
    );
    const answer = await tab.page.goto(callback.href);
    expect(answer?.status()).toBe(400);
    await expectRefused(tab);
    expect(seenAt('/state')).toEqual([]);
  });

  it('replayed: the first visit signs in, the same URL again is refused', async () => {
    const tab = await fresh();
    await toProvider(s, tab.page, KC, '/replay');
    const callback = await heldCallback(tab.page, 'rob');
    expect(await countKeys(s, 'gh:oidc-login:*')).toBeGreaterThanOrEqual(1);
    const first = await tab.page.goto(callback);
    expect(first?.request().redirectedFrom()?.url()).toBe(callback);
    expect(tab.page.url()).toBe(`${s.gw}/replay`);
    expect(seenAt('/replay')).toMatchObject([{ user: 'rob' }]);
    const session = await storedSessionOf(s, tab.context);
    expect(session?.userId).toBe(ROB);

    const again = await tab.page.goto(callback);
    expect(again?.status()).toBe(400);
    await tab.page.waitForLoadState('load');
    expect(await tab.page.locator('body').textContent()).toContain('Error code: SIGN_IN_INVALID');
    expect(tab.take(statusLine(400))).toHaveLength(1);
    expect(seenAt('/replay')).toHaveLength(1);
    // The replay ended nothing: the session of the first visit is still there.
    expect((await storedSessionOf(s, tab.context))?.userId).toBe(ROB);
  });

  it('opened in another browser (login CSRF): refused there, no session', async () => {
    const attacker = await fresh();
    await toProvider(s, attacker.page, KC, '/csrf');
    const callback = await heldCallback(attacker.page, 'rob');
    const victim = await fresh();
    const answer = await victim.page.goto(callback);
    expect(answer?.status()).toBe(400);
    await expectRefused(victim);
    expect(seenAt('/csrf')).toEqual([]);
  });
});

describe('two sign-ins at once in one browser', () => {
  it("two tabs at the provider: the older one's callback is refused, and does not spoil the newer one", async () => {
    const tab = await fresh();
    const other = await tab.context.newPage();
    await toProvider(s, tab.page, KC, '/first-tab');
    await toProvider(s, other, KC, '/second-tab');
    // One sign-in in flight per browser: the second start replaced the binding cookie.
    const refused = tab.page.waitForResponse((r) => isCallback(r.url()));
    await signInAtProvider(tab.page, 'rob');
    expect((await refused).status()).toBe(400);
    await expectRefused(tab);
    // The newer sign-in still completes: the refused callback left its binding alone.
    await signInAtProvider(other, 'rob');
    await other.waitForURL(`${s.gw}/second-tab`);
    expect(seenAt('/second-tab')).toMatchObject([{ user: 'rob' }]);
    expect(seenAt('/first-tab')).toEqual([]);
    expect((await storedSessionOf(s, tab.context))?.userId).toBe(ROB);
  });
});

/** A change to the ID token of the next token answer (re-signed, unless the row breaks it). */
type Change = (idToken: string, tools: TamperTools, kid: string) => Promise<string> | string;
const now = () => Math.floor(Date.now() / 1000);
const resigned =
  (edit: (payload: Record<string, unknown>) => Record<string, unknown>): Change =>
  (token, tools) =>
    tools.sign(edit(tools.decode(token).payload as Record<string, unknown>));

const TAMPERED: Array<[what: string, change: Change, detail: RegExp]> = [
  [
    'another nonce, re-signed with the provider key',
    resigned((p) => ({ ...p, nonce: 'n0nce' })),
    /"nonce"/,
  ],
  ['another aud', resigned((p) => ({ ...p, aud: 'someone-else' })), /"aud"/],
  ['another iss', resigned((p) => ({ ...p, iss: 'http://localhost:1' })), /"iss"/],
  [
    'expired an hour ago',
    resigned((p) => ({ ...p, iat: now() - 7200, exp: now() - 3600 })),
    /"exp"/,
  ],
  [
    'issued an hour from now',
    resigned((p) => ({ ...p, iat: now() + 3600, exp: now() + 7200 })),
    /iat/,
  ],
  [
    'its signature broken',
    (token, tools) => tools.breakSignature(token),
    /signature verification failed/,
  ],
  [
    "signed with a foreign key under the provider's kid",
    (token, tools, kid) => tools.sign(tools.decode(token).payload, { key: 'foreign', kid }),
    /signature verification failed/,
  ],
  [
    'signed with a foreign key and kid',
    (token, tools) => tools.sign(tools.decode(token).payload, { key: 'foreign' }),
    /no applicable key/,
  ],
  [
    'alg none',
    (token) => {
      const [, payload] = token.split('.');
      return `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`;
    },
    /alg/,
  ],
];

describe('a tampered ID token', () => {
  for (const [what, change, detail] of TAMPERED) {
    it(`${what}: 400, no session, nothing at the backend`, async () => {
      const tab = await fresh();
      const path = `/tampered-${what.replace(/\W+/g, '-')}`;
      const sessions = await countKeys(s, 'gh:sess:*');
      const log = s.system.sessionService.output().length;
      await toProvider(s, tab.page, KC, path);
      s.kc.tamper(async (body, tools) => ({
        ...body,
        id_token: await change(String(body.id_token), tools, s.kc.currentKid()),
      }));
      const callback = tab.page.waitForResponse((r) => isCallback(r.url()));
      await signInAtProvider(tab.page, 'pia');
      expect((await callback).status()).toBe(400);
      await expectRefused(tab);
      expect(seenAt(path)).toEqual([]);
      expect(await countKeys(s, 'gh:sess:*')).toBe(sessions);
      const failure = s.system.sessionService
        .output()
        .slice(log)
        .split('\n')
        .find((line) => line.includes('"event":"login.failure"'));
      expect(failure).toContain('"reason":"oidc_token"');
      expect(JSON.parse(failure ?? '{}').detail).toMatch(detail);
    });
  }
});

describe('the provider rotates its keys', () => {
  it('the next sign-in, signed with a key Gatehouse has not seen, works: the JWKS is fetched again', async () => {
    const first = await fresh();
    await toProvider(s, first.page, KC, '/before-rotation');
    await signInAtProvider(first.page, 'tom');
    await first.page.waitForURL(`${s.gw}/before-rotation`);
    const jwksFetches = () => s.kc.requests.filter((r) => r.path === '/jwks').length;
    const fetched = jwksFetches();
    expect(fetched).toBeGreaterThanOrEqual(1);

    const oldKid = s.kc.currentKid();
    const newKid = await s.kc.rotateKeys({ keepOld: false });
    expect(s.kc.jwks().keys.map((k) => k.kid)).toEqual([newKid]);
    const kids: string[] = [];
    s.kc.tamper((body, tools) => {
      kids.push(String(tools.decode(String(body.id_token)).header.kid));
      return body;
    });
    const second = await fresh();
    await toProvider(s, second.page, KC, '/after-rotation');
    await signInAtProvider(second.page, 'tom');
    await second.page.waitForURL(`${s.gw}/after-rotation`);
    expect(kids).toEqual([newKid]);
    expect(newKid).not.toBe(oldKid);
    expect(jwksFetches()).toBeGreaterThan(fetched);
    expect(seenAt('/after-rotation')).toMatchObject([{ user: 'tom' }]);
  });
});

describe('the provider is down', () => {
  it('when "Sign in with…" is clicked: our 503 page, not a browser error; up again, it works', async () => {
    const tab = await fresh();
    await tab.page.goto(`${s.gw}/while-down`);
    await tab.page.waitForURL((u) => u.pathname === '/auth/login');
    // Up first: Gatehouse has the provider's discovery document in its cache.
    await tab.page.getByRole('link', { name: `Sign in with ${KC.name}` }).click();
    await tab.page.waitForURL((u) => u.origin === s.kc.issuer);
    await tab.page.goBack();
    await tab.page.waitForURL((u) => u.pathname === '/auth/login');
    const inFlight = await countKeys(s, 'gh:oidc-login:*');
    await s.kc.stop();
    const start = tab.page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/start'));
    await tab.page.getByRole('link', { name: `Sign in with ${KC.name}` }).click();
    expect((await start).status()).toBe(503);
    await tab.page.waitForLoadState('load');
    expect(tab.page.url()).toMatch(new RegExp(`^${s.gw}/auth/oidc/${KC.id}/start\\?`));
    expect(await tab.page.locator('body').textContent()).toContain(
      'Error code: IDENTITY_PROVIDER_UNAVAILABLE',
    );
    expect(tab.take(statusLine(503))).toHaveLength(1);
    // Nothing stored for a sign-in that could not leave.
    expect(await countKeys(s, 'gh:oidc-login:*')).toBe(inFlight);

    await s.kc.start();
    await tab.page.goBack();
    await tab.page.waitForURL((u) => u.pathname === '/auth/login');
    await tab.page.getByRole('link', { name: `Sign in with ${KC.name}` }).click();
    await signInAtProvider(tab.page, 'tom');
    await tab.page.waitForURL(`${s.gw}/while-down`);
    expect(seenAt('/while-down')).toMatchObject([{ user: 'tom' }]);
  });

  it('between its login form and the callback: our 503 page, no session', async () => {
    const tab = await fresh();
    await toProvider(s, tab.page, KC, '/went-down');
    await onCallback(tab.page, async () => {
      await s.kc.stop();
      return 'continue';
    });
    const callback = tab.page.waitForResponse((r) => isCallback(r.url()));
    await signInAtProvider(tab.page, 'tom');
    expect((await callback).status()).toBe(503);
    await expectRefused(tab, 503, 'IDENTITY_PROVIDER_UNAVAILABLE');
    expect(seenAt('/went-down')).toEqual([]);
  });

  it('at sign-out (providerLogout: true): signed out here, and the login page, not a dead provider', async () => {
    const tab = await fresh();
    await toProvider(s, tab.page, KC, '/signing-out');
    await signInAtProvider(tab.page, 'tom');
    await tab.page.waitForURL(`${s.gw}/signing-out`);
    const session = await storedSessionOf(s, tab.context);
    expect(session?.userId).toBe(externalUserId('oidc', KC.id, 'kc-sub-tom'));
    await s.kc.stop();
    const logout = tab.page.waitForResponse((r) => r.url() === `${s.gw}/auth/logout`);
    await tab.page.getByRole('button', { name: 'Sign out' }).click();
    const answer = await logout;
    expect(answer.status()).toBe(303);
    expect(answer.headers().location).toBe('/auth/login');
    await tab.page.waitForURL(`${s.gw}/auth/login`);
    expect(await storedSessionOf(s, tab.context)).toBeNull();
    expect(
      tab.take((n) => n.type === 'info' && n.text.startsWith('Clear-Site-Data header')),
    ).toHaveLength(1);
  });
});
