/**
 * The LDAP sign-in through the session-service (createApp on real Redis, a real users file and a
 * real OpenLDAP from test/helpers/slapd.ts): the password form and JSON, what validate then says,
 * wrong passwords counted and audited like local ones, the users file winning a shared name,
 * filter injection, the directory down (503, never 401, never counted), TLS (StartTLS, ldaps://,
 * a CA that does not match), and the re-check of live sessions on the service's own clock.
 * Over 300 lines: one slapd, one Redis and one clock serve every case.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExternalUser } from '../../session-service/src/domain/external-users.js';
import { createSealer } from '../../session-service/src/domain/sealing.js';
import { captureLogger } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';
import { TEST_ENCRYPTION_KEY } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  type SessionServiceApp,
  setCookieLine,
  sidOf,
} from '../helpers/session-service.js';
import {
  GROUPS_DN,
  PEOPLE_DN,
  SERVICE_DN,
  type Slapd,
  startSlapd,
  userDn,
} from '../helpers/slapd.js';
import { sessionKeyOf } from '../helpers/stored-sessions.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORDS = {
  alice: 'alice-Directory-pw-1',
  bob: 'bob-Directory-pw-2',
  carolDirectory: 'carol-Directory-pw-3',
  carolLocal: 'carol-Local-pw-4',
  lena: 'lena-Local-pw-5',
  tom: 'tom-Directory-pw-6',
  lou: 'lou-Directory-pw-7',
  rita: 'rita-Directory-pw-8',
  pat: 'pat-Directory-pw-9',
  patNew: 'pat-Directory-pw-NEW',
  gina: 'gina-Directory-pw-10',
  dana: 'dana-Directory-pw-11',
  max: 'max-Directory-pw-12',
  maxNew: 'max-Directory-pw-NEW',
  vic: 'vic-Directory-pw-14',
  wes: 'wes-Directory-pw-15',
  wrong: 'Wrong-guess-pw-13',
} as const;

let redis: RedisServer;
let slapd: Slapd;
let dir: string;
/** The services' clock: real time plus what a test moved it by. */
let offset = 0;
const now = () => Date.now() + offset;
const log = captureLogger('debug');
const services: SessionServiceApp[] = [];
/** memberOf groups, ldap:// with StartTLS and the test CA, recheckSeconds 10. */
let main: SessionServiceApp;

/** An identity sources file with this ldap: (JSON is YAML) and the bind password in the env. */
function sourcesEnv(ldap: Record<string, unknown>, prefix: string): Record<string, string> {
  const file = join(dir, `sources-${prefix}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      ldap: {
        url: slapd.ldapUrl,
        startTls: true,
        caFile: join(dir, 'ca.pem'),
        bindDn: SERVICE_DN,
        bindPasswordEnv: 'LDAP_BIND_PASSWORD',
        userBase: PEOPLE_DN,
        recheckSeconds: 10,
        timeoutMs: 2000,
        ...ldap,
      },
    }),
  );
  return {
    IDENTITY_SOURCES_FILE: file,
    LDAP_BIND_PASSWORD: slapd.servicePassword,
    REDIS_PREFIX: `${prefix}:`,
  };
}

async function service(ldap: Record<string, unknown>, prefix: string, usersFile: string) {
  const built = await buildSessionService({
    redisUrl: redis.url,
    usersFile,
    env: sourcesEnv(ldap, prefix),
    logger: log.logger,
    now,
  });
  services.push(built);
  return built;
}

let ipCounter = 0;
/** A client address of its own (X-Forwarded-For, believed from loopback): throttles apart. */
const freshIp = () => {
  ipCounter++;
  return `10.20.${ipCounter >> 8}.${ipCounter & 255}`;
};

function jsonLogin(app: SessionServiceApp, username: string, password: string, ip = freshIp()) {
  return request(app.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .set('accept', 'application/json')
    .set('x-forwarded-for', ip)
    .send(JSON.stringify({ username, password }));
}

/** A browser's form login: the page (CSRF cookie + token), then the form. */
async function formLogin(app: SessionServiceApp, username: string, password: string, rd = '/') {
  const ip = freshIp();
  const page = await request(app.app)
    .get('/auth/login')
    .set('accept', 'text/html')
    .set('x-forwarded-for', ip);
  const token = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
  expect(token).not.toBe('');
  return request(app.app)
    .post('/auth/login')
    .type('form')
    .set('accept', 'text/html')
    .set('sec-fetch-site', 'same-origin')
    .set('x-forwarded-for', ip)
    .set('cookie', cookiePairOf(page.headers['set-cookie'], 'gatehouse-csrf'))
    .send({ _csrf: token, rd, username, password });
}

const validate = (app: SessionServiceApp, cookie: string) =>
  request(app.app).get('/auth/validate').set('cookie', cookie);

/** Signs in with JSON (200 expected): the cookie pair, the session id and the user id. */
async function signIn(app: SessionServiceApp, username: string, password: string) {
  const res = await jsonLogin(app, username, password);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const setCookie = res.headers['set-cookie'] as unknown as string[];
  return {
    cookie: cookiePairOf(setCookie),
    sid: sidOf(setCookie),
    userId: (res.body as { user: { id: string } }).user.id,
  };
}

/** The audit lines of an event, as parsed records. */
const auditOf = (event: string) =>
  log.records().filter((r) => r.audit === true && r.event === event);

const externalRecords = createSealer([TEST_ENCRYPTION_KEY], 'external-user');
/** An identity-source user's record as stored in Redis (domain/external-users.ts), or null. */
async function externalRecord(prefix: string, userId: string): Promise<ExternalUser | null> {
  const key = `${prefix}xuser:${userId}`;
  const raw = await redis.client.get(key);
  return raw === null
    ? null
    : (JSON.parse(externalRecords.open(raw, key).plaintext) as ExternalUser);
}

/** Move the services' clock past the re-check window (recheckSeconds: 10). */
const pastTheWindow = () => {
  offset += 11_000;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-ldap-login-'));
  [redis, slapd] = await Promise.all([startRedis(), startSlapd()]);
  writeFileSync(join(dir, 'ca.pem'), slapd.caPem);
  writeFileSync(join(dir, 'other-ca.pem'), slapd.otherCaPem);
  await slapd.addUser({ uid: 'alice', password: PASSWORDS.alice, cn: 'Alice Liddell' });
  await slapd.addUser({ uid: 'bob', password: PASSWORDS.bob, mail: 'bob@corp.example' });
  await slapd.addUser({ uid: 'carol', password: PASSWORDS.carolDirectory });
  for (const uid of ['tom', 'lou', 'rita', 'pat', 'gina', 'dana', 'max', 'vic', 'wes'] as const)
    await slapd.addUser({ uid, password: PASSWORDS[uid] });
  await slapd.addGroup('admins', [userDn('alice'), userDn('gina')]);
  await slapd.addGroup('staff', [userDn('alice'), userDn('bob'), userDn('gina')]);
  const users = await writeTestUsers([
    { username: 'lena', password: PASSWORDS.lena, groups: ['local'] },
    { username: 'carol', password: PASSWORDS.carolLocal, groups: ['local'] },
  ]);
  main = await service({}, 'main', users.path);
});

afterAll(async () => {
  await Promise.all(services.map((s) => s.close()));
  await slapd?.close();
  await redis?.stop();
  // No password, typed or the service account's, ever reached a log line.
  const all = log.text();
  expect(all.length).toBeGreaterThan(0);
  for (const secret of [...Object.values(PASSWORDS), slapd?.servicePassword ?? 'unset'])
    expect(all, 'a password in the log').not.toContain(secret);
});

describe('signing in as a directory user', () => {
  it('JSON: a session whose validate shows the directory username, email and memberOf groups', async () => {
    const res = await jsonLogin(main, 'alice', PASSWORDS.alice);
    expect(res.status).toBe(200);
    expect(res.body.user).toEqual({
      id: expect.stringMatching(/^ldap:/),
      username: 'alice',
      groups: ['admins', 'staff'],
      email: 'alice@example.com',
    });
    const cookie = cookiePairOf(res.headers['set-cookie']);
    const checked = await validate(main, cookie);
    expect(checked.status).toBe(200);
    expect(checked.body.user).toEqual(res.body.user);
    expect(checked.headers['x-auth-request-user']).toBe('alice');
    expect(checked.headers['x-auth-request-groups']).toBe('admins,staff');
    expect(checked.headers['x-auth-request-email']).toBe('alice@example.com');
    expect(auditOf('login.success').some((r) => r.username === 'alice')).toBe(true);
  });

  it('the form: 303 to rd with a session cookie, the same identity', async () => {
    const res = await formLogin(main, 'bob', PASSWORDS.bob, '/reports');
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/reports');
    const cookie = cookiePairOf(res.headers['set-cookie']);
    expect(cookie).not.toBe('');
    const checked = await validate(main, cookie);
    expect(checked.status).toBe(200);
    expect(checked.body.user).toMatchObject({
      username: 'bob',
      groups: ['staff'],
      email: 'bob@corp.example',
    });
  });

  it('groups by search (a second configuration) reach validate too', async () => {
    const users = await writeTestUsers([]);
    const search = await service(
      { groups: { from: 'search', base: GROUPS_DN, filter: '(member={dn})' } },
      'search',
      users.path,
    );
    const { cookie } = await signIn(search, 'gina', PASSWORDS.gina);
    const checked = await validate(search, cookie);
    expect(checked.status).toBe(200);
    expect([...checked.body.user.groups].sort()).toEqual(['admins', 'staff']);
  });

  it('a wrong password is 401 INVALID_CREDENTIALS, the same body as a local wrong password, audited alike', async () => {
    const directory = await jsonLogin(main, 'alice', PASSWORDS.wrong);
    const local = await jsonLogin(main, 'lena', PASSWORDS.wrong);
    const unknown = await jsonLogin(main, 'nobody-here', PASSWORDS.wrong);
    for (const res of [directory, local, unknown]) {
      expect(res.status).toBe(401);
      expect(res.body).toEqual({
        error: 'INVALID_CREDENTIALS',
        message: 'Invalid username or password.',
      });
      expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
    }
    for (const username of ['alice', 'lena', 'nobody-here'])
      expect(
        auditOf('login.failure').some((r) => r.username === username && r.reason === 'credentials'),
        username,
      ).toBe(true);
    // The form: the login page again, with the generic message.
    const form = await formLogin(main, 'alice', PASSWORDS.wrong);
    expect(form.status).toBe(401);
    expect(form.text).toContain('Invalid username or password.');
    expect(setCookieLine(form.headers['set-cookie'])).toBeUndefined();
  });

  it('a users-file entry wins a shared name: its password signs in, the directory password does not', async () => {
    const local = await jsonLogin(main, 'carol', PASSWORDS.carolLocal);
    expect(local.status).toBe(200);
    expect(local.body.user).toMatchObject({ username: 'carol', groups: ['local'] });
    expect(local.body.user.id).not.toMatch(/^ldap:/);
    const viaDirectory = await jsonLogin(main, 'carol', PASSWORDS.carolDirectory);
    expect(viaDirectory.status).toBe(401);
    expect(viaDirectory.body.error).toBe('INVALID_CREDENTIALS');
  });

  it('a locked account (ppolicy) is 401', async () => {
    await signIn(main, 'lou', PASSWORDS.lou);
    await slapd.lockUser('lou');
    const res = await jsonLogin(main, 'lou', PASSWORDS.lou);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('INVALID_CREDENTIALS');
  });

  it('filter injection through the login: 401 each, never a session as anyone', async () => {
    const spellings = [
      '*',
      'alice*',
      '*alice',
      'a*e',
      '*)(uid=*',
      '*)(|(uid=*',
      'alice)(|(uid=*',
      'alice)(&)',
      '(uid=alice)',
      'alice\u0000',
      '\u0000',
      '\\',
      'alice\\',
      'alice\\2a',
      '\\2a',
      ' alice',
      'ａｌｉｃｅ',
    ];
    for (const username of spellings)
      for (const password of [PASSWORDS.alice, PASSWORDS.wrong]) {
        const res = await jsonLogin(main, username, password);
        expect(res.status, JSON.stringify(username)).toBe(401);
        expect(res.body.error).toBe('INVALID_CREDENTIALS');
        expect(setCookieLine(res.headers['set-cookie']), JSON.stringify(username)).toBeUndefined();
      }
  });
});

describe('the login throttle counts directory failures exactly like local ones', () => {
  it('five wrong passwords block the pair: local and directory alike, audited as credentials', async () => {
    for (const [username, password] of [
      ['lena', PASSWORDS.lena],
      ['tom', PASSWORDS.tom],
    ] as const) {
      const ip = freshIp();
      for (let i = 0; i < 5; i++) {
        const res = await jsonLogin(main, username, PASSWORDS.wrong, ip);
        expect(res.status, `${username} failure ${i + 1}`).toBe(401);
      }
      const blocked = await jsonLogin(main, username, password, ip);
      expect(blocked.status, username).toBe(429);
      expect(blocked.body.error).toBe('TOO_MANY_ATTEMPTS');
      expect(Number(blocked.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      const failures = auditOf('login.failure').filter(
        (r) => r.username === username && r.ip === ip,
      );
      expect(failures.map((r) => r.reason)).toEqual(Array(5).fill('credentials'));
      expect(auditOf('login.throttled').some((r) => r.username === username && r.ip === ip)).toBe(
        true,
      );
    }
  });
});

describe('TLS', () => {
  it('ldaps:// with the test CA signs in', async () => {
    const users = await writeTestUsers([]);
    const ldaps = await service(
      { url: slapd.ldapsUrl, startTls: false, caFile: join(dir, 'ca.pem') },
      'ldaps',
      users.path,
    );
    const { cookie } = await signIn(ldaps, 'bob', PASSWORDS.bob);
    expect((await validate(ldaps, cookie)).status).toBe(200);
  });

  it('ldaps:// with a CA the server does not chain to: 503 DIRECTORY_UNAVAILABLE, never 401', async () => {
    const users = await writeTestUsers([]);
    const wrongCa = await service(
      { url: slapd.ldapsUrl, startTls: false, caFile: join(dir, 'other-ca.pem') },
      'wrongca',
      users.path,
    );
    for (const password of [PASSWORDS.bob, PASSWORDS.wrong]) {
      const res = await jsonLogin(wrongCa, 'bob', password);
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('DIRECTORY_UNAVAILABLE');
    }
  });

  it('StartTLS with the test CA signs in (the main service)', async () => {
    const { cookie } = await signIn(main, 'bob', PASSWORDS.bob);
    expect((await validate(main, cookie)).status).toBe(200);
    expect(main.config.identitySources.ldap).toMatchObject({ startTls: true });
  });
});

describe('re-checks of live sessions (recheckSeconds: 10, the service clock moved)', () => {
  const gone = async (app: SessionServiceApp, cookie: string, what: string) =>
    waitFor(async () => (await validate(app, cookie)).status === 401, 10_000, what);

  it('a user removed from the directory: after the window the session ends, record and sessions gone from Redis', async () => {
    const first = await signIn(main, 'rita', PASSWORDS.rita);
    const second = await signIn(main, 'rita', PASSWORDS.rita);
    await slapd.removeUser('rita');
    // Within the window the directory is not asked again.
    expect((await validate(main, first.cookie)).status).toBe(200);
    pastTheWindow();
    await gone(main, first.cookie, 'the removed user’s session to end');
    expect((await validate(main, second.cookie)).status).toBe(401);
    expect(await redis.client.exists(sessionKeyOf(first.sid, 'main:'))).toBe(0);
    expect(await redis.client.exists(sessionKeyOf(second.sid, 'main:'))).toBe(0);
    expect(await redis.client.exists(`main:xuser:${first.userId}`)).toBe(0);
    expect(await redis.client.zCard(`main:user:{${first.userId}}:sessions`)).toBe(0);
    expect(
      auditOf('sessions.ended_by_source').some(
        (r) => r.username === 'rita' && r.reason === 'ldap_account_gone',
      ),
    ).toBe(true);
  });

  it('a password changed in the directory ends the sessions', async () => {
    const session = await signIn(main, 'pat', PASSWORDS.pat);
    const signedInSecond = Math.floor(Date.now() / 1000);
    // pwdChangedTime has whole seconds: change it in a later second than the sign-in's.
    await waitFor(() => Math.floor(Date.now() / 1000) > signedInSecond, 3000, 'the next second');
    await slapd.setPassword('pat', PASSWORDS.patNew);
    pastTheWindow();
    await gone(main, session.cookie, 'the session to end after the password change');
    expect(await redis.client.exists(sessionKeyOf(session.sid, 'main:'))).toBe(0);
    expect(
      auditOf('sessions.ended_by_source').some(
        (r) => r.username === 'pat' && r.reason === 'ldap_password_changed',
      ),
    ).toBe(true);
    // The new password signs in, and that session lives on through later re-checks.
    const again = await signIn(main, 'pat', PASSWORDS.patNew);
    expect((await jsonLogin(main, 'pat', PASSWORDS.pat)).status).toBe(401);
    pastTheWindow();
    const due = now();
    expect((await validate(main, again.cookie)).status).toBe(200);
    await waitFor(
      async () => ((await externalRecord('main:', again.userId))?.checkedAt ?? 0) >= due,
      10_000,
      'the re-check of the new session',
    );
    expect((await validate(main, again.cookie)).status).toBe(200);
    expect(auditOf('sessions.ended_by_source').filter((r) => r.username === 'pat').length).toBe(1);
  });

  it('a password changed, then a sign-in with the new one: the old password’s sessions end at once', async () => {
    const old = await signIn(main, 'max', PASSWORDS.max);
    const signedInSecond = Math.floor(Date.now() / 1000);
    await waitFor(() => Math.floor(Date.now() / 1000) > signedInSecond, 3000, 'the next second');
    // Someone else holds a session made with the old password; the owner changes it and signs in.
    await slapd.setPassword('max', PASSWORDS.maxNew);
    const fresh = await signIn(main, 'max', PASSWORDS.maxNew);
    // The sign-in saw the change: the old session ends at its next validation, window or not.
    expect((await validate(main, old.cookie)).status).toBe(401);
    expect(await redis.client.exists(sessionKeyOf(old.sid, 'main:'))).toBe(0);
    expect((await validate(main, fresh.cookie)).status).toBe(200);
  });

  it('a group removed in the directory is gone from validate after the re-check', async () => {
    const { cookie } = await signIn(main, 'gina', PASSWORDS.gina);
    expect((await validate(main, cookie)).body.user.groups).toEqual(['admins', 'staff']);
    await slapd.removeFromGroup('admins', userDn('gina'));
    expect((await validate(main, cookie)).body.user.groups).toEqual(['admins', 'staff']);
    pastTheWindow();
    await waitFor(
      async () => {
        const res = await validate(main, cookie);
        return res.status === 200 && res.body.user.groups.join(',') === 'staff';
      },
      10_000,
      'validate to show admins gone',
    );
    expect((await validate(main, cookie)).headers['x-auth-request-groups']).toBe('staff');
  });

  it('an account an administrator locked (ppolicy, until unlocked): sessions end after the window, the name is kept, unlocked it signs in again', async () => {
    const session = await signIn(main, 'vic', PASSWORDS.vic);
    await slapd.lockUser('vic');
    expect((await validate(main, session.cookie)).status).toBe(200);
    pastTheWindow();
    await gone(main, session.cookie, 'the locked account’s session to end');
    expect(await redis.client.exists(sessionKeyOf(session.sid, 'main:'))).toBe(0);
    expect(
      auditOf('sessions.ended_by_source').some(
        (r) => r.username === 'vic' && r.reason === 'ldap_account_disabled',
      ),
    ).toBe(true);
    // The record keeps the name for vic; once unlocked, vic signs in again as the same user.
    expect(await redis.client.exists(`main:xuser:${session.userId}`)).toBe(1);
    expect((await jsonLogin(main, 'vic', PASSWORDS.vic)).status).toBe(401);
    await slapd.unlockUser('vic');
    const again = await signIn(main, 'vic', PASSWORDS.vic);
    expect(again.userId).toBe(session.userId);
    expect((await validate(main, again.cookie)).status).toBe(200);
  });

  it('a lockout after failed attempts (a dated pwdAccountLockedTime) leaves live sessions alone: anyone can cause one', async () => {
    const session = await signIn(main, 'wes', PASSWORDS.wes);
    await slapd.lockUser('wes', '20261130120000Z');
    pastTheWindow();
    const due = now();
    expect((await validate(main, session.cookie)).status).toBe(200);
    await waitFor(
      async () => ((await externalRecord('main:', session.userId))?.checkedAt ?? 0) >= due,
      10_000,
      'the re-check of the locked-out session',
    );
    expect((await validate(main, session.cookie)).status).toBe(200);
    expect(auditOf('sessions.ended_by_source').some((r) => r.username === 'wes')).toBe(false);
  });

  // Last: it stops the server.
  it('the directory down during a re-check keeps the session; 30 s later the re-check runs again', async () => {
    const { cookie, sid } = await signIn(main, 'dana', PASSWORDS.dana);
    await slapd.removeUser('dana');
    await slapd.stop();
    try {
      const warned = () =>
        log.records().filter((r) => r.msg === 'identity source re-check failed; sessions kept')
          .length;
      const before = warned();
      pastTheWindow();
      expect((await validate(main, cookie)).status).toBe(200);
      await waitFor(() => warned() > before, 10_000, 'the re-check to fail');
      expect((await validate(main, cookie)).status).toBe(200);
      expect(await redis.client.exists(sessionKeyOf(sid, 'main:'))).toBe(1);
      // New sign-ins fail closed meanwhile: 503, never "wrong password".
      const res = await jsonLogin(main, 'alice', PASSWORDS.alice);
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('DIRECTORY_UNAVAILABLE');
    } finally {
      await slapd.start();
    }
    // Back up, within 30 s of the failure: not asked again yet.
    expect((await validate(main, cookie)).status).toBe(200);
    offset += 30_000;
    await gone(main, cookie, 'the re-check after 30 s to end the session');
  });
});

// Last: these stop the server.
describe('the directory down', () => {
  it('503 DIRECTORY_UNAVAILABLE for JSON and a page for the form, never 401, and never counted by the throttle', async () => {
    const ip = freshIp();
    // Four failures: one more would block the pair.
    for (let i = 0; i < 4; i++)
      expect((await jsonLogin(main, 'bob', PASSWORDS.wrong, ip)).status).toBe(401);
    const failuresBefore = auditOf('login.failure').length;
    await slapd.stop();
    try {
      for (const password of [PASSWORDS.bob, PASSWORDS.wrong, PASSWORDS.wrong]) {
        const res = await jsonLogin(main, 'bob', password, ip);
        expect(res.status).toBe(503);
        expect(res.body).toEqual({
          error: 'DIRECTORY_UNAVAILABLE',
          message: 'The user directory is not reachable right now. Try again shortly.',
        });
        expect(setCookieLine(res.headers['set-cookie'])).toBeUndefined();
      }
      const form = await formLogin(main, 'bob', PASSWORDS.bob);
      expect(form.status).toBe(503);
      expect(form.headers['content-type']).toMatch(/^text\/html/);
      expect(form.text).toContain('The user directory is not reachable right now.');
      expect(form.text).toContain('DIRECTORY_UNAVAILABLE');
      expect(form.text).not.toContain('Invalid username or password');
      // A local user still signs in.
      expect((await jsonLogin(main, 'lena', PASSWORDS.lena)).status).toBe(200);
    } finally {
      await slapd.start();
    }
    expect(auditOf('login.failure').length).toBe(failuresBefore);
    // Not counted: the fifth attempt of the pair is still allowed, and right.
    const res = await jsonLogin(main, 'bob', PASSWORDS.bob, ip);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });
});
