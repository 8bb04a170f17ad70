/**
 * Over 300 lines on purpose: the throttle, length and timing cases share one session-service and Redis.
 */
import { performance } from 'node:perf_hooks';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  countingVerifier,
  type SessionServiceApp,
  setCookieLine,
} from '../helpers/session-service.js';
import { writeTestUsers } from '../helpers/users.js';

type Service = SessionServiceApp;

const PASSWORD = 'correct horse battery';
const EMOJI_PASSWORD = '😀'.repeat(1024); // 1024 code points, 2048 UTF-16 units
const PADDED_PASSWORD = '  padded password  ';

let redis: RedisServer;
/** Default throttle policy, TRUST_PROXY=loopback (the default): X-Forwarded-For is believed. */
let service: Service;
/** `service`'s password verifier: real, and counting its checks. */
let verifier: Awaited<ReturnType<typeof countingVerifier>>;
/** TRUST_PROXY=false: the socket address is the client, whatever X-Forwarded-For says. */
let strict: Service;

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    { username: 'alice', password: PASSWORD },
    { username: 'dora', password: PASSWORD, disabled: true },
    { username: 'emoji', password: EMOJI_PASSWORD },
    { username: 'padded', password: PADDED_PASSWORD },
  ]);
  verifier = await countingVerifier();
  [service, strict] = await Promise.all([
    buildSessionService({ redisUrl: redis.url, usersFile: users.path, verifier }),
    buildSessionService({
      redisUrl: redis.url,
      usersFile: users.path,
      env: { TRUST_PROXY: 'false' },
    }),
  ]);
});

afterAll(async () => {
  await Promise.all([service?.close(), strict?.close()]);
  await redis?.stop();
});

/** A JSON login as the client at `ip` (sent as X-Forwarded-For by the loopback "proxy"). */
function jsonLogin(app: Service, ip: string, body: unknown) {
  return request(app.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .set('x-forwarded-for', ip)
    .send(JSON.stringify(body));
}

/** A browser's form login from `ip`: the page (CSRF cookie + token), then the form. */
async function formLogin(ip: string, fields: Record<string, string>) {
  const page = await request(service.app)
    .get('/auth/login')
    .set('accept', 'text/html')
    .set('x-forwarded-for', ip);
  const token = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
  return request(service.app)
    .post('/auth/login')
    .type('form')
    .set('accept', 'text/html')
    .set('sec-fetch-site', 'same-origin')
    .set('x-forwarded-for', ip)
    .set('cookie', cookiePairOf(page.headers['set-cookie'], 'gatehouse-csrf'))
    .send({ _csrf: token, rd: '/', ...fields });
}

async function failFiveTimes(app: Service, ip: string, username: string) {
  for (let i = 0; i < 5; i++) {
    const res = await jsonLogin(app, ip, { username, password: `wrong password ${i}` });
    expect(res.status).toBe(401);
  }
}

function expectThrottled(res: request.Response) {
  expect(res.status).toBe(429);
  expect(res.body).toEqual({ error: 'TOO_MANY_ATTEMPTS', message: expect.any(String) });
  const retryAfter = Number(res.headers['retry-after']);
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
  expect(res.headers['cache-control']).toBe('no-store');
  return retryAfter;
}

const withoutNumbers = (value: unknown) => JSON.stringify(value).replace(/\d+/g, 'N');

describe('the login throttle (5 failures per account and address)', () => {
  it('refuses the 6th attempt with 429 and Retry-After, even with the right password, before any password check', async () => {
    await failFiveTimes(service, '203.0.113.1', 'alice');
    const checks = verifier.checks;
    const res = await jsonLogin(service, '203.0.113.1', { username: 'alice', password: PASSWORD });
    expectThrottled(res);
    // A throttled attempt costs no argon2id: a guesser cannot spend the hasher's time.
    expect(verifier.checks, 'password checks for the throttled attempt').toBe(checks);
  });

  it('answers an unknown user exactly like a known one', async () => {
    await failFiveTimes(service, '203.0.113.2', 'alice');
    const known = await jsonLogin(service, '203.0.113.2', { username: 'alice', password: 'x1' });
    await failFiveTimes(service, '203.0.113.3', 'nobody');
    const unknown = await jsonLogin(service, '203.0.113.3', { username: 'nobody', password: 'x1' });
    expectThrottled(known);
    expectThrottled(unknown);
    expect(withoutNumbers(unknown.body)).toBe(withoutNumbers(known.body));
    expect(Object.keys(unknown.headers).sort()).toEqual(Object.keys(known.headers).sort());
  });

  it('does not block the same account from a different client address', async () => {
    await failFiveTimes(service, '203.0.113.4', 'alice');
    expectThrottled(
      await jsonLogin(service, '203.0.113.4', { username: 'alice', password: PASSWORD }),
    );
    const elsewhere = await jsonLogin(service, '203.0.113.5', {
      username: 'alice',
      password: PASSWORD,
    });
    expect(elsewhere.status).toBe(200);
  });

  it('with TRUST_PROXY=false a client-set X-Forwarded-For does not change the address', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await jsonLogin(strict, `192.0.2.${i + 1}`, {
        username: 'alice',
        password: 'wrong password',
      });
      expect(res.status).toBe(401);
    }
    const res = await jsonLogin(strict, '192.0.2.99', { username: 'alice', password: PASSWORD });
    expectThrottled(res);
  });

  it('counts malformed and over-long attempts as failures', async () => {
    const ip = '203.0.113.6';
    for (const body of [
      { username: 'alice', password: 123 },
      { username: 'alice' },
      { username: 'alice', password: '' },
      { username: 'alice', password: ['correct horse battery'] },
      { username: 'alice', password: 'x'.repeat(1025) },
    ]) {
      const res = await jsonLogin(service, ip, body);
      expect(res.status, JSON.stringify(body).slice(0, 60)).toBe(400);
    }
    expectThrottled(await jsonLogin(service, ip, { username: 'alice', password: PASSWORD }));
  });

  it('refuses the 21st attempt from one address within a minute, whatever the accounts', async () => {
    const ip = '203.0.113.7';
    for (let i = 0; i < 20; i++) {
      const res = await jsonLogin(service, ip, { username: `user${i}`, password: 'wrong pw' });
      expect(res.status, `attempt ${i + 1}`).toBe(401);
    }
    const res = await jsonLogin(service, ip, { username: 'alice', password: PASSWORD });
    expect(expectThrottled(res)).toBeLessThanOrEqual(60);
  });

  it('a throttled form login renders the login page with the message', async () => {
    const ip = '203.0.113.8';
    for (let i = 0; i < 5; i++) {
      const res = await formLogin(ip, { username: 'alice', password: 'wrong password' });
      expect(res.status).toBe(401);
    }
    const res = await formLogin(ip, { username: 'alice', password: PASSWORD });
    expect(res.status).toBe(429);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(res.text).toMatch(
      /role="alert"[^>]*>Too many sign-in attempts\. Try again in \d+ seconds\./,
    );
    expect(res.text).toContain('<form method="post" action="/auth/login"');
    expect(res.text).toContain('name="_csrf"');
    expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
  });
});

describe('equal answers', () => {
  it('unknown user, wrong password and disabled user get the same status and body', async () => {
    const answers = [
      await jsonLogin(service, '198.51.100.1', { username: 'nobody', password: PASSWORD }),
      await jsonLogin(service, '198.51.100.2', { username: 'alice', password: 'wrong password' }),
      await jsonLogin(service, '198.51.100.3', { username: 'dora', password: PASSWORD }),
    ];
    for (const res of answers) {
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: 'INVALID_CREDENTIALS', message: expect.any(String) });
      expect(res.body).toEqual(answers[0]?.body);
      expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
    }
  });

  it('the form shows the same page for all three, apart from the echoed username', async () => {
    const normalise = (html: string, username: string) =>
      html
        .replace(/name="_csrf" value="[^"]+"/, 'name="_csrf" value="T"')
        // The passkey button's CSRF token (a fresh one per page, as the form's).
        .replace(/data-csrf="[^"]+"/, 'data-csrf="T"')
        .replace(`value="${username}"`, 'value="U"');
    const pages = [
      ['nobody', await formLogin('198.51.100.4', { username: 'nobody', password: PASSWORD })],
      ['alice', await formLogin('198.51.100.5', { username: 'alice', password: 'wrong pw' })],
      ['dora', await formLogin('198.51.100.6', { username: 'dora', password: PASSWORD })],
    ] as const;
    for (const [username, res] of pages) {
      expect(res.status).toBe(401);
      expect(normalise(res.text, username)).toBe(normalise(pages[0][1].text, pages[0][0]));
    }
  });

  it('takes the same time for an unknown user, a wrong password and a disabled user', async () => {
    const cases = {
      unknown: { username: 'nobody-at-all', password: PASSWORD },
      wrongPassword: { username: 'alice', password: 'wrong password' },
      disabled: { username: 'dora', password: PASSWORD },
    };
    const times: Record<keyof typeof cases, number[]> = {
      unknown: [],
      wrongPassword: [],
      disabled: [],
    };
    let n = 0;
    const attempt = async (body: unknown) => {
      n++;
      // Each attempt from its own address: the throttle never interferes.
      const ip = `10.9.${Math.floor(n / 200)}.${n % 200}`;
      const checks = verifier.checks;
      const started = performance.now();
      const res = await jsonLogin(service, ip, body);
      const elapsed = performance.now() - started;
      expect(res.status).toBe(401);
      // The cause of equal times: every case runs exactly one argon2id check (a dummy hash for
      // an unknown user, the stored one for a disabled user).
      expect(verifier.checks - checks, JSON.stringify(body)).toBe(1);
      return elapsed;
    };
    for (const body of Object.values(cases)) await attempt(body); // warm up
    const entries = Object.entries(cases) as [keyof typeof cases, unknown][];
    for (let round = 0; round < 9; round++) {
      // Rotate the order each round so drift on a shared machine hits every case alike.
      for (let i = 0; i < entries.length; i++) {
        const [name, body] = entries[(i + round) % entries.length] as [keyof typeof cases, unknown];
        times[name].push(await attempt(body));
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const medians = Object.values(times).map(median);
    const ratio = Math.max(...medians) / Math.min(...medians);
    // Skipping the hash for an unknown or disabled user makes this ratio 20-50; a loaded CI
    // machine adds noise, so allow 2.5 between the medians.
    expect(ratio, JSON.stringify(times)).toBeLessThanOrEqual(2.5);
  });
});

describe('passwords', () => {
  it('accepts a password of 1024 code points of emoji, by JSON and by form', async () => {
    const json = await jsonLogin(service, '198.51.100.10', {
      username: 'emoji',
      password: EMOJI_PASSWORD,
    });
    expect(json.status).toBe(200);
    const form = await formLogin('198.51.100.11', { username: 'emoji', password: EMOJI_PASSWORD });
    expect(form.status).toBe(303);
    expect(setCookieLine(form.headers['set-cookie'])).toBeDefined();
  });

  it('refuses 1025 code points with 400 at once, without truncating to the real password', async () => {
    for (const [i, password] of [
      `${EMOJI_PASSWORD}😀`,
      `${EMOJI_PASSWORD}x`,
      `${'😀'.repeat(1023)}ab`,
    ].entries()) {
      const before = verifier.checks;
      const res = await jsonLogin(service, `198.51.100.${20 + i}`, { username: 'emoji', password });
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('BAD_REQUEST');
      expect(verifier.checks, 'password checks for a refused password').toBe(before);
      expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
    }
  });

  it('does not trim spaces around a password', async () => {
    const trimmed = await jsonLogin(service, '198.51.100.30', {
      username: 'padded',
      password: PADDED_PASSWORD.trim(),
    });
    expect(trimmed.status).toBe(401);
    const exact = await jsonLogin(service, '198.51.100.31', {
      username: 'padded',
      password: PADDED_PASSWORD,
    });
    expect(exact.status).toBe(200);
  });
});
