/**
 * The audit log of the real session-service process (LOG_LEVEL=info): login, logout and session
 * events carry the user, the address and the request id, and no password, token or session id.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/ports.js';
import { SERVICES, type ServiceProcess, startService } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { sidOf, TEST_SECRET } from '../helpers/session-service.js';
import { writeTestUsers } from '../helpers/users.js';

const ADMIN_TOKEN = randomBytes(20).toString('hex'); // 40 characters

let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
});

describe('audit events of the real session-service process', () => {
  let proc: ServiceProcess;
  const SECRET_PASSWORD = 'audit-Password-Secret-42';
  const WRONG_PASSWORD = 'wrong-Password-Guess-17';

  beforeAll(async () => {
    const users = await writeTestUsers([{ username: 'alice', password: SECRET_PASSWORD }]);
    proc = await startService({
      name: 'session-service',
      ...SERVICES.sessionService,
      env: {
        REDIS_URL: redis.url,
        USERS_FILE: users.path,
        SESSION_SECRET: TEST_SECRET,
        ADMIN_TOKEN,
        LOG_LEVEL: 'info',
        REDIS_PREFIX: 'audit:',
      },
    });
    await waitFor(
      async () => (await fetch(`${proc.url}/readyz`)).status === 200,
      10_000,
      'the session-service to reach Redis',
    );
  });

  afterAll(async () => {
    await proc?.stop();
  });

  function call(
    path: string,
    init: { method?: string; cookie?: string; body?: unknown; ip: string; requestId: string },
  ) {
    const headers: Record<string, string> = {
      'x-forwarded-for': init.ip,
      'x-request-id': init.requestId,
      'content-type': 'application/json',
    };
    if (init.cookie) headers.cookie = init.cookie;
    return fetch(`${proc.url}${path}`, {
      method: init.method ?? 'GET',
      headers,
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
  }

  const cookieOf = (res: Response) =>
    res.headers
      .getSetCookie()
      .find((c) => c.startsWith('gatehouse='))
      ?.split(';')[0] ?? '';

  it('logs login, logout and session events with user, address and request id, and no secrets', async () => {
    const login = (ip: string, requestId: string, password = SECRET_PASSWORD, username = 'alice') =>
      call('/auth/login', { method: 'POST', body: { username, password }, ip, requestId });

    const a = await login('203.0.113.10', 'audit-login-ok');
    expect(a.status).toBe(200);
    const cookieA = cookieOf(a);
    expect((await login('203.0.113.11', 'audit-login-fail', WRONG_PASSWORD)).status).toBe(401);
    for (let i = 0; i < 5; i++) {
      expect(
        (await login('203.0.113.12', `audit-guess-${i}`, WRONG_PASSWORD, 'mallory')).status,
      ).toBe(401);
    }
    const throttled = await login('203.0.113.12', 'audit-throttled', WRONG_PASSWORD, 'mallory');
    expect(throttled.status).toBe(429);

    const cookieB = cookieOf(await login('203.0.113.13', 'audit-login-b'));
    const cookieC = cookieOf(await login('203.0.113.14', 'audit-login-c'));
    const list = await call('/auth/sessions', {
      cookie: cookieA,
      ip: '203.0.113.10',
      requestId: 'l',
    });
    const sessions = ((await list.json()) as { sessions: { id: string; ip: string }[] }).sessions;
    const bHandle = sessions.find((s) => s.ip === '203.0.113.13')?.id ?? '';
    const revoke = await call(`/auth/sessions/${bHandle}`, {
      method: 'DELETE',
      cookie: cookieA,
      ip: '203.0.113.10',
      requestId: 'audit-revoke',
    });
    expect(revoke.status).toBe(204);
    const all = await call('/auth/logout-all', {
      method: 'POST',
      cookie: cookieA,
      body: {},
      ip: '203.0.113.10',
      requestId: 'audit-logout-all',
    });
    expect(await all.json()).toEqual({ revoked: 1 });
    const adminList = await fetch(`${proc.url}/admin/users/alice/sessions`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(adminList.status).toBe(200);
    const out = await call('/auth/logout', {
      method: 'POST',
      cookie: cookieA,
      body: {},
      ip: '203.0.113.10',
      requestId: 'audit-logout',
    });
    expect(out.status).toBe(204);

    const lines = () =>
      proc
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const expected = [
      ['login.success', 'audit-login-ok', 'alice', '203.0.113.10'],
      ['login.failure', 'audit-login-fail', 'alice', '203.0.113.11'],
      ['login.throttled', 'audit-throttled', 'mallory', '203.0.113.12'],
      ['session.revoke', 'audit-revoke', 'alice', '203.0.113.10'],
      ['session.logout_all', 'audit-logout-all', 'alice', '203.0.113.10'],
      ['logout', 'audit-logout', 'alice', '203.0.113.10'],
    ] as const;
    await waitFor(
      () =>
        expected.every(([event, requestId]) =>
          lines().some((l) => l.event === event && l.requestId === requestId),
        ),
      5000,
      'the audit events in the log',
    );
    for (const [event, requestId, username, ip] of expected) {
      const line = lines().find((l) => l.event === event && l.requestId === requestId);
      expect(line, event).toMatchObject({ event, requestId, username, ip });
    }

    const text = proc.output();
    const secrets = [SECRET_PASSWORD, WRONG_PASSWORD, ADMIN_TOKEN];
    for (const cookie of [cookieA, cookieB, cookieC]) {
      const value = cookie.slice('gatehouse='.length);
      const sid = sidOf([cookie]);
      expect(sid).not.toBe('');
      secrets.push(value, decodeURIComponent(value), sid);
    }
    for (const secret of secrets) expect(text).not.toContain(secret);
  });
});
