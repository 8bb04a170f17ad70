/**
 * Over 300 lines on purpose: the flows share one session-service, one Redis and a clock the tests move.
 *
 * The flows around second factors on real Redis and the real session-service (issue 14): the
 * step-up page for each `need`, enrolling as a step-up (no loop), turning TOTP off ending the
 * other sessions, and REQUIRE_SECOND_FACTOR with its grace period. Codes come from the tests' own
 * RFC 6238 (test/helpers/totp.ts); the clock is createApp's `now`.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, type RedisClient } from '../../common/src/redis.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { getPage, postPageForm } from '../helpers/forms.js';
import { silentLogger } from '../helpers/logger.js';
import { browserLogin, JSON_HEADERS } from '../helpers/login.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  NO_THROTTLE,
  type SessionServiceApp,
} from '../helpers/session-service.js';
import { nextTotpStep, totpAt } from '../helpers/totp.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';
const clock = { t: Date.now() };
const now = () => clock.t;
const DAY = 86_400_000;

let redis: RedisServer;
let client: RedisClient;
const services: SessionServiceApp[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  redis = await startRedis();
  client = createRedis({ url: redis.url }, silentLogger);
  await client.connect();
});
afterAll(async () => {
  for (const s of servers) s.close();
  await client?.close();
  await Promise.all(services.map((s) => s.close()));
  await redis?.stop();
});

/** A session-service on its own port (one Redis for all), with `env`; users: names or a file. */
async function serve(usernames: string[] | string, env: Record<string, string> = {}) {
  const usersFile =
    typeof usernames === 'string'
      ? usernames
      : (await writeTestUsers(usernames.map((username) => ({ username, password: PASSWORD }))))
          .path;
  const service = await buildSessionService({
    redisUrl: redis.url,
    usersFile,
    env,
    throttleLimits: NO_THROTTLE,
    codeThrottleLimits: { addressAttempts: 100_000, addressFailures: 100_000 },
    now,
  });
  services.push(service);
  const server = service.app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((r) => server.once('listening', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const nextStep = () => nextTotpStep(clock);
const html = getPage;
const post = postPageForm;

/** A browser signed in with the password (a user without a second factor yet). */
async function signedIn(base: string, username: string) {
  const jar = new CookieJar();
  const res = await browserLogin(jar, base, username, PASSWORD);
  expect(res.status).toBe(303);
  expect(jar.get('gatehouse'), String(res.headers.get('location'))).toBeTruthy();
  return jar;
}

/** Enrol from a signed-in browser; returns the secret. */
async function enrol(base: string, jar: CookieJar) {
  const page = await (await html(jar, `${base}/auth/security/totp`)).text();
  const secret = /secret=([A-Z2-7]+)/.exec(page)?.[1] ?? '';
  const res = await post(jar, `${base}/auth/security/totp`, page, {
    totp: totpAt(secret, clock.t),
  });
  expect(res.status).toBe(200);
  nextStep();
  return secret;
}

const authenticationOf = async (base: string, jar: CookieJar) => {
  const res = await jar.fetch(`${base}/auth/validate`, { headers: { accept: 'application/json' } });
  return res.status === 200 ? (await res.json()).authentication : null;
};

describe('the step-up page', () => {
  let base: string;
  beforeAll(async () => {
    base = await serve(['alice', 'bob', 'carol', 'frank']);
  });

  it('asks a password-only session of a user with TOTP for a code, steps it up (same cookie) and goes to rd', async () => {
    const older = await signedIn(base, 'alice'); // signed in before the factor existed: aal1
    const secret = await enrol(base, await signedIn(base, 'alice'));
    expect((await authenticationOf(base, older)).acr).toBe('aal1');
    const cookie = older.get('gatehouse');

    const url = `${base}/auth/step-up?rd=${encodeURIComponent('/admin/x?y=1')}&need=second-factor`;
    const page = await html(older, url);
    expect(page.status).toBe(200);
    const form = await page.text();
    expect(form).toContain('name="totp"');
    expect(form).toContain('name="recovery_code"');

    const wrong = await post(older, `${base}/auth/step-up`, form, {
      rd: '/admin/x?y=1',
      need: 'second-factor',
      totp: '000000',
    });
    expect(wrong.status).toBe(401);
    const done = await post(older, `${base}/auth/step-up`, form, {
      rd: '/admin/x?y=1',
      need: 'second-factor',
      totp: totpAt(secret, clock.t),
    });
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toBe('/admin/x?y=1');
    expect(older.get('gatehouse')).toBe(cookie); // the id is kept
    expect(await authenticationOf(base, older)).toEqual({
      amr: ['pwd', 'otp', 'mfa'],
      acr: 'aal2',
      authTime: new Date(clock.t).toISOString(),
    });
    nextStep();
  });

  it('sends a user without a second factor to enrol, and enrolling is the step-up: back to rd, aal2, no loop', async () => {
    const jar = await signedIn(base, 'bob');
    const step = await html(jar, `${base}/auth/step-up?rd=%2Freports&need=second-factor`);
    expect(step.status).toBe(303);
    expect(step.headers.get('location')).toBe('/auth/security/totp?rd=%2Freports');
    const page = await (await html(jar, `${base}${step.headers.get('location')}`)).text();
    const secret = /secret=([A-Z2-7]+)/.exec(page)?.[1] ?? '';
    const confirmed = await post(jar, `${base}/auth/security/totp`, page, {
      rd: '/reports',
      totp: totpAt(secret, clock.t),
    });
    expect(confirmed.status).toBe(200);
    expect(await confirmed.text()).toContain('href="/reports"');
    expect((await authenticationOf(base, jar)).acr).toBe('aal2');
    nextStep();
  });

  it('sets up a factor only for a session that proved the password in the last 10 minutes (else the password first, then back)', async () => {
    const users = await writeTestUsers([{ username: 'hank', password: PASSWORD }]);
    const own = await serve(users.path);
    const jar = await signedIn(own, 'hank');
    clock.t += 11 * 60_000;
    nextStep();
    const enrolUrl = '/auth/security/totp?rd=%2Freports';
    const sent = await html(jar, `${own}${enrolUrl}`);
    expect(sent.status).toBe(303);
    const reauth = `/auth/step-up?need=recent-authentication&rd=${encodeURIComponent(enrolUrl)}`;
    expect(sent.headers.get('location')).toBe(reauth);
    // A form posted from a page left open meanwhile is sent the same way; JSON gets the code.
    const api = await jar.fetch(`${own}/auth/security/totp`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ totp: '123456' }),
    });
    expect(api.status).toBe(401);
    expect((await api.json()).error).toBe('REAUTHENTICATION_REQUIRED');

    const page = await (await html(jar, `${own}${reauth}`)).text();
    expect(page).toContain('name="password"');
    expect(page).not.toContain('name="totp"'); // no factor yet: the password alone
    const back = await post(jar, `${own}/auth/step-up`, page, {
      need: 'recent-authentication',
      rd: enrolUrl,
      password: PASSWORD,
    });
    expect(back.status).toBe(303);
    expect(back.headers.get('location')).toBe(enrolUrl);
    const enrolPage = await (await html(jar, `${own}${enrolUrl}`)).text();
    const secret = /secret=([A-Z2-7]+)/.exec(enrolPage)?.[1] ?? '';
    const done = await post(jar, `${own}/auth/security/totp`, enrolPage, {
      rd: '/reports',
      totp: totpAt(secret, clock.t),
    });
    expect(done.status).toBe(200);
    expect((await authenticationOf(own, jar)).acr).toBe('aal2');
    nextStep();
  });

  it('asks for the password again (and the code) for recent-authentication, and moves authTime', async () => {
    const jar = await signedIn(base, 'carol');
    const secret = await enrol(base, jar);
    const before = (await authenticationOf(base, jar)).authTime;
    clock.t += 3600_000;
    nextStep();
    const page = await (
      await html(jar, `${base}/auth/step-up?rd=/billing&need=recent-authentication`)
    ).text();
    expect(page).toContain('name="password"');
    expect(page).toContain('name="totp"');
    const wrong = await post(jar, `${base}/auth/step-up`, page, {
      rd: '/billing',
      need: 'recent-authentication',
      password: 'not it',
      totp: totpAt(secret, clock.t),
    });
    expect(wrong.status).toBe(401);
    const done = await post(jar, `${base}/auth/step-up`, page, {
      rd: '/billing',
      need: 'recent-authentication',
      password: PASSWORD,
      totp: totpAt(secret, clock.t),
    });
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toBe('/billing');
    const after = await authenticationOf(base, jar);
    expect(Date.parse(after.authTime) - Date.parse(before)).toBeGreaterThanOrEqual(3600_000);
    nextStep();
  });

  it('says a security key is required for webauthn: 403 WEBAUTHN_REQUIRED, for pages and JSON', async () => {
    const jar = await signedIn(base, 'frank');
    const page = await html(jar, `${base}/auth/step-up?rd=/x&need=webauthn`);
    expect(page.status).toBe(403);
    expect(await page.text()).toContain('WEBAUTHN_REQUIRED');
    const api = await jar.fetch(`${base}/auth/step-up?need=webauthn`, {
      headers: { accept: 'application/json' },
    });
    expect(api.status).toBe(403);
    expect((await api.json()).error).toBe('WEBAUTHN_REQUIRED');
  });

  it('sends a browser without a session to sign in first, and back; refuses a foreign rd', async () => {
    const anonymous = new CookieJar();
    const url = '/auth/step-up?rd=%2Fadmin&need=second-factor';
    const res = await html(anonymous, `${base}${url}`);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe(`/auth/login?rd=${encodeURIComponent(url)}`);

    // rd is validated as the login's: a foreign one becomes / (here on the way to enrolment).
    const jar = await signedIn(base, 'frank');
    const foreign = await html(
      jar,
      `${base}/auth/step-up?rd=https://evil.example/&need=second-factor`,
    );
    expect(foreign.status).toBe(303);
    expect(foreign.headers.get('location')).toBe('/auth/security/totp?rd=%2F');
  });
});

describe('turning two-factor authentication off', () => {
  it('needs a current code and ends the other sessions of the user', async () => {
    const base = await serve(['dave']);
    const other = await signedIn(base, 'dave');
    const jar = await signedIn(base, 'dave');
    const secret = await enrol(base, jar);
    const page = await (await html(jar, `${base}/auth/security`)).text();
    const refused = await post(jar, `${base}/auth/security/totp/remove`, page, { code: '123456' });
    expect(refused.status).toBe(401);
    const removed = await post(jar, `${base}/auth/security/totp/remove`, page, {
      code: totpAt(secret, clock.t),
    });
    expect(removed.status).toBe(303);
    expect(removed.headers.get('location')).toBe('/auth/security?removed=1');
    expect(await authenticationOf(base, other)).toBeNull();
    expect(await authenticationOf(base, jar)).not.toBeNull();
    const status = await (
      await jar.fetch(`${base}/auth/security`, { headers: { accept: 'application/json' } })
    ).json();
    expect(status).toEqual({ totp: false, recoveryCodesLeft: 0, webauthn: 0 });
    // The password alone signs in again.
    const login = await fetch(`${base}/auth/login`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ username: 'dave', password: PASSWORD }),
    });
    expect(login.status).toBe(200);
    nextStep();
  });
});

describe('REQUIRE_SECOND_FACTOR with a grace period', () => {
  let base: string;
  beforeAll(async () => {
    base = await serve(['erin'], { REQUIRE_SECOND_FACTOR: 'true', SECOND_FACTOR_GRACE_DAYS: '7' });
  });
  const json = () =>
    fetch(`${base}/auth/login`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ username: 'erin', password: PASSWORD }),
    });

  it('during the grace period: a session, and the enrolment page with a way to skip it', async () => {
    const start = clock.t;
    const jar = new CookieJar();
    const res = await browserLogin(jar, base, 'erin', PASSWORD, '/home');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/auth/security/totp?rd=%2Fhome');
    expect(jar.get('gatehouse')).toBeTruthy();
    const page = await (await html(jar, `${base}/auth/security/totp?rd=%2Fhome`)).text();
    expect(page).toContain('<a href="/home">Skip for now</a>');
    const api = await json();
    expect(api.status).toBe(200);
    expect((await api.json()).secondFactor).toEqual({
      required: true,
      enrolBy: new Date(start + 7 * DAY).toISOString(),
    });
  });

  it('after it: no session until a factor is set up (forms enrol on the way in; JSON 403)', async () => {
    clock.t += 8 * DAY;
    nextStep();
    const api = await json();
    expect(api.status).toBe(403);
    expect((await api.json()).error).toBe('MFA_ENROLMENT_REQUIRED');
    expect(api.headers.getSetCookie()).toEqual([]);

    const jar = new CookieJar();
    const res = await browserLogin(jar, base, 'erin', PASSWORD, '/home');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/auth/login/enrol');
    expect(jar.get('gatehouse')).toBeUndefined();
    const page = await (await html(jar, `${base}/auth/login/enrol`)).text();
    expect(page).toContain('requires a second factor');
    expect(page).not.toContain('Skip for now');
    const secret = /secret=([A-Z2-7]+)/.exec(page)?.[1] ?? '';
    const done = await post(jar, `${base}/auth/login/enrol`, page, {
      totp: totpAt(secret, clock.t),
    });
    expect(done.status).toBe(200);
    const codes = await done.text();
    expect(codes.match(/<li><code>/g)).toHaveLength(10);
    expect(codes).toContain('href="/home"');
    expect(jar.get('gatehouse')).toBeTruthy();
    expect((await authenticationOf(base, jar)).acr).toBe('aal2');
  });
});

describe('rotating SESSION_ENCRYPTION_KEY', () => {
  it('keeps TOTP secrets and recovery codes working through SESSION_ENCRYPTION_KEY_PREVIOUS, seals a secret again when read, and refuses (503, never the password alone) a secret no key opens', async () => {
    const OLD = 'old-encryption-key-old-encryption-key-0123';
    const NEW = 'new-encryption-key-new-encryption-key-0123';
    const users = await writeTestUsers([{ username: 'gina', password: PASSWORD }]);
    const before = await serve(users.path, { SESSION_ENCRYPTION_KEY: OLD });
    const jar = await signedIn(before, 'gina');
    const page = await (await html(jar, `${before}/auth/security/totp`)).text();
    const secret = /secret=([A-Z2-7]+)/.exec(page)?.[1] ?? '';
    const enrolled = await post(jar, `${before}/auth/security/totp`, page, {
      totp: totpAt(secret, clock.t),
    });
    const codes = [...(await enrolled.text()).matchAll(/<li><code>([^<]+)<\/code>/g)].map(
      (m) => m[1] as string,
    );
    nextStep();
    const key = `gh:mfa:{${users.users[0]?.id}}:totp`;
    const keyIdOf = async () => String(await client.get(key)).split('.')[1];
    const oldKeyId = await keyIdOf();

    const during = await serve(users.path, {
      SESSION_ENCRYPTION_KEY: NEW,
      SESSION_ENCRYPTION_KEY_PREVIOUS: OLD,
    });
    const login = (base: string, extra: Record<string, string>) =>
      fetch(`${base}/auth/login`, {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ username: 'gina', password: PASSWORD, ...extra }),
      });
    expect((await login(during, { recovery_code: codes[0] as string })).status).toBe(200);
    expect((await login(during, { totp: totpAt(secret, clock.t) })).status).toBe(200);
    expect(await keyIdOf()).not.toBe(oldKeyId); // sealed again with the new key

    // A service without the key the secret is now sealed with (the old key only): no login.
    const resealed = String(await client.get(key));
    const onlyOld = await serve(users.path, { SESSION_ENCRYPTION_KEY: OLD });
    nextStep();
    const refused = await login(onlyOld, { totp: totpAt(secret, clock.t) });
    expect(refused.status).toBe(503);
    expect((await refused.json()).error).toBe('SESSION_STORE_UNAVAILABLE');
    expect(await client.get(key)).toBe(resealed);
  });
});
