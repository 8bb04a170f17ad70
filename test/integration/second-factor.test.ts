/**
 * Over 300 lines on purpose: enrolment, the second step, replay and throttling share one session-service, one Redis and a clock the tests move.
 *
 * TOTP and recovery codes end to end on real Redis and the real session-service app (issue 14):
 * codes computed by the test's own RFC 6238 (test/helpers/totp.ts, not the service's library),
 * the clock moved through createApp's `now`, two instances sharing one Redis for replays.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CookieJar } from '../helpers/cookie-jar.js';
import { getPage, postPageForm } from '../helpers/forms.js';
import { browserLogin, JSON_HEADERS } from '../helpers/login.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { dumpRedis, occurrences } from '../helpers/redis-dump.js';
import {
  buildSessionService,
  NO_THROTTLE,
  type SessionServiceApp,
} from '../helpers/session-service.js';
import { base32Decode, nextTotpStep, totpAt } from '../helpers/totp.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];
/** A clock the tests move: every service here reads it. */
const clock = { t: Date.now() };
const now = () => clock.t;

let redis: RedisServer;
let usersFile: string;
/** Two instances on one Redis (replays across them), the second with its own listener. */
let one: SessionServiceApp;
let two: SessionServiceApp;
let servers: Server[] = [];
/** What both services log (their audit events among it), one parsed line each. */
const logged: Record<string, unknown>[] = [];
const loggedText: string[] = [];
const auditLogger = pino(
  { level: 'info' },
  {
    write(line: string) {
      loggedText.push(line);
      logged.push(JSON.parse(line) as Record<string, unknown>);
    },
  },
);
let bases: string[] = [];
const secrets = new Map<string, string>();

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers(USERS.map((username) => ({ username, password: PASSWORD })));
  usersFile = users.path;
  const build = () =>
    buildSessionService({
      logger: auditLogger,
      redisUrl: redis.url,
      usersFile,
      throttleLimits: NO_THROTTLE,
      // Every attempt here comes from 127.0.0.1: the address limits would mix the tests up;
      // the per-account limits are the real ones.
      codeThrottleLimits: { addressAttempts: 100_000, addressFailures: 100_000 },
      now,
    });
  one = await build();
  two = await build();
  servers = [one, two].map((s) => s.app.listen(0, '127.0.0.1'));
  await Promise.all(servers.map((s) => new Promise((r) => s.once('listening', r))));
  bases = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`);
});

afterAll(async () => {
  for (const s of servers) s.close();
  await Promise.all([one?.close(), two?.close()]);
  await redis?.stop();
});

const nextStep = () => nextTotpStep(clock);

/** Load `path` and post its form (CSRF token included) to `action` with `fields`. */
async function postForm(
  jar: CookieJar,
  base: string,
  path: string,
  action: string,
  fields: Record<string, string>,
) {
  const html = await (await getPage(jar, `${base}${path}`)).text();
  return postPageForm(jar, `${base}${action}`, html, fields);
}

/** A browser signed in with the password alone (a user without a second factor). */
async function passwordBrowser(username: string, base = bases[0] as string) {
  const jar = new CookieJar();
  const res = await browserLogin(jar, base, username, PASSWORD);
  expect(res.status).toBe(303);
  expect(jar.get('gatehouse')).toBeTruthy();
  return jar;
}

/** Enrol TOTP from the security pages of a signed-in browser; returns the secret and the codes. */
async function enrol(jar: CookieJar, base = bases[0] as string, rd?: string) {
  const path = `/auth/security/totp${rd ? `?rd=${encodeURIComponent(rd)}` : ''}`;
  const page = await jar.fetch(`${base}${path}`, { headers: { accept: 'text/html' } });
  expect(page.status).toBe(200);
  const html = await page.text();
  const uri = /id="totp-uri" href="([^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&') ?? '';
  const secret = new URL(uri).searchParams.get('secret') ?? '';
  const confirmed = await postPageForm(jar, `${base}/auth/security/totp`, html, {
    totp: totpAt(secret, clock.t),
    ...(rd ? { rd } : {}),
  });
  expect(confirmed.status).toBe(200);
  const codes = [
    ...(await confirmed.text()).matchAll(/<li><code>([0-9a-z]{5}-[0-9a-z]{5})<\/code><\/li>/g),
  ].map((m) => m[1] as string);
  return { html, uri, secret, codes };
}

/** A user with TOTP enrolled (through the browser); the secret is remembered per user. */
async function enrolled(username: string) {
  const jar = await passwordBrowser(username);
  const { secret, codes } = await enrol(jar);
  secrets.set(username, secret);
  nextStep(); // the enrolment's code is used up
  return { jar, secret, codes };
}

const jsonLogin = (base: string, body: Record<string, unknown>) =>
  fetch(`${base}/auth/login`, {
    method: 'POST',
    headers: JSON_HEADERS,
    body: JSON.stringify(body),
  });

const validate = (base: string, jar: CookieJar) =>
  jar.fetch(`${base}/auth/validate`, { headers: { accept: 'application/json' } });

describe('enrolling an authenticator app from the browser', () => {
  it('shows an otpauth:// URI and its QR code as inline SVG, is confirmed with a first code, gives ten recovery codes once and steps the session up', async () => {
    const jar = await passwordBrowser('alice');
    const sessions = await (
      await jar.fetch(`${bases[0]}/auth/sessions`, { headers: { accept: 'text/html' } })
    ).text();
    expect(sessions).toContain('href="/auth/security"');
    const { html, uri, secret, codes } = await enrol(jar);
    secrets.set('alice', secret);
    expect(uri).toMatch(/^otpauth:\/\/totp\/Gatehouse:alice\?/);
    const params = new URL(uri).searchParams;
    expect(params.get('algorithm')).toBe('SHA1');
    expect(params.get('digits')).toBe('6');
    expect(params.get('period')).toBe('30');
    expect(params.get('issuer')).toBe('Gatehouse');
    expect(secret).toMatch(/^[A-Z2-7]{32}$/); // 160 bits
    expect(html).toMatch(/<figure class="qr"><svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    const body = await (await validate(bases[0] as string, jar)).json();
    expect(body.authentication.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(body.authentication.acr).toBe('aal2');
    // The security page now says it is on, with ten codes left.
    const security = await (
      await jar.fetch(`${bases[0]}/auth/security`, { headers: { accept: 'text/html' } })
    ).text();
    expect(security).toContain('<strong id="codes-left">10</strong>');
    nextStep();
  });

  it('refuses a wrong first code and keeps the factor off', async () => {
    const jar = await passwordBrowser('bob');
    const res = await postForm(
      jar,
      bases[0] as string,
      '/auth/security/totp',
      '/auth/security/totp',
      {
        totp: '000000',
      },
    );
    expect(res.status).toBe(401);
    expect(await res.text()).toContain('That code is not valid');
    const status = await (
      await jar.fetch(`${bases[0]}/auth/security`, { headers: { accept: 'application/json' } })
    ).json();
    expect(status).toEqual({ totp: false, recoveryCodesLeft: 0, webauthn: 0 });
  });

  it('keeps no TOTP secret and no recovery code in clear anywhere in Redis', async () => {
    const { secret, codes } = await enrolled('carol');
    const dump = await dumpRedis([redis.url], 'gh:');
    expect(dump.some((k) => k.key.startsWith('gh:mfa:{'))).toBe(true); // the factors are there…
    // …sealed (the secret in any encoding, as base32 in either case or its raw bytes)…
    for (const needle of [secret, secret.toLowerCase(), base32Decode(secret).toString('latin1')])
      expect(occurrences(dump, needle), 'TOTP secret in Redis').toEqual([]);
    expect(occurrences(dump, 'otpauth://')).toEqual([]);
    // …and the recovery codes only as keyed hashes.
    for (const code of codes) {
      expect(occurrences(dump, code)).toEqual([]);
      expect(occurrences(dump, code.replace('-', ''))).toEqual([]);
    }
    expect(dump.find((k) => k.key.endsWith(':recovery'))?.values).toHaveLength(10);
  });
});

describe('POST /auth/login as JSON for a user with a second factor', () => {
  beforeAll(async () => {
    if (!secrets.has('alice')) await enrolled('alice');
  });

  it('answers 401 MFA_REQUIRED with the methods and no session when the password alone is sent', async () => {
    const res = await jsonLogin(bases[0] as string, { username: 'alice', password: PASSWORD });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: 'MFA_REQUIRED',
      message: expect.any(String),
      methods: ['totp', 'recovery_code'],
    });
    expect(res.headers.getSetCookie()).toEqual([]);
  });

  it('completes the login with the same call plus a totp field: a session of pwd+otp (aal2)', async () => {
    nextStep();
    const res = await jsonLogin(bases[0] as string, {
      username: 'alice',
      password: PASSWORD,
      totp: totpAt(secrets.get('alice') as string, clock.t),
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.user.username).toBe('alice');
    const cookie =
      res.headers
        .getSetCookie()
        .find((c) => c.startsWith('gatehouse='))
        ?.split(';')[0] ?? '';
    const valid = await request(one.app).get('/auth/validate').set('cookie', cookie);
    expect(valid.body.authentication.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(valid.headers['x-auth-request-acr']).toBe('aal2');
  });

  it('refuses a wrong password before looking at the code, and a wrong code with INVALID_CODE', async () => {
    nextStep();
    const secret = secrets.get('alice') as string;
    const wrongPassword = await jsonLogin(bases[0] as string, {
      username: 'alice',
      password: 'wrong password',
      totp: totpAt(secret, clock.t),
    });
    expect(wrongPassword.status).toBe(401);
    expect((await wrongPassword.json()).error).toBe('INVALID_CREDENTIALS');
    const wrongCode = await jsonLogin(bases[0] as string, {
      username: 'alice',
      password: PASSWORD,
      totp: '12345',
    });
    expect(wrongCode.status).toBe(401);
    expect((await wrongCode.json()).error).toBe('INVALID_CODE');
    expect(wrongCode.headers.getSetCookie()).toEqual([]);
  });
});

describe('TOTP codes and the clock', () => {
  it('accepts codes one step either side of now (-1, 0, +1) and refuses two steps away (-2, +2)', async () => {
    const { secret } = await enrolled('dave');
    const attempt = (skew: number) =>
      jsonLogin(bases[0] as string, {
        username: 'dave',
        password: PASSWORD,
        totp: totpAt(secret, clock.t, skew),
      });
    for (const skew of [-2, 2]) {
      const res = await attempt(skew);
      expect(res.status, `skew ${skew}`).toBe(401);
      expect((await res.json()).error).toBe('INVALID_CODE');
    }
    // Each accepted code is another step's, so none is a replay of another.
    for (const skew of [-1, 0, 1]) expect((await attempt(skew)).status, `skew ${skew}`).toBe(200);
    // At the edges of the current step too: its first and last second.
    nextStep();
    const start = Math.floor(clock.t / 30_000) * 30_000;
    clock.t = start;
    expect((await attempt(-1)).status).toBe(200);
    clock.t = start + 29_999;
    expect((await attempt(1)).status).toBe(200);
    expect((await attempt(2)).status).toBe(401);
  });

  it('accepts each code once, across two instances sharing one Redis', async () => {
    nextStep();
    const secret = secrets.get('dave') ?? (await enrolled('dave')).secret;
    const code = totpAt(secret, clock.t);
    const first = await jsonLogin(bases[0] as string, {
      username: 'dave',
      password: PASSWORD,
      totp: code,
    });
    expect(first.status).toBe(200);
    const again = await jsonLogin(bases[1] as string, {
      username: 'dave',
      password: PASSWORD,
      totp: code,
    });
    expect(again.status).toBe(401);
    const body = await again.json();
    expect(body.error).toBe('INVALID_CODE');
    expect(body.message).toMatch(/just used/);
    expect(again.headers.getSetCookie()).toEqual([]);
    // The same race, both at once: exactly one wins.
    nextStep();
    const racing = totpAt(secret, clock.t);
    const both = await Promise.all(
      bases.map((base) => jsonLogin(base, { username: 'dave', password: PASSWORD, totp: racing })),
    );
    expect(both.map((r) => r.status).sort()).toEqual([200, 401]);
  });

  it('throttles guesses per account and address: after 5 wrong codes even the right one waits (429, Retry-After)', async () => {
    const { secret } = await enrolled('erin');
    for (let i = 0; i < 5; i++) {
      const res = await jsonLogin(bases[i % 2] as string, {
        username: 'erin',
        password: PASSWORD,
        totp: String(100000 + i),
      });
      expect(res.status).toBe(401);
    }
    const right = await jsonLogin(bases[0] as string, {
      username: 'erin',
      password: PASSWORD,
      totp: totpAt(secret, clock.t),
    });
    expect(right.status).toBe(429);
    expect((await right.json()).error).toBe('TOO_MANY_ATTEMPTS');
    expect(Number(right.headers.get('retry-after'))).toBeGreaterThan(0);
    // The block is the throttle's, shared by both instances, and ends with its time.
    clock.t += 31_000;
    const later = await jsonLogin(bases[1] as string, {
      username: 'erin',
      password: PASSWORD,
      totp: totpAt(secret, clock.t),
    });
    expect(later.status).toBe(200);
  });
});

describe('recovery codes', () => {
  it('sign in once each (JSON), say how many are left, and never twice', async () => {
    const { codes } = await enrolled('frank');
    const code = codes[0] as string;
    const first = await jsonLogin(bases[0] as string, {
      username: 'frank',
      password: PASSWORD,
      recovery_code: code.toUpperCase(),
    });
    expect(first.status).toBe(200);
    expect((await first.json()).recoveryCodesLeft).toBe(9);
    const again = await jsonLogin(bases[1] as string, {
      username: 'frank',
      password: PASSWORD,
      recovery_code: code,
    });
    expect(again.status).toBe(401);
    expect((await again.json()).error).toBe('INVALID_CODE');
  });
});

describe('the browser login with a second factor', () => {
  it('asks for the code on a second page (a pending login, no session), then signs in once and goes where it was going', async () => {
    nextStep();
    const jar = new CookieJar();
    const secret = secrets.get('alice') as string;
    const first = await browserLogin(jar, bases[0] as string, 'alice', PASSWORD, '/deep/link?x=1');
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/auth/login/second-factor');
    expect(jar.get('gatehouse')).toBeUndefined();
    const pending = jar.get('gatehouse-login') as string;
    expect(pending).toBeTruthy();
    const line = first.headers.getSetCookie().find((c) => c.startsWith('gatehouse-login='));
    expect(line).toMatch(/Path=\/auth\/login/);
    expect(line).toMatch(/HttpOnly/);
    expect(line).toMatch(/SameSite=Strict/);
    expect(line).toMatch(/Max-Age=300/);

    const wrong = await postForm(
      jar,
      bases[0] as string,
      '/auth/login/second-factor',
      '/auth/login/second-factor',
      { totp: '000000' },
    );
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).toContain('That code is not valid');
    expect(jar.get('gatehouse')).toBeUndefined();

    const right = await postForm(
      jar,
      bases[1] as string,
      '/auth/login/second-factor',
      '/auth/login/second-factor',
      {
        totp: totpAt(secret, clock.t),
      },
    );
    expect(right.status).toBe(303);
    expect(right.headers.get('location')).toBe('/deep/link?x=1');
    expect(jar.get('gatehouse')).toBeTruthy();
    expect(jar.get('gatehouse-login')).toBeUndefined();
    const body = await (await validate(bases[0] as string, jar)).json();
    expect(body.authentication.acr).toBe('aal2');

    // The pending login was used up: its cookie, replayed, goes back to the password.
    const replay = await fetch(`${bases[0]}/auth/login/second-factor`, {
      headers: { cookie: `gatehouse-login=${pending}`, accept: 'text/html' },
      redirect: 'manual',
    });
    expect(replay.status).toBe(303);
    expect(replay.headers.get('location')).toBe('/auth/login');
  });

  it('ends a pending login after five wrong codes', async () => {
    await enrolled('heidi');
    const jar = new CookieJar();
    await browserLogin(jar, bases[0] as string, 'heidi', PASSWORD);
    for (let i = 0; i < 5; i++)
      await postForm(
        jar,
        bases[0] as string,
        '/auth/login/second-factor',
        '/auth/login/second-factor',
        {
          totp: String(200000 + i),
        },
      );
    const after = await jar.fetch(`${bases[0]}/auth/login/second-factor`, {
      headers: { accept: 'text/html' },
    });
    expect(after.status).toBe(303);
    expect(after.headers.get('location')).toBe('/auth/login');
  });

  it('with a recovery code, says how many are left before going on', async () => {
    const { codes } = await enrolled('grace');
    const jar = new CookieJar();
    await browserLogin(jar, bases[0] as string, 'grace', PASSWORD, '/app');
    const res = await postForm(
      jar,
      bases[0] as string,
      '/auth/login/second-factor',
      '/auth/login/second-factor',
      {
        recovery_code: codes[3] as string,
      },
    );
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('<strong id="codes-left">9</strong>');
    expect(html).toContain('href="/app"');
    expect(jar.get('gatehouse')).toBeTruthy();
  });
});

describe('the audit log', () => {
  it('has every second-factor event of the tests above, with user and flow, and no code or secret', () => {
    const events = (name: string) => logged.filter((l) => l.event === name && l.audit === true);
    for (const name of [
      'login.mfa_required',
      'mfa.success',
      'mfa.failure',
      'mfa.throttled',
      'mfa.recovery_code_used',
      'mfa.enrolled',
    ])
      expect(events(name).length, name).toBeGreaterThan(0);
    expect(events('mfa.recovery_code_used')).toContainEqual(
      expect.objectContaining({ username: 'frank', context: 'login', left: 9 }),
    );
    expect(events('mfa.failure')).toContainEqual(
      expect.objectContaining({ username: 'dave', reason: 'replayed' }),
    );
    expect(events('login.success')).toContainEqual(
      expect.objectContaining({ username: 'alice', amr: ['pwd', 'otp', 'mfa'] }),
    );
    const text = loggedText.join('');
    for (const secret of secrets.values()) expect(text).not.toContain(secret);
    expect(text).not.toContain('otpauth://');
  });
});
