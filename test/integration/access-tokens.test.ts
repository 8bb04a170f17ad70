/**
 * Personal access tokens and service accounts through the session-service on real Redis (issue
 * 17): made in the browser and with JSON (shown once, stored as a hash only), listed without the
 * secret, used on GET /auth/validate, scoped, expiring on the service clock, revoked (one, all,
 * published on the revocation channel), refused where only a session may act, TOKEN_MAX_DAYS,
 * the recent sign-in rule, service accounts through the admin API, the failed-token throttle's
 * bounded Redis footprint, and no token in any log line.
 *
 * Over 300 lines: one fixture (a service on a movable clock with captured logs, its users, the
 * login and token helpers) feeds every describe.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newToken, TOKEN_PATTERN } from '../../session-service/src/domain/access-tokens.js';
import { TOKEN_FAILURE_WINDOW_MS } from '../../session-service/src/domain/validate-token.js';
import { captureLogger } from '../helpers/logger.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { dumpRedis } from '../helpers/redis-dump.js';
import {
  buildSessionService,
  cookiePairOf,
  NO_THROTTLE,
  type SessionServiceApp,
} from '../helpers/session-service.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';
const ADMIN_TOKEN = randomBytes(20).toString('hex');
const DAY_MS = 86_400_000;

const clock = { t: Date.now() };
const now = () => clock.t;
const logs = captureLogger('info');
/** Every token the tests were given: none may reach a log line. */
const issued: string[] = [];

let redis: RedisServer;
let service: SessionServiceApp;

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    { username: 'alice', password: PASSWORD, groups: ['dev', 'ops'] },
    { username: 'bob', password: PASSWORD, groups: ['dev'] },
  ]);
  service = await buildSessionService({
    redisUrl: redis.url,
    usersFile: users.path,
    env: { ADMIN_TOKEN, TOKEN_MAX_DAYS: '30', TRUST_PROXY: 'loopback' },
    throttleLimits: NO_THROTTLE,
    logger: logs.logger,
    now,
  });
});

afterAll(async () => {
  await service?.close();
  await redis?.stop();
});

let addresses = 0;
/** An address of its own per caller: failed tokens are counted per address. */
const nextAddress = () => {
  addresses++;
  return `203.0.113.${addresses % 250}`;
};

async function login(username: string): Promise<string> {
  const res = await request(service.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .set('x-forwarded-for', nextAddress())
    .send(JSON.stringify({ username, password: PASSWORD }));
  expect(res.status).toBe(200);
  return cookiePairOf(res.headers['set-cookie']);
}

const json = (req: request.Test) =>
  req.set('accept', 'application/json').set('content-type', 'application/json');

async function createToken(cookie: string, body: Record<string, unknown>) {
  const res = await json(request(service.app).post('/auth/tokens').set('cookie', cookie)).send(
    JSON.stringify(body),
  );
  if (res.status === 201) issued.push(res.body.token);
  return res;
}

const validate = (token: string, from = nextAddress()) =>
  request(service.app)
    .get('/auth/validate')
    .set('authorization', `Bearer ${token}`)
    .set('x-forwarded-for', from);

/** The tokens page like a browser loads it: its CSRF cookie and form token. */
async function tokensPage(cookie: string) {
  const res = await request(service.app)
    .get('/auth/tokens')
    .set('accept', 'text/html')
    .set('cookie', cookie);
  expect(res.status).toBe(200);
  const csrfCookie = cookiePairOf(res.headers['set-cookie'], 'gatehouse-csrf');
  return {
    html: res.text,
    csrf: /name="_csrf" value="([^"]+)"/.exec(res.text)?.[1] ?? '',
    cookie: csrfCookie ? `${cookie}; ${csrfCookie}` : cookie,
  };
}

function postForm(path: string, cookie: string, fields: Record<string, string>) {
  return request(service.app)
    .post(path)
    .set('accept', 'text/html')
    .set('content-type', 'application/x-www-form-urlencoded')
    .set('sec-fetch-site', 'same-origin')
    .set('cookie', cookie)
    .send(new URLSearchParams(fields).toString());
}

describe('a personal access token', () => {
  it('is made with JSON: shown once, with its prefix; Redis holds its hash, never the token', async () => {
    const cookie = await login('alice');
    const res = await createToken(cookie, { name: 'ci', expiresInDays: 30 });
    expect(res.status).toBe(201);
    const { token, id } = res.body;
    expect(token).toMatch(TOKEN_PATTERN);
    expect(token.startsWith('gatehouse_pat_')).toBe(true);
    expect(res.body).toMatchObject({ name: 'ci', kind: 'personal', lastUsedAt: null, scope: {} });
    expect(Date.parse(res.body.expiresAt) - now()).toBe(30 * DAY_MS);
    const dump = await dumpRedis([redis.url], '');
    expect(dump.some((k) => k.key.includes(id))).toBe(true);
    const everything = JSON.stringify(dump);
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(token.slice('gatehouse_pat_'.length, -7));

    // The list shows it without the secret.
    const list = await json(request(service.app).get('/auth/tokens').set('cookie', cookie));
    expect(list.status).toBe(200);
    expect(list.body.tokens).toHaveLength(1);
    expect(list.body.tokens[0]).toMatchObject({ id, name: 'ci', kind: 'personal' });
    expect(JSON.stringify(list.body)).not.toContain(token);
  });

  it('is made with the form on "Your tokens": the page shows it once, the list never', async () => {
    const cookie = await login('bob');
    const page = await tokensPage(cookie);
    expect(page.html).toContain('Your tokens');
    const res = await postForm('/auth/tokens', page.cookie, {
      _csrf: page.csrf,
      name: 'laptop script',
      expiresInDays: '7',
      routes: 'api, reports',
      readOnly: '1',
    });
    expect(res.status).toBe(201);
    const token = /value="(gatehouse_pat_[^"]+)"/.exec(res.text)?.[1] ?? '';
    expect(token).toMatch(TOKEN_PATTERN);
    issued.push(token);
    expect(res.text).toContain('shown only this once');
    const again = await tokensPage(cookie);
    expect(again.html).toContain('laptop script');
    expect(again.html).toContain('routes api, reports · read-only');
    expect(again.html).not.toContain(token);
    const ok = await validate(token);
    expect(ok.status).toBe(200);
    expect(ok.body.token.scope).toEqual({ routes: ['api', 'reports'], readOnly: true });

    // Without the CSRF token the form is refused.
    const forged = await postForm('/auth/tokens', page.cookie, { name: 'x', expiresInDays: '1' });
    expect(forged.status).toBe(403);
  });

  it('is accepted by GET /auth/validate as Bearer: the owner, the token block, last use noted', async () => {
    const cookie = await login('alice');
    const { token, id } = (await createToken(cookie, { name: 'use', expiresInDays: 1 })).body;
    const from = nextAddress();
    const res = await validate(token, from);
    expect(res.status).toBe(200);
    expect(res.body.user).toMatchObject({ username: 'alice', groups: ['dev', 'ops'] });
    expect(res.body.token).toMatchObject({ id, name: 'use', kind: 'personal' });
    expect(res.body.authentication).toBeUndefined();
    expect(res.headers['x-auth-request-user']).toBe('alice');
    expect(res.headers['set-cookie']).toBeUndefined();
    const list = await json(request(service.app).get('/auth/tokens').set('cookie', cookie));
    const listed = list.body.tokens.find((t: { id: string }) => t.id === id);
    expect(listed.lastUsedFrom).toBe(from);
    expect(Date.parse(listed.lastUsedAt)).toBe(now());
  });

  it('carries only the groups its scope names, which must be the owner’s', async () => {
    const cookie = await login('alice');
    const res = await createToken(cookie, {
      name: 'dev only',
      expiresInDays: 3,
      scope: { groups: ['dev'] },
    });
    expect(res.status).toBe(201);
    expect((await validate(res.body.token)).body.user.groups).toEqual(['dev']);
    const foreign = await createToken(cookie, {
      name: 'admin',
      expiresInDays: 3,
      scope: { groups: ['dev', 'admins'] },
    });
    expect(foreign.status).toBe(400);
    expect(foreign.body.error).toBe('BAD_REQUEST');
    expect(foreign.body.message).toContain('"admins"');
  });

  it('refuses a bad name, a missing expiry or one past TOKEN_MAX_DAYS, and bad routes', async () => {
    const cookie = await login('bob');
    for (const body of [
      { name: '', expiresInDays: 1 },
      { name: 'x'.repeat(65), expiresInDays: 1 },
      { name: 'bell\u0007', expiresInDays: 1 },
      { name: 'no expiry' },
      { name: 'zero', expiresInDays: 0 },
      { name: 'too long', expiresInDays: 31 },
      { name: 'half', expiresInDays: 1.5 },
      { name: 'routes', expiresInDays: 1, scope: { routes: ['a b'] } },
      { name: 'read', expiresInDays: 1, scope: { readOnly: 'yes' } },
    ]) {
      const res = await createToken(cookie, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect((await createToken(cookie, { name: 'longest', expiresInDays: 30 })).status).toBe(201);
  });

  it('ends at its expiry on the service clock', async () => {
    const cookie = await login('bob');
    const { token } = (await createToken(cookie, { name: 'short', expiresInDays: 1 })).body;
    expect((await validate(token)).status).toBe(200);
    const start = clock.t;
    clock.t = start + DAY_MS + 1;
    try {
      const res = await validate(token);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    } finally {
      clock.t = start;
    }
  });

  it('needs a recent sign-in to be made: JSON 401 REAUTHENTICATION_REQUIRED, a form the step-up page', async () => {
    const cookie = await login('alice');
    const start = clock.t;
    clock.t = start + 11 * 60_000;
    try {
      const res = await createToken(cookie, { name: 'late', expiresInDays: 1 });
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('REAUTHENTICATION_REQUIRED');
      const page = await tokensPage(cookie);
      const form = await postForm('/auth/tokens', page.cookie, {
        _csrf: page.csrf,
        name: 'late',
        expiresInDays: '1',
      });
      expect(form.status).toBe(303);
      expect(form.headers.location).toBe(
        '/auth/step-up?need=recent-authentication&rd=%2Fauth%2Ftokens',
      );
    } finally {
      clock.t = start;
    }
  });

  it('never stands in for the session cookie on /auth/tokens and /auth/sessions', async () => {
    const cookie = await login('alice');
    const { token } = (await createToken(cookie, { name: 'not a session', expiresInDays: 1 })).body;
    const bearer = `Bearer ${token}`;
    const attempts = [
      json(request(service.app).get('/auth/tokens')),
      json(request(service.app).post('/auth/tokens')).send('{"name":"x","expiresInDays":1}'),
      json(request(service.app).post('/auth/tokens/revoke-all')).send('{}'),
      json(request(service.app).get('/auth/sessions')),
      json(request(service.app).post('/auth/logout-all')).send('{}'),
    ];
    for (const attempt of attempts) {
      const res = await attempt.set('authorization', bearer);
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('UNAUTHENTICATED');
    }
    expect((await validate(token)).status).toBe(200);
  });

  it('malformed, one of ours is an invalid token on validate, never a fallback to the session cookie beside it', async () => {
    const cookie = await login('alice');
    const { token } = (await createToken(cookie, { name: 'spelled wrong', expiresInDays: 1 })).body;
    // Read as the gateway reads them (common/src/access-token.ts): refused, not the cookie's session.
    const spellings = [
      `Bearer ${token} extra`,
      `Bearer\t${token}`,
      `Bearer gatehouse_${'x'.repeat(200)}`,
      'Bearer gatehouse_',
    ];
    for (const authorization of spellings) {
      const res = await request(service.app)
        .get('/auth/validate')
        .set('cookie', cookie)
        .set('authorization', authorization)
        .set('x-forwarded-for', nextAddress());
      expect(res.status, JSON.stringify(authorization)).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
      expect(res.headers['x-auth-request-user']).toBeUndefined();
    }
    // The cookie alone, and the token alone, still work.
    const alone = await request(service.app).get('/auth/validate').set('cookie', cookie);
    expect(alone.status).toBe(200);
    expect((await validate(token)).status).toBe(200);
  });

  it('is revoked one by one (the other lives on, published on the revocation channel) or all at once', async () => {
    const cookie = await login('alice');
    const one = (await createToken(cookie, { name: 'one', expiresInDays: 1 })).body;
    const two = (await createToken(cookie, { name: 'two', expiresInDays: 1 })).body;
    const messages = await listenToRevocations();
    try {
      const res = await json(
        request(service.app).delete(`/auth/tokens/${one.id}`).set('cookie', cookie),
      );
      expect(res.status).toBe(204);
      expect((await validate(one.token)).status).toBe(401);
      expect((await validate(two.token)).status).toBe(200);
      await expect.poll(() => revokedIds(messages)).toContain(one.id);

      // Another user's token, an unknown id: 404 NOT_FOUND.
      const bobs = await login('bob');
      const theirs = await json(
        request(service.app).delete(`/auth/tokens/${two.id}`).set('cookie', bobs),
      );
      expect(theirs.status).toBe(404);
      expect(theirs.body.error).toBe('NOT_FOUND');
      expect((await validate(two.token)).status).toBe(200);

      // The form's revoke.
      const page = await tokensPage(cookie);
      const form = await postForm(`/auth/tokens/${two.id}/revoke`, page.cookie, {
        _csrf: page.csrf,
      });
      expect(form.status).toBe(303);
      expect(form.headers.location).toBe('/auth/tokens?revoked=1');
      expect((await validate(two.token)).status).toBe(401);

      // All at once.
      const three = (await createToken(cookie, { name: 'three', expiresInDays: 1 })).body;
      const all = await json(
        request(service.app).post('/auth/tokens/revoke-all').set('cookie', cookie),
      ).send('{}');
      expect(all.status).toBe(200);
      expect(all.body.revoked).toBeGreaterThanOrEqual(1);
      expect((await validate(three.token)).status).toBe(401);
      await expect.poll(() => revokedIds(messages)).toContain(three.id);
      const left = await json(request(service.app).get('/auth/tokens').set('cookie', cookie));
      expect(left.body.tokens).toEqual([]);
    } finally {
      await messages.close();
    }
  });
});

/** The revocation channel, heard by a plain client: every message received. */
async function listenToRevocations() {
  const subscriber = redis.client.duplicate();
  await subscriber.connect();
  const received: string[] = [];
  await subscriber.subscribe('gh:revocations', (message) => received.push(message));
  return {
    received,
    close: () => subscriber.close(),
  };
}

function revokedIds(messages: { received: string[] }): string[] {
  return messages.received.flatMap((m) => {
    const parsed = JSON.parse(m) as { type: string; sids?: string[] };
    return parsed.type === 'revoke' ? (parsed.sids ?? []) : [];
  });
}

const admin = (req: request.Test) => json(req).set('authorization', `Bearer ${ADMIN_TOKEN}`);

describe('a service account (admin API)', () => {
  it('is made with groups, gets a token, and validate shows its identity and groups', async () => {
    const made = await admin(request(service.app).post('/admin/service-accounts')).send(
      JSON.stringify({ name: 'ci-bot', groups: ['deploy', 'dev'], description: 'CI' }),
    );
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({
      id: 'svc:ci-bot',
      name: 'ci-bot',
      groups: ['deploy', 'dev'],
      disabled: false,
    });
    const listed = await admin(request(service.app).get('/admin/service-accounts'));
    expect(listed.body.serviceAccounts.map((a: { name: string }) => a.name)).toContain('ci-bot');
    const shown = await admin(request(service.app).get('/admin/service-accounts/ci-bot'));
    expect(shown.body.description).toBe('CI');

    const res = await admin(
      request(service.app).post('/admin/service-accounts/ci-bot/tokens'),
    ).send(JSON.stringify({ name: 'deploy job', expiresInDays: 7, scope: { groups: ['deploy'] } }));
    expect(res.status).toBe(201);
    issued.push(res.body.token);
    expect(res.body.token.startsWith('gatehouse_sat_')).toBe(true);
    const ok = await validate(res.body.token);
    expect(ok.status).toBe(200);
    expect(ok.body.user).toMatchObject({
      id: 'svc:ci-bot',
      username: 'ci-bot',
      groups: ['deploy'],
    });
    expect(ok.body.token.kind).toBe('service');

    const tokens = await admin(request(service.app).get('/admin/service-accounts/ci-bot/tokens'));
    expect(tokens.body.tokens.map((t: { id: string }) => t.id)).toEqual([res.body.id]);
    expect(JSON.stringify(tokens.body)).not.toContain(res.body.token);

    // A token's groups must be the account's; past TOKEN_MAX_DAYS is refused.
    for (const body of [
      { name: 'x', expiresInDays: 7, scope: { groups: ['ops'] } },
      { name: 'x', expiresInDays: 31 },
    ]) {
      const refused = await admin(
        request(service.app).post('/admin/service-accounts/ci-bot/tokens'),
      ).send(JSON.stringify(body));
      expect(refused.status).toBe(400);
    }

    // It has no password: the login form refuses it.
    const signIn = await json(request(service.app).post('/auth/login')).send(
      JSON.stringify({ username: 'ci-bot', password: 'anything' }),
    );
    expect(signIn.status).toBe(401);

    // One token revoked by the admin.
    const gone = await admin(
      request(service.app).delete(`/admin/service-accounts/ci-bot/tokens/${res.body.id}`),
    );
    expect(gone.status).toBe(204);
    expect((await validate(res.body.token)).status).toBe(401);
    const again = await admin(
      request(service.app).delete(`/admin/service-accounts/ci-bot/tokens/${res.body.id}`),
    );
    expect(again.status).toBe(404);
  });

  it('takes no name already held: a users-file user, another service account (409 USERNAME_TAKEN)', async () => {
    for (const name of ['alice', 'ALICE']) {
      const res = await admin(request(service.app).post('/admin/service-accounts')).send(
        JSON.stringify({ name, groups: [] }),
      );
      expect(res.status).toBe(409);
      expect(res.body.error).toBe('USERNAME_TAKEN');
    }
    const first = await admin(request(service.app).post('/admin/service-accounts')).send(
      JSON.stringify({ name: 'reporter', groups: [] }),
    );
    expect(first.status).toBe(201);
    const second = await admin(request(service.app).post('/admin/service-accounts')).send(
      JSON.stringify({ name: 'reporter', groups: ['x'] }),
    );
    expect(second.status).toBe(409);
    const bad = await admin(request(service.app).post('/admin/service-accounts')).send(
      JSON.stringify({ name: 'bad name!', groups: [] }),
    );
    expect(bad.status).toBe(400);
  });

  it('disabled or removed: its tokens end at once and the revocation is published', async () => {
    await admin(request(service.app).post('/admin/service-accounts')).send(
      JSON.stringify({ name: 'nightly', groups: ['ops'] }),
    );
    const mint = async () => {
      const res = await admin(
        request(service.app).post('/admin/service-accounts/nightly/tokens'),
      ).send(JSON.stringify({ name: 'job', expiresInDays: 1 }));
      expect(res.status).toBe(201);
      issued.push(res.body.token);
      return res.body as { token: string; id: string };
    };
    const messages = await listenToRevocations();
    try {
      const first = await mint();
      expect((await validate(first.token)).status).toBe(200);
      const off = await admin(request(service.app).patch('/admin/service-accounts/nightly')).send(
        JSON.stringify({ disabled: true }),
      );
      expect(off.status).toBe(200);
      expect(off.body.disabled).toBe(true);
      expect((await validate(first.token)).status).toBe(401);
      await expect.poll(() => revokedIds(messages)).toContain(first.id);
      const whileOff = await admin(
        request(service.app).post('/admin/service-accounts/nightly/tokens'),
      ).send(JSON.stringify({ name: 'job', expiresInDays: 1 }));
      expect(whileOff.status).toBe(400);

      const on = await admin(request(service.app).patch('/admin/service-accounts/nightly')).send(
        JSON.stringify({ disabled: false, groups: ['ops', 'reports'] }),
      );
      expect(on.body).toMatchObject({ disabled: false, groups: ['ops', 'reports'] });
      const second = await mint();
      expect((await validate(second.token)).body.user.groups).toEqual(['ops', 'reports']);
      const removed = await admin(request(service.app).delete('/admin/service-accounts/nightly'));
      expect(removed.status).toBe(204);
      expect((await validate(second.token)).status).toBe(401);
      await expect.poll(() => revokedIds(messages)).toContain(second.id);
      const missing = await admin(request(service.app).get('/admin/service-accounts/nightly'));
      expect(missing.status).toBe(404);
    } finally {
      await messages.close();
    }
  });

  it('the admin API wants ADMIN_TOKEN, never an access token', async () => {
    const cookie = await login('alice');
    const { token } = (await createToken(cookie, { name: 'not admin', expiresInDays: 1 })).body;
    const res = await json(request(service.app).get('/admin/service-accounts')).set(
      'authorization',
      `Bearer ${token}`,
    );
    expect(res.status).toBe(401);
  });
});

describe('HTTPS only', () => {
  it('with an https PUBLIC_URL, refuses a token sent over plain HTTP from another machine', async () => {
    const users = await writeTestUsers([]);
    const https = await buildSessionService({
      redisUrl: redis.url,
      usersFile: users.path,
      env: {
        ADMIN_TOKEN,
        PUBLIC_URL: 'https://gatehouse.example.com',
        TRUST_PROXY: 'loopback',
        REDIS_PREFIX: 'https:',
      },
      verifier: { verify: async () => false },
      logger: logs.logger,
    });
    try {
      await admin(request(https.app).post('/admin/service-accounts')).send(
        JSON.stringify({ name: 'svc', groups: [] }),
      );
      const made = await admin(request(https.app).post('/admin/service-accounts/svc/tokens')).send(
        JSON.stringify({ name: 'x', expiresInDays: 1 }),
      );
      expect(made.status).toBe(201);
      issued.push(made.body.token);
      const over = (proto: string, from: string) =>
        request(https.app)
          .get('/auth/validate')
          .set('authorization', `Bearer ${made.body.token}`)
          .set('x-forwarded-proto', proto)
          .set('x-forwarded-for', from);
      const plain = await over('http', '203.0.113.200');
      expect(plain.status).toBe(403);
      expect(plain.body.error).toBe('HTTPS_REQUIRED');
      expect((await over('https', '203.0.113.200')).status).toBe(200);
      // A proxy on this machine over plain HTTP is not refused.
      expect((await over('http', '127.0.0.1')).status).toBe(200);
    } finally {
      await https.close();
    }
  });
});

describe('failed tokens', () => {
  it('a flood of well-formed random tokens from one address: 429 after 20, one expiring key in Redis', async () => {
    for (const key of await failureKeys()) before.add(key);
    const from = '198.51.100.77';
    const statuses: number[] = [];
    for (let i = 0; i < 500; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, () => validate(newToken('personal'), from)),
      );
      statuses.push(...batch.map((r) => r.status));
    }
    expect(statuses.filter((s) => s === 401)).toHaveLength(20);
    expect(statuses.filter((s) => s === 429)).toHaveLength(480);
    expect(statuses.slice(-1)[0]).toBe(429);
    const keys = await failureKeys();
    const mine = keys.filter((k) => !before.has(k));
    expect(mine).toHaveLength(1);
    const ttl = await redis.client.pTTL(mine[0] as string);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(TOKEN_FAILURE_WINDOW_MS);
    for (const key of mine) before.add(key);
  });

  it('random tokens from 200 addresses: one key each, every one expiring within 15 minutes', async () => {
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => validate(newToken('service'), `192.0.2.${i}`)),
    );
    const mine = (await failureKeys()).filter((k) => !before.has(k));
    expect(mine).toHaveLength(200);
    for (const key of mine) {
      const ttl = await redis.client.pTTL(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(15 * 60_000);
    }
  });
});

const before = new Set<string>();
async function failureKeys(): Promise<string[]> {
  const out: string[] = [];
  for await (const keys of redis.client.scanIterator({ MATCH: 'gh:tokfail:*', COUNT: 1000 }))
    out.push(...keys);
  return out;
}

describe('logs', () => {
  it('never hold a token; the audit says token.created by id', async () => {
    expect(issued.length).toBeGreaterThan(5);
    const text = logs.text();
    for (const token of issued) expect(text).not.toContain(token);
    const created = logs.records().filter((r) => r.event === 'token.created');
    expect(created.length).toBeGreaterThan(5);
    for (const line of created) {
      expect(line.token).toMatch(/^[A-Za-z0-9_-]{20,}$/);
      expect(line.expiresAt).toBeTypeOf('string');
    }
    expect(logs.records().some((r) => r.event === 'token.revoked')).toBe(true);
    expect(logs.records().some((r) => r.event === 'token.revoked_all')).toBe(true);
  });
});
