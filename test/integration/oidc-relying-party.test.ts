/**
 * Gatehouse as an OpenID Connect relying party (issue 15), against the real test OpenID Provider
 * (oidc-provider 9, test/helpers/oidc-provider.ts) and real Redis: the session-service in-process
 * (buildSessionService) but listening on a real port, since the provider posts its back-channel
 * logout tokens to it. Sign-ins go through the provider's login form over HTTP (fetch + a cookie
 * jar, test/helpers/oidc-rp.ts).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createExternalUsers,
  externalUserId,
} from '../../session-service/src/domain/external-users.js';
import { createSealer } from '../../session-service/src/domain/sealing.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { jsonLogin } from '../helpers/login.js';
import {
  BACKCHANNEL_LOGOUT_EVENT,
  type OidcProviderHandle,
  startOidcProvider,
} from '../helpers/oidc-provider.js';
import { signInWithProvider, toCallback } from '../helpers/oidc-rp.js';
import { waitFor } from '../helpers/ports.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  NO_THROTTLE,
  type SessionServiceApp,
} from '../helpers/session-service.js';
import { writeTestUsers } from '../helpers/users.js';

const CLIENT_ID = 'gatehouse';
const CLIENT_SECRET = 'gatehouse-client-secret-0123456789';
const PROVIDER = 'op';

let redis: RedisServer;
let op: OidcProviderHandle;
let svc: SessionServiceApp;
/** The service's clock: tests move it forward (refresh re-checks). */
let offset = 0;
const now = () => Date.now() + offset;
/** Log lines the service wrote (JSON). */
const logs: Array<Record<string, unknown>> = [];
/** Where the session-service listens, and the provider's back-channel logout tap. */
let server: Server;
let base = '';
let tap: Server;
/** Every logout token the provider sent (captured by the tap on its way to the service). */
const delivered: string[] = [];
let sourcesFile = '';
let usersFile = '';
let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
  res.statusCode = 503;
  res.end();
};

const listen = (s: Server, host?: string) =>
  new Promise<number>((resolve) =>
    s.listen(0, ...(host ? [host] : []), () => resolve((s.address() as AddressInfo).port)),
  );
const close = (s: Server | undefined) =>
  new Promise<void>((resolve) => {
    if (!s) return resolve();
    s.close(() => resolve());
    s.closeAllConnections();
  });

function sourcesYaml(extra = ''): string {
  return `oidc:
  - id: ${PROVIDER}
    name: Test Provider
    issuer: ${op.issuer}
    clientId: ${CLIENT_ID}
    clientSecretEnv: OP_CLIENT_SECRET
    scopes: [openid, profile, email, groups, offline_access]
    claims: { groups: groups }
    refreshSeconds: 10
${extra}`;
}

function buildService(prefix = 'gh:') {
  const logger = pino(
    { level: 'info' },
    {
      write(line: string) {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return buildSessionService({
    redisUrl: redis.url,
    usersFile,
    env: {
      PUBLIC_URL: base,
      IDENTITY_SOURCES_FILE: sourcesFile,
      OP_CLIENT_SECRET: CLIENT_SECRET,
      REDIS_PREFIX: prefix,
    },
    throttleLimits: NO_THROTTLE,
    logger,
    now,
  });
}

beforeAll(async () => {
  redis = await startRedis();
  server = createServer((req, res) => handler(req, res));
  // No host: every address, IPv4 and IPv6, so that localhost reaches it either way.
  const port = await listen(server);
  base = `http://localhost:${port}`;
  // The provider's back-channel logout goes through this tap, which keeps each token.
  tap = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    delivered.push(new URLSearchParams(body).get('logout_token') ?? '');
    const answer = await fetch(`${base}/auth/oidc/${PROVIDER}/backchannel-logout`, {
      method: 'POST',
      headers: { 'content-type': String(req.headers['content-type']) },
      body,
    });
    res.statusCode = answer.status;
    res.end(await answer.text());
  });
  const tapPort = await listen(tap, '127.0.0.1');
  op = await startOidcProvider({
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${base}/auth/oidc/${PROVIDER}/callback`],
        post_logout_redirect_uris: [`${base}/auth/login`],
        backchannel_logout_uri: `http://localhost:${tapPort}/backchannel-logout`,
      },
    ],
    accounts: {
      pat: {
        sub: 'sub-pat',
        claims: {
          preferred_username: 'pat',
          email: 'pat@example.com',
          email_verified: true,
          name: 'Pat Provider',
          groups: ['admins', 'staff', 'bad group'],
        },
      },
      mfa: {
        sub: 'sub-mfa',
        claims: { preferred_username: 'mfa-user', email: 'mfa@example.com', groups: [] },
        amr: ['pwd', 'otp', 'mfa'],
      },
      // a provider account whose username is a users-file user's
      'alice-at-op': { sub: 'sub-alice-op', claims: { preferred_username: 'alice' } },
      'carol-1': { sub: 'sub-carol-1', claims: { preferred_username: 'carol' } },
      'carol-2': { sub: 'sub-carol-2', claims: { preferred_username: 'Carol' } },
      kim: { sub: 'sub-kim', claims: { preferred_username: 'kim', email: 'kim@example.com' } },
      lee: { sub: 'sub-lee', claims: { preferred_username: 'lee', groups: ['staff'] } },
      rex: { sub: 'sub-rex', claims: { preferred_username: 'rex', groups: ['staff'] } },
      sam: { sub: 'sub-sam', claims: { preferred_username: 'sam' } },
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-oidc-rp-'));
  sourcesFile = join(dir, 'identity-sources.yaml');
  writeFileSync(sourcesFile, sourcesYaml());
  usersFile = (await writeTestUsers([{ username: 'alice', password: 'alice-local-password' }]))
    .path;
  svc = await buildService();
  handler = svc.app;
}, 60_000);

afterAll(async () => {
  await svc?.close();
  await close(tap);
  await close(server);
  await op?.close();
  await redis?.stop();
});

beforeEach(() => {
  offset = 0;
});

const startUrl = (rd = '/') => `${base}/auth/oidc/${PROVIDER}/start?rd=${encodeURIComponent(rd)}`;
const signIn = (login: string, jar?: CookieJar) =>
  signInWithProvider({ startUrl: startUrl(), login, ...(jar ? { jar } : {}) });

async function validate(jar: CookieJar) {
  return fetch(`${base}/auth/validate`, { headers: { cookie: jar.header() } });
}

async function keys(pattern: string): Promise<string[]> {
  const found: string[] = [];
  for await (const batch of redis.client.scanIterator({ MATCH: pattern, COUNT: 1000 }))
    found.push(...batch);
  return found.sort();
}

const externalUsers = () =>
  createExternalUsers({
    redis: svc.redis,
    sealer: createSealer(svc.config.encryptionKeys, 'external-user'),
    prefix: 'gh:',
    retentionMs: 60_000,
  });
const userIdOf = (sub: string) => externalUserId('oidc', PROVIDER, sub);

describe('signing in with the provider', () => {
  it('ends in a session; validate answers with the mapped identity and the amr', async () => {
    const { response, jar, loginForms, authorization } = await signIn('pat');
    expect(loginForms).toBe(1);
    // code flow with PKCE S256, state and nonce, to the provider's own authorization endpoint
    expect(authorization.origin).toBe(op.issuer);
    expect(authorization.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorization.searchParams.get('state')).toBeTruthy();
    expect(authorization.searchParams.get('nonce')).toBeTruthy();
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/');
    expect(jar.get('gatehouse')).toBeTruthy();
    expect(jar.get('gatehouse-oidc')).toBeUndefined(); // the binding cookie is cleared

    const res = await validate(jar);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-auth-request-user')).toBe('pat');
    // 'bad group' could be misread by a backend: not passed on (and logged)
    expect(res.headers.get('x-auth-request-groups')).toBe('admins,staff');
    expect(res.headers.get('x-auth-request-email')).toBe('pat@example.com');
    expect(res.headers.get('x-auth-request-amr')).toBe('pwd');
    const body = (await res.json()) as { user: { id: string } };
    expect(body.user.id).toBe(userIdOf('sub-pat'));
    expect(logs.some((l) => l.event === 'oidc.claims_dropped')).toBe(true);
  });

  it('a provider that checked a second factor (amr mfa) gives an aal2 session', async () => {
    const { response, jar } = await signIn('mfa');
    expect(response.status).toBe(303);
    const res = await validate(jar);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-auth-request-user')).toBe('mfa-user');
    expect(res.headers.get('x-auth-request-amr')?.split(',').sort()).toEqual(
      ['mfa', 'otp', 'pwd'].sort(),
    );
    expect(res.headers.get('x-auth-request-acr')).toBe('aal2');
  });

  it('keeps the external user in Redis, sealed: no email, name or username in plaintext', async () => {
    await signIn('pat');
    const id = userIdOf('sub-pat');
    expect(id).toMatch(/^oidc:op:/);
    const raw = await redis.client.get(`gh:xuser:${id}`);
    expect(raw).toBeTruthy();
    for (const secret of ['pat@example.com', 'Pat Provider', 'admins', 'sub-pat'])
      expect(raw).not.toContain(secret);
    const record = await externalUsers().get(id);
    expect(record).toMatchObject({
      source: 'oidc',
      provider: PROVIDER,
      subject: 'sub-pat',
      username: 'pat',
      email: 'pat@example.com',
      groups: ['admins', 'staff'],
    });
    // offline_access: the refresh token is kept (sealed) for the re-checks
    expect(record?.refreshToken).toBeTruthy();
  });

  it("a users-file user's name cannot be taken through the provider: 409, no session", async () => {
    const sessionsBefore = await keys('gh:sess:*');
    const { response, jar } = await signIn('alice-at-op');
    expect(response.status).toBe(409);
    expect(((await response.json()) as { error: string }).error).toBe('USERNAME_TAKEN');
    expect(jar.get('gatehouse')).toBeUndefined();
    expect(await keys('gh:sess:*')).toEqual(sessionsBefore);
    expect(await redis.client.get(`gh:xuser:${userIdOf('sub-alice-op')}`)).toBeNull();
  });

  it('two provider accounts with one username: the first keeps it, the second gets 409', async () => {
    const first = await signIn('carol-1');
    expect(first.response.status).toBe(303);
    const sessionsBefore = await keys('gh:sess:*');
    const second = await signIn('carol-2'); // preferred_username "Carol": the same name
    expect(second.response.status).toBe(409);
    expect(((await second.response.json()) as { error: string }).error).toBe('USERNAME_TAKEN');
    expect(second.jar.get('gatehouse')).toBeUndefined();
    expect(await keys('gh:sess:*')).toEqual(sessionsBefore);
    expect(await redis.client.get(`gh:xuser:${userIdOf('sub-carol-2')}`)).toBeNull();
    // the first one signs in again, still
    expect((await signIn('carol-1')).response.status).toBe(303);
  });
});

describe('where the sign-in goes afterwards, and the step-up', () => {
  it.each([
    ['/reports?q=1', '/reports?q=1'],
    ['https://evil.example/phish', '/'],
    ['//evil.example/phish', '/'],
    ['/\\evil.example', '/'],
  ])('rd=%s → the callback sends the browser to %s', async (rd, location) => {
    const { response } = await signInWithProvider({ startUrl: startUrl(rd), login: 'kim' });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe(location);
  });

  it('reauth asks the provider for the password again and steps up the same session', async () => {
    const { jar } = await signIn('kim');
    const first = await validate(jar);
    const authTime = Number(first.headers.get('x-auth-request-auth-time'));
    const sessionCookie = jar.get('gatehouse');
    // the provider session would sign in silently; prompt=login makes it ask
    const flow = await toCallback({
      jar,
      startUrl: `${base}/auth/oidc/${PROVIDER}/reauth?rd=/after`,
      login: 'kim',
    });
    expect(flow.loginForms).toBe(1);
    expect(flow.authorization.searchParams.get('prompt')).toBe('login');
    expect(flow.authorization.searchParams.get('max_age')).toBe('0');
    // a second apart at least, for auth_time (seconds) to move
    await waitFor(() => Date.now() / 1000 >= authTime + 1, 2_000, 'the next second');
    const res = await jar.fetch(flow.callback.href);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/after');
    expect(jar.get('gatehouse')).toBe(sessionCookie);
    const after = await validate(jar);
    expect(after.status).toBe(200);
    expect(Number(after.headers.get('x-auth-request-auth-time'))).toBeGreaterThan(authTime);
  });

  it('reauth as another provider account → 403, the session unchanged', async () => {
    const signedIn = await signIn('kim');
    // another browser profile at the provider (no provider session there: signing in as sam over
    // kim's provider session would end it, and with it, by back-channel logout, this session)
    const jar = new CookieJar();
    jar.set('gatehouse', signedIn.jar.get('gatehouse') ?? '');
    const before = await validate(jar);
    const flow = await toCallback({
      jar,
      startUrl: `${base}/auth/oidc/${PROVIDER}/reauth?rd=/after`,
      login: 'sam',
    });
    const res = await jar.fetch(flow.callback.href, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(403);
    const after = await validate(jar);
    expect(after.status).toBe(200);
    expect(after.headers.get('x-auth-request-user')).toBe('kim');
    expect(after.headers.get('x-auth-request-auth-time')).toBe(
      before.headers.get('x-auth-request-auth-time'),
    );
  });

  it('reauth without a session → 401, nothing stored', async () => {
    const loginsBefore = await keys('gh:oidc-login:*');
    const anonymous = await fetch(`${base}/auth/oidc/${PROVIDER}/reauth`, {
      redirect: 'manual',
      headers: { accept: 'application/json' },
    });
    expect(anonymous.status).toBe(401);
    expect(await keys('gh:oidc-login:*')).toEqual(loginsBefore);
  });

  it("reauth of a users-file user's session → 403, nothing stored", async () => {
    const cookie = await jsonLogin(base, 'alice', 'alice-local-password');
    const loginsBefore = await keys('gh:oidc-login:*');
    const res = await fetch(`${base}/auth/oidc/${PROVIDER}/reauth`, {
      redirect: 'manual',
      headers: { accept: 'application/json', cookie },
    });
    expect(res.status).toBe(403);
    expect(await keys('gh:oidc-login:*')).toEqual(loginsBefore);
  });
});

describe('the callback checks', () => {
  /** What the table's cases get: a fresh sign-in stopped at the callback. */
  async function stoppedAtCallback(login = 'kim') {
    const jar = new CookieJar();
    const flow = await toCallback({ jar, startUrl: startUrl(), login });
    return { jar, ...flow };
  }

  const withState = (callback: URL, state: string | null) => {
    const url = new URL(callback);
    if (state === null) url.searchParams.delete('state');
    else url.searchParams.set('state', state);
    return url.href;
  };

  type Case = (flow: Awaited<ReturnType<typeof stoppedAtCallback>>) => Promise<Response>;
  const JSON_ACCEPT = { accept: 'application/json' };
  const cases: Array<[string, Case]> = [
    [
      'no state',
      ({ jar, callback }) => jar.fetch(withState(callback, null), { headers: JSON_ACCEPT }),
    ],
    [
      'a state never issued',
      ({ jar, callback }) =>
        jar.fetch(withState(callback, randomBytes(32).toString('base64url')), {
          headers: JSON_ACCEPT,
        }),
    ],
    [
      'an overlong state',
      ({ jar, callback }) =>
        jar.fetch(withState(callback, 'x'.repeat(400)), { headers: JSON_ACCEPT }),
    ],
    [
      'no binding cookie',
      ({ callback }) => fetch(callback.href, { redirect: 'manual', headers: JSON_ACCEPT }),
    ],
    [
      "the binding cookie of another sign-in (login CSRF: someone else's callback)",
      async ({ callback }) => {
        const other = new CookieJar();
        const start = await other.fetch(startUrl());
        expect(start.status).toBe(303);
        return other.fetch(callback.href, { headers: JSON_ACCEPT });
      },
    ],
    [
      'a forged binding cookie',
      ({ callback }) =>
        fetch(callback.href, {
          redirect: 'manual',
          headers: {
            ...JSON_ACCEPT,
            cookie: `gatehouse-oidc=${randomBytes(32).toString('base64url')}`,
          },
        }),
    ],
    [
      'a replayed callback (state used already)',
      async ({ jar, callback, binding }) => {
        const first = await jar.fetch(callback.href);
        expect(first.status).toBe(303);
        // the same browser, the same binding cookie, the same callback URL again
        return fetch(callback.href, {
          redirect: 'manual',
          headers: { ...JSON_ACCEPT, cookie: `gatehouse-oidc=${binding}` },
        });
      },
    ],
    [
      'a state from another sign-in of the same browser',
      async ({ jar, callback }) => {
        // a second start in the same browser replaces the binding cookie
        const again = await jar.fetch(startUrl());
        expect(again.status).toBe(303);
        return jar.fetch(callback.href, { headers: JSON_ACCEPT });
      },
    ],
    [
      'a code that was tampered with',
      ({ jar, callback }) => {
        const url = new URL(callback);
        url.searchParams.set('code', `${url.searchParams.get('code')}x`);
        return jar.fetch(url.href, { headers: JSON_ACCEPT });
      },
    ],
  ];

  it.each(cases)('%s → 400 SIGN_IN_INVALID, nothing stored', async (name, run) => {
    const flow = await stoppedAtCallback();
    const replay = name.startsWith('a replayed');
    const sessionsBefore = replay ? [] : await keys('gh:sess:*');
    const usersBefore = replay ? [] : await keys('gh:xuser:*');
    const res = await run(flow);
    const sessionsAfter = replay ? [] : await keys('gh:sess:*');
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string };
    expect(body.error).toBe('SIGN_IN_INVALID');
    expect(res.headers.getSetCookie().some((c) => c.startsWith('gatehouse='))).toBe(false);
    if (!replay) {
      expect(sessionsAfter).toEqual(sessionsBefore);
      expect(await keys('gh:xuser:*')).toEqual(usersBefore);
    }
  });

  it('the provider answers error=access_denied (cancel) → 403 SIGN_IN_NOT_ALLOWED', async () => {
    const jar = new CookieJar();
    const { callback } = await toCallback({ jar, startUrl: startUrl(), cancel: true });
    expect(callback.searchParams.get('error')).toBe('access_denied');
    const sessionsBefore = await keys('gh:sess:*');
    const res = await jar.fetch(callback.href, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('SIGN_IN_NOT_ALLOWED');
    expect(jar.get('gatehouse')).toBeUndefined();
    expect(await keys('gh:sess:*')).toEqual(sessionsBefore);
  });

  it('another error from the provider → 400 SIGN_IN_INVALID', async () => {
    const flow = await stoppedAtCallback();
    const url = new URL(flow.callback);
    url.searchParams.delete('code');
    url.searchParams.set('error', 'server_error');
    const res = await flow.jar.fetch(url.href, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('SIGN_IN_INVALID');
  });

  it('an unknown provider → 404 at start and callback', async () => {
    expect((await fetch(`${base}/auth/oidc/nope/start`, { redirect: 'manual' })).status).toBe(404);
    expect((await fetch(`${base}/auth/oidc/nope/callback?state=x`)).status).toBe(404);
  });
});

describe('the provider down', () => {
  const noStack = (text: string) => {
    expect(text).not.toMatch(/\n\s+at /);
    expect(text).not.toMatch(/TypeError|ECONNREFUSED|fetch failed|node_modules/);
  };

  it('at start → 503 IDENTITY_PROVIDER_UNAVAILABLE, JSON or a page, never a stack trace', async () => {
    // warm: this service has the provider's discovery document already
    expect((await signIn('kim')).response.status).toBe(303);
    await op.stop();
    try {
      const sessionsBefore = await keys('gh:sess:*');
      const loginsBefore = await keys('gh:oidc-login:*');
      const json = await fetch(startUrl(), {
        redirect: 'manual',
        headers: { accept: 'application/json' },
      });
      const jsonText = await json.text();
      expect(json.status, jsonText).toBe(503);
      expect(JSON.parse(jsonText)).toMatchObject({ error: 'IDENTITY_PROVIDER_UNAVAILABLE' });
      noStack(jsonText);
      expect(json.headers.getSetCookie().some((c) => c.startsWith('gatehouse-oidc='))).toBe(false);

      const page = await fetch(startUrl(), {
        redirect: 'manual',
        headers: { accept: 'text/html,application/xhtml+xml' },
      });
      const html = await page.text();
      expect(page.status).toBe(503);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect(html).toContain('not reachable');
      noStack(html);
      expect(await keys('gh:oidc-login:*')).toEqual(loginsBefore);
      expect(await keys('gh:sess:*')).toEqual(sessionsBefore);
    } finally {
      await op.start();
    }
  });

  it('at start, for a service that never reached it → 503 too', async () => {
    await op.stop();
    let fresh: SessionServiceApp | undefined;
    try {
      fresh = await buildService('gh-fresh:');
      const { default: request } = await import('supertest');
      const res = await request(fresh.app)
        .get(`/auth/oidc/${PROVIDER}/start`)
        .set('accept', 'application/json');
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ error: 'IDENTITY_PROVIDER_UNAVAILABLE' });
      noStack(res.text);
    } finally {
      await op.start();
      await fresh?.close();
    }
  });

  it('at the callback (token endpoint) → 503, no session', async () => {
    const jar = new CookieJar();
    const { callback } = await toCallback({ jar, startUrl: startUrl(), login: 'kim' });
    await op.stop();
    try {
      const res = await jar.fetch(callback.href, { headers: { accept: 'application/json' } });
      const text = await res.text();
      expect(res.status, text).toBe(503);
      expect(JSON.parse(text)).toMatchObject({ error: 'IDENTITY_PROVIDER_UNAVAILABLE' });
      noStack(text);
      expect(jar.get('gatehouse')).toBeUndefined();
    } finally {
      await op.start();
    }
  });
});

describe('back-channel logout', () => {
  const endpoint = () => `${base}/auth/oidc/${PROVIDER}/backchannel-logout`;
  const post = (body: string) =>
    fetch(endpoint(), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
  const postToken = (token: string) =>
    post(new URLSearchParams({ logout_token: token }).toString());

  /** A logout token's claims as the provider would send them, for `sub` and `sid`. */
  const claims = (over: Record<string, unknown> = {}) => ({
    iss: op.issuer,
    aud: CLIENT_ID,
    iat: Math.floor(Date.now() / 1000),
    jti: randomBytes(16).toString('hex'),
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    sub: 'sub-lee',
    ...over,
  });
  const typ = { typ: 'logout+jwt' };

  it('a valid token from the provider ends exactly that provider session’s sessions; its replay is refused', async () => {
    // lee signed in twice, in two browsers: two provider sessions, two sids
    const one = await signIn('lee');
    const two = await signIn('lee');
    expect(one.response.status).toBe(303);
    expect(two.response.status).toBe(303);
    const sessions = op.sessionsOf('sub-lee');
    expect(sessions.length).toBeGreaterThanOrEqual(2);
    const sidOne = sessions.find((s) => s.id === one.jar.get('op_session'))?.sids[CLIENT_ID];
    expect(sidOne).toBeTruthy();
    // someone else's session, to see it untouched
    const other = await signIn('rex');
    expect((await validate(other.jar)).status).toBe(200);

    delivered.length = 0;
    const status = await op.backchannelLogout({
      clientId: CLIENT_ID,
      accountId: 'sub-lee',
      sid: sidOne,
    });
    expect(status).toBe(200);
    expect(delivered).toHaveLength(1);
    expect((await validate(one.jar)).status).toBe(401);
    expect((await validate(two.jar)).status).toBe(200);
    expect((await validate(other.jar)).status).toBe(200);

    // the same token again (captured on its way): refused, nothing more ends
    const replay = await postToken(delivered[0] ?? '');
    expect(replay.status).toBe(400);
    expect(await replay.json()).toMatchObject({ error: 'invalid_request' });
    expect((await validate(two.jar)).status).toBe(200);
    // and a token signed anew with the same jti
    const { decodeJwt } = await import('jose');
    const original = decodeJwt(delivered[0] ?? '');
    const resigned = await op.signWithProviderKey(
      { ...original, iat: Math.floor(Date.now() / 1000) },
      typ,
    );
    expect((await postToken(resigned)).status).toBe(400);
    expect((await validate(two.jar)).status).toBe(200);
  });

  it.each<[string, () => Promise<string | null> | string | null, string?]>([
    ['signed with a foreign key', () => op.signWithForeignKey(claims(), typ)],
    [
      "signed with a foreign key under the provider's kid",
      async () => {
        const { SignJWT, generateKeyPair } = await import('jose');
        const { privateKey } = await generateKeyPair('RS256');
        return new SignJWT(claims())
          .setProtectedHeader({ alg: 'RS256', kid: op.currentKid(), typ: 'logout+jwt' })
          .sign(privateKey);
      },
    ],
    ['for another audience', () => op.signWithProviderKey(claims({ aud: 'another-client' }), typ)],
    [
      'from another issuer',
      () => op.signWithProviderKey(claims({ iss: 'https://evil.example' }), typ),
    ],
    ['with a nonce', () => op.signWithProviderKey(claims({ nonce: 'n' }), typ)],
    ['without events', () => op.signWithProviderKey(claims({ events: undefined }), typ)],
    [
      'with another event',
      () => op.signWithProviderKey(claims({ events: { 'urn:other': {} } }), typ),
    ],
    [
      'the event not an object',
      () => op.signWithProviderKey(claims({ events: { [BACKCHANNEL_LOGOUT_EVENT]: 'yes' } }), typ),
    ],
    ['without sub and sid', () => op.signWithProviderKey(claims({ sub: undefined }), typ)],
    ['without jti', () => op.signWithProviderKey(claims({ jti: undefined }), typ)],
    ['without iat', () => op.signWithProviderKey(claims({ iat: undefined }), typ)],
    [
      'issued 20 minutes ago',
      () => op.signWithProviderKey(claims({ iat: Math.floor(Date.now() / 1000) - 20 * 60 }), typ),
    ],
    [
      'issued 20 minutes ahead',
      () => op.signWithProviderKey(claims({ iat: Math.floor(Date.now() / 1000) + 20 * 60 }), typ),
    ],
    [
      'expired',
      () => op.signWithProviderKey(claims({ exp: Math.floor(Date.now() / 1000) - 120 }), typ),
    ],
    [
      'with alg none',
      () => {
        const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
        return `${enc({ alg: 'none', typ: 'logout+jwt' })}.${enc(claims())}.`;
      },
    ],
    ['malformed', () => 'not.a.jwt'],
    ['empty', () => ''],
    ['missing', () => null],
    ['oversized', () => `${'a'.repeat(9000)}.b.c`],
  ])('a token %s → 400, no session ends', async (_, make) => {
    const victim = await signIn('lee');
    expect((await validate(victim.jar)).status).toBe(200);
    const token = await make();
    const res = token === null ? await post('other=1') : await postToken(token);
    expect(res.status).toBe(400);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toMatchObject({ error: 'invalid_request' });
    expect((await validate(victim.jar)).status).toBe(200);
  });

  it('a valid token signed like the provider does passes (the table above can fail)', async () => {
    const victim = await signIn('lee');
    const sid = op.sessionsOf('sub-lee').find((s) => s.id === victim.jar.get('op_session'))?.sids[
      CLIENT_ID
    ];
    const res = await postToken(await op.signWithProviderKey(claims({ sid }), typ));
    expect(res.status).toBe(200);
    expect((await validate(victim.jar)).status).toBe(401);
  });

  it('a sub-only token ends every session of that user, and no one else’s', async () => {
    const sessions = [await signIn('sam'), await signIn('sam'), await signIn('sam')];
    const other = await signIn('rex');
    for (const s of sessions) expect((await validate(s.jar)).status).toBe(200);
    const res = await postToken(await op.signWithProviderKey(claims({ sub: 'sub-sam' }), typ));
    expect(res.status).toBe(200);
    for (const s of sessions) expect((await validate(s.jar)).status).toBe(401);
    expect((await validate(other.jar)).status).toBe(200);
  });

  it('a token for a sid nobody here has: 200, nothing ends', async () => {
    const victim = await signIn('lee');
    const res = await postToken(
      await op.signWithProviderKey(claims({ sid: 'unknown-sid', sub: 'sub-lee' }), typ),
    );
    expect(res.status).toBe(200);
    expect((await validate(victim.jar)).status).toBe(200);
  });
});

describe('re-checks with the refresh token (refreshSeconds: 10)', () => {
  const checkedAt = async (sub: string) => (await externalUsers().get(userIdOf(sub)))?.checkedAt;

  it('a validation past the window refreshes; once the provider refuses, the user is signed out', async () => {
    const { jar } = await signIn('kim');
    const signedInAt = await checkedAt('sub-kim');
    expect(signedInAt).toBeTypeOf('number');

    // within the window: no refresh
    op.requests.length = 0;
    offset = 5_000;
    expect((await validate(jar)).status).toBe(200);
    expect(op.requests.some((r) => r.path === '/token')).toBe(false);

    // past it: the validation answers at once, a refresh grant runs behind it
    offset = 11_000;
    expect((await validate(jar)).status).toBe(200);
    await waitFor(
      async () => ((await checkedAt('sub-kim')) ?? 0) > (signedInAt ?? 0),
      5_000,
      'the record to be re-checked',
    );
    expect(op.requests.some((r) => r.path === '/token' && r.status === 200)).toBe(true);

    // the provider ends the grant: the next re-check removes the user, every session ends
    const second = await signIn('kim');
    expect(await op.revokeRefreshTokens('sub-kim')).toBeGreaterThan(0);
    offset = 60_000;
    await waitFor(async () => (await validate(jar)).status === 401, 5_000, 'the session to end');
    expect((await validate(second.jar)).status).toBe(401);
    expect(await redis.client.get(`gh:xuser:${userIdOf('sub-kim')}`)).toBeNull();
    expect(
      logs.some(
        (l) =>
          l.event === 'sessions.ended_by_source' &&
          l.userId === userIdOf('sub-kim') &&
          String(l.reason).startsWith('oidc_refresh_refused'),
      ),
    ).toBe(true);
  });

  it("the provider's new ID token at a re-check updates the groups backends see", async () => {
    const { jar } = await signIn('lee');
    expect((await validate(jar)).headers.get('x-auth-request-groups')).toBe('staff');
    const before = await checkedAt('sub-lee');
    await op.setAccount('lee', {
      sub: 'sub-lee',
      claims: { preferred_username: 'lee', groups: ['staff', 'finance'] },
    });
    try {
      offset = 11_000;
      expect((await validate(jar)).status).toBe(200);
      await waitFor(
        async () => ((await checkedAt('sub-lee')) ?? 0) > (before ?? 0),
        5_000,
        'the re-check',
      );
      const res = await validate(jar);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-auth-request-groups')).toBe('staff,finance');
    } finally {
      await op.setAccount('lee', {
        sub: 'sub-lee',
        claims: { preferred_username: 'lee', groups: ['staff'] },
      });
    }
  });

  it('a provider that is down during the re-check leaves the session valid, and says so', async () => {
    const { jar } = await signIn('rex');
    const before = await checkedAt('sub-rex');
    const logged = logs.length;
    await op.stop();
    try {
      offset = 11_000;
      expect((await validate(jar)).status).toBe(200);
      await waitFor(
        () =>
          logs
            .slice(logged)
            .some(
              (l) =>
                l.msg === 'identity source re-check failed; sessions kept' &&
                l.userId === userIdOf('sub-rex'),
            ),
        5_000,
        'the failed re-check to be logged',
      );
      const res = await validate(jar);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-auth-request-user')).toBe('rex');
      expect(await checkedAt('sub-rex')).toBe(before);
    } finally {
      await op.start();
    }
  });
});
