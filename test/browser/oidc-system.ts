/**
 * What the OpenID Connect browser tests (oidc*.test.ts) run against: two test OpenID Providers
 * (test/helpers/oidc-provider.ts) configured at once in IDENTITY_SOURCES_FILE, one shaped like
 * Keycloak (roles in `realm_access.roles`, provider logout on, an acr that means MFA) and one like
 * Entra ID (group object ids mapped through groupNames, allowedDomains, allowedGroups, provider
 * logout off); the real session-service, gateway and Redis; a backend behind the gateway that
 * records the identity headers it receives; and one Chromium whose contexts are separate browsers
 * (fresh()).
 *
 * The browser uses http://127.0.0.1:<gateway port>, which is PUBLIC_URL, and the providers are
 * at http://localhost:<port>: another site, so coming back from a provider is a cross-site
 * navigation, as in production. The gateway's port is chosen before anything starts, so that the
 * providers' client registrations (redirect_uri, post_logout_redirect_uri,
 * backchannel_logout_uri) and PUBLIC_URL can name it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import {
  DEFAULT_OIDC_PASSWORD,
  OIDC_LOGIN_FORM,
  type OidcAccount,
  type OidcProviderHandle,
  startOidcProvider,
} from '../helpers/oidc-provider.js';
import { reservedDeadPort } from '../helpers/ports.js';
import { type System, startSystem } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { storedAuthOf } from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';
import { CHROMIUM, CHROMIUM_ARGS, DESKTOP, type Noted } from './browser.js';

export const KC = { id: 'keycloak', name: 'Keycloak', clientId: 'gatehouse-kc' } as const;
export const ENTRA = { id: 'entra', name: 'Entra ID', clientId: 'gatehouse-entra' } as const;
/** The acr that means "signed in with a second factor" at the Keycloak-like provider. */
export const GOLD_ACR = 'gold';

/** Entra group object ids, and the names groupNames gives them. */
export const ENTRA_GROUPS = {
  staff: '5b1c2f0e-1111-4c8e-9a41-0000000000a1',
  developers: '5b1c2f0e-2222-4c8e-9a41-0000000000b2',
  contractors: '5b1c2f0e-3333-4c8e-9a41-0000000000c3',
} as const;

const kcAccount = (
  sub: string,
  username: string,
  roles: string[],
  more: Partial<OidcAccount> = {},
): OidcAccount => ({
  sub,
  claims: {
    preferred_username: username,
    email: `${username}@example.com`,
    email_verified: true,
    name: `${username[0]?.toUpperCase()}${username.slice(1)} Example`,
    realm_access: { roles },
  },
  ...more,
});

const entraAccount = (
  sub: string,
  username: string,
  claims: Record<string, unknown> = {},
): OidcAccount => ({
  sub,
  claims: {
    preferred_username: username,
    email: `${username}@example.com`,
    email_verified: true,
    name: `${username} (Entra)`,
    groups: [ENTRA_GROUPS.staff],
    ...claims,
  },
});

/** The Keycloak-like provider's accounts (login name → account); each test has its own. */
export const KC_ACCOUNTS = {
  alice: kcAccount('kc-sub-alice', 'alice', ['admins', 'staff']),
  tina: kcAccount('kc-sub-tina', 'tina', ['staff']),
  maud: kcAccount('kc-sub-maud', 'maud', ['staff'], { amr: ['pwd', 'otp', 'mfa'] }),
  gina: kcAccount('kc-sub-gina', 'gina', ['staff'], { acr: GOLD_ACR }),
  lou: kcAccount('kc-sub-lou', 'lou', ['staff']),
  bea: kcAccount('kc-sub-bea', 'bea', ['staff']),
  rob: kcAccount('kc-sub-rob', 'rob', ['staff']),
  tom: kcAccount('kc-sub-tom', 'tom', ['staff']),
  pia: kcAccount('kc-sub-pia', 'pia', ['staff']),
};

export const ENTRA_ACCOUNTS = {
  bob: entraAccount('entra-oid-bob', 'bob', {
    groups: [ENTRA_GROUPS.staff, ENTRA_GROUPS.developers],
  }),
  /** A verified address, but not at example.com. */
  carol: entraAccount('entra-oid-carol', 'carol', { email: 'carol@elsewhere.test' }),
  /** At example.com, but the provider did not verify the address. */
  dave: entraAccount('entra-oid-dave', 'dave', { email_verified: false }),
  /** At example.com, verified, in no allowed group. */
  erin: entraAccount('entra-oid-erin', 'erin', { groups: [ENTRA_GROUPS.contractors] }),
  frank: entraAccount('entra-oid-frank', 'frank'),
};

/** One request the backend received: what the gateway told it about the user. */
export interface Seen {
  method: string;
  /** Path and query. */
  url: string;
  user: string | undefined;
  email: string | undefined;
  groups: string | undefined;
  acr: string | undefined;
  amr: string | undefined;
}

export interface Backend {
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}

const NO_ICON = '<link rel="icon" href="data:,">';
const escapeText = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The app behind the gateway: every path answers a page showing the identity it received (and a
 * "Sign out" form posting to /auth/logout, as a real app's button does); every request is noted.
 */
async function startBackend(): Promise<Backend> {
  const seen: Seen[] = [];
  const header = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(',') : v);
  const server: Server = createServer((req, res) => {
    req.resume();
    const entry: Seen = {
      method: req.method ?? '',
      url: req.url ?? '/',
      user: header(req.headers['x-auth-request-user']),
      email: header(req.headers['x-auth-request-email']),
      groups: header(req.headers['x-auth-request-groups']),
      acr: header(req.headers['x-auth-request-acr']),
      amr: header(req.headers['x-auth-request-amr']),
    };
    seen.push(entry);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>App</title>${NO_ICON}</head><body>
<h1>Hello, <span id="user">${escapeText(entry.user ?? '')}</span></h1>
<p id="groups">${escapeText(entry.groups ?? '')}</p>
<form method="post" action="/auth/logout"><button type="submit">Sign out</button></form>
</body></html>`,
    );
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** One browser (a Chromium context: its own cookies), noting its console and page errors. */
export interface Tab {
  context: BrowserContext;
  page: Page;
  noted: Noted[];
  /** Removes and returns the noted messages that `match` accepts. */
  take(match: (n: Noted) => boolean): Noted[];
  close(): Promise<void>;
}

export interface OidcBrowserSystem {
  /** http://127.0.0.1:<gateway port>: PUBLIC_URL, as the browser sees it. */
  gw: string;
  redis: RedisServer;
  system: System;
  kc: OidcProviderHandle;
  entra: OidcProviderHandle;
  backend: Backend;
  /** A new browser that shares nothing with the others (closed by stop()). */
  fresh(): Promise<Tab>;
  stop(): Promise<void>;
}

const KC_SECRET = 'kc-client-secret-0123456789abcdef';
const ENTRA_SECRET = 'entra-client-secret-0123456789abcdef';

export async function startOidcBrowserSystem(): Promise<OidcBrowserSystem> {
  const gatewayPort = await reservedDeadPort();
  // 127.0.0.1, the providers localhost: another site, as a real provider is, so the provider's
  // redirects to the callback are cross-site navigations (SameSite matters as in production).
  const gw = `http://127.0.0.1:${gatewayPort}`;
  const registration = (clientId: string, provider: string, secret: string) => ({
    client_id: clientId,
    client_secret: secret,
    redirect_uris: [`${gw}/auth/oidc/${provider}/callback`],
    post_logout_redirect_uris: [`${gw}/auth/login`],
    backchannel_logout_uri: `${gw}/auth/oidc/${provider}/backchannel-logout`,
    backchannel_logout_session_required: true,
  });
  const stoppers: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const s of stoppers.reverse()) await s().catch(() => {});
  };
  try {
    const [redis, kc, entra, backend, browser] = await Promise.all([
      startRedis(),
      startOidcProvider({
        clients: [registration(KC.clientId, KC.id, KC_SECRET)],
        accounts: KC_ACCOUNTS,
      }),
      startOidcProvider({
        clients: [registration(ENTRA.clientId, ENTRA.id, ENTRA_SECRET)],
        accounts: ENTRA_ACCOUNTS,
      }),
      startBackend(),
      chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS }),
    ]);
    stoppers.push(
      () => redis.stop(),
      () => kc.close(),
      () => entra.close(),
      () => backend.close(),
      () => browser.close(),
    );
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-oidc-browser-'));
    const sources = join(dir, 'identity-sources.yaml');
    writeFileSync(
      sources,
      `oidc:
  - id: ${KC.id}
    name: ${KC.name}
    issuer: ${kc.issuer}
    clientId: ${KC.clientId}
    clientSecretEnv: KC_CLIENT_SECRET
    claims:
      groups: realm_access.roles
    mfaAcrValues: [${GOLD_ACR}]
    providerLogout: true
  - id: ${ENTRA.id}
    name: ${ENTRA.name}
    issuer: ${entra.issuer}
    clientId: ${ENTRA.clientId}
    clientSecretEnv: ENTRA_CLIENT_SECRET
    scopes: [openid, profile, email, groups]
    claims:
      groups: groups
    groupNames:
      '${ENTRA_GROUPS.staff}': staff
      '${ENTRA_GROUPS.developers}': developers
      '${ENTRA_GROUPS.contractors}': contractors
    allowedDomains: [example.com]
    allowedGroups: [staff]
    providerLogout: false
`,
    );
    const routes = join(dir, 'routes.yaml');
    writeFileSync(
      routes,
      `routes:
  - id: admin
    path: /admin
    upstream: http://127.0.0.1:${backend.port}
    allow:
      groups: [admins]
  - id: app
    upstream: http://127.0.0.1:${backend.port}
`,
    );
    // Nobody in the users file signs in here; it must exist all the same.
    const users = await writeTestUsers([{ username: 'local-admin', password: 'local password 1' }]);
    const system = await startSystem({
      redisUrl: redis.url,
      usersFile: users.path,
      gatewayPort,
      sessionEnv: {
        PUBLIC_URL: gw,
        IDENTITY_SOURCES_FILE: sources,
        KC_CLIENT_SECRET: KC_SECRET,
        ENTRA_CLIENT_SECRET: ENTRA_SECRET,
      },
      gatewayEnv: { GATEWAY_ROUTES: routes },
    });
    stoppers.push(() => system.stop());
    const tabs: Tab[] = [];
    stoppers.push(() => Promise.all(tabs.map((t) => t.close())));
    return {
      gw,
      redis,
      system,
      kc,
      entra,
      backend,
      async fresh() {
        const tab = await openTab(browser);
        tabs.push(tab);
        return tab;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function openTab(browser: Browser): Promise<Tab> {
  const context = await browser.newContext({
    viewport: DESKTOP,
    colorScheme: 'light',
    reducedMotion: 'reduce',
    locale: 'en-GB',
  });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(20_000);
  const noted: Noted[] = [];
  context.on('page', (page) => {
    page.on('console', (message) =>
      noted.push({
        kind: 'console',
        type: message.type(),
        text: message.text(),
        url: message.location().url || page.url(),
      }),
    );
    page.on('pageerror', (error) =>
      noted.push({ kind: 'pageerror', type: 'error', text: error.message, url: page.url() }),
    );
  });
  const page = await context.newPage();
  return {
    context,
    page,
    noted,
    take(match) {
      const taken = noted.filter(match);
      for (const n of taken) noted.splice(noted.indexOf(n), 1);
      return taken;
    },
    close: () => context.close().catch(() => {}),
  };
}

/** Chromium's console line for a document answered with an HTTP error status. */
export const statusLine = (status: number) => (n: Noted) =>
  n.kind === 'console' &&
  n.type === 'error' &&
  n.text.startsWith(`Failed to load resource: the server responded with a status of ${status} `);

/** The provider's login form: fill it and sign in (the browser then goes back to Gatehouse). */
export async function signInAtProvider(
  page: Page,
  login: string,
  password = DEFAULT_OIDC_PASSWORD,
): Promise<void> {
  await page.locator(OIDC_LOGIN_FORM.form).waitFor();
  await page.locator(OIDC_LOGIN_FORM.login).fill(login);
  await page.locator(OIDC_LOGIN_FORM.password).fill(password);
  await page.locator(OIDC_LOGIN_FORM.submit).click();
}

/**
 * From a protected page to the provider's login form: the gateway sends the browser to the login
 * page, whose "Sign in with <name>" is clicked.
 */
export async function toProvider(
  s: OidcBrowserSystem,
  page: Page,
  provider: { id: string; name: string },
  path = '/',
): Promise<void> {
  await page.goto(`${s.gw}${path}`);
  await page.waitForURL((u) => u.pathname === '/auth/login');
  await page.getByRole('link', { name: `Sign in with ${provider.name}` }).click();
  await page.locator(OIDC_LOGIN_FORM.form).waitFor();
}

/** The Gatehouse session cookie's session id (from `s:<sid>.<signature>`), or null. */
export async function sessionIdOf(context: BrowserContext, gw: string): Promise<string | null> {
  const cookie = (await context.cookies(gw)).find((c) => c.name === 'gatehouse');
  if (!cookie) return null;
  const value = decodeURIComponent(cookie.value);
  return value.slice(2, value.lastIndexOf('.'));
}

/** The session record in Redis of the browser's cookie (null: no cookie, or no such session). */
export async function storedSessionOf(s: OidcBrowserSystem, context: BrowserContext) {
  const sid = await sessionIdOf(context, s.gw);
  return sid ? storedAuthOf(s.redis.client, sid) : null;
}

/** How many keys match `pattern` in Redis (SCAN, not KEYS: the same answer, politely). */
export async function countKeys(s: OidcBrowserSystem, pattern: string): Promise<number> {
  let n = 0;
  for await (const keys of s.redis.client.scanIterator({ MATCH: pattern, COUNT: 100 }))
    n += keys.length;
  return n;
}
