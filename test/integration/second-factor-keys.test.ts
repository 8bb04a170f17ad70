/**
 * Renaming and removing one security key or passkey from /auth/security, on real Redis and the
 * real session-service: someone else's key answers 404 NOT_FOUND and stays, a form without its
 * CSRF token changes nothing, removing needs a recent sign-in and ends the other sessions, names
 * are 1 to 64 printable characters and escaped, and REQUIRE_SECOND_FACTOR refuses to leave a
 * user without any factor (a key or TOTP). The keys are written to Redis through the factor
 * repository (browser/webauthn.test.ts adds real ones with a virtual authenticator).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, type RedisClient } from '../../common/src/redis.js';
import type { WebauthnCredential } from '../../session-service/src/domain/factors.js';
import { createRedisFactorRepository } from '../../session-service/src/domain/factors-redis.js';
import { createSealer } from '../../session-service/src/domain/sealing.js';
import type { StoredUser } from '../../session-service/src/domain/users.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { getPage, postPageForm } from '../helpers/forms.js';
import { silentLogger } from '../helpers/logger.js';
import { browserLogin } from '../helpers/login.js';
import { TEST_ENCRYPTION_KEY } from '../helpers/processes.js';
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
let redis: RedisServer;
let client: RedisClient;
const services: SessionServiceApp[] = [];
const servers: Server[] = [];
let factors: ReturnType<typeof createRedisFactorRepository>;

beforeAll(async () => {
  redis = await startRedis();
  client = createRedis({ url: redis.url }, silentLogger);
  await client.connect();
  factors = createRedisFactorRepository({
    redis: client,
    secrets: createSealer([TEST_ENCRYPTION_KEY], 'totp-secret'),
  });
});
afterAll(async () => {
  for (const s of servers) s.close();
  await client?.close();
  await Promise.all(services.map((s) => s.close()));
  await redis?.stop();
});

/** A session-service with these users (by name), on its own port. */
async function serve(usernames: string[], env: Record<string, string> = {}) {
  const file = await writeTestUsers(
    usernames.map((username) => ({ username, password: PASSWORD })),
  );
  const service = await buildSessionService({
    redisUrl: redis.url,
    usersFile: file.path,
    env,
    throttleLimits: NO_THROTTLE,
    now: () => clock.t,
  });
  services.push(service);
  const server = service.app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((r) => server.once('listening', r));
  const users = Object.fromEntries(file.users.map((u) => [u.username, u])) as Record<
    string,
    StoredUser
  >;
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, users };
}

const key = (id: string, name = 'YubiKey'): WebauthnCredential => ({
  id,
  publicKey: 'pk',
  counter: 0,
  transports: ['usb'],
  backupEligible: false,
  backedUp: false,
  name,
  createdAt: clock.t,
  lastUsedAt: null,
});

async function signedIn(base: string, username: string) {
  const jar = new CookieJar();
  expect((await browserLogin(jar, base, username, PASSWORD)).status).toBe(303);
  return jar;
}

const securityPage = async (jar: CookieJar, base: string) =>
  (await getPage(jar, `${base}/auth/security`)).text();
const names = async (userId: string) => (await factors.listWebauthn(userId)).map((c) => c.name);
const jsonCall = (jar: CookieJar, url: string, method: string, body?: unknown) =>
  jar.fetch(url, {
    method,
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

describe('one security key on the security page', () => {
  let base: string;
  let users: Record<string, StoredUser>;
  /** Alice's browsers, signed in before she has a key (then her sign-in would need it). */
  let alice: CookieJar[];
  beforeAll(async () => {
    ({ base, users } = await serve(['alice', 'bob']));
    alice = await Promise.all([1, 2, 3, 4, 5].map(() => signedIn(base, 'alice')));
  });

  it('is renamed by a form (escaped on the page) or JSON; a name is 1 to 64 printable characters', async () => {
    const id = users.alice?.id ?? '';
    await factors.saveWebauthn(id, key('alice-key'));
    const jar = alice[0] as CookieJar;
    const page = await securityPage(jar, base);
    const url = `${base}/auth/security/webauthn/alice-key/name`;
    const renamed = await postPageForm(jar, url, page, { name: '  <b>Desk</b> & "co"  ' });
    expect(renamed.status).toBe(303);
    expect(renamed.headers.get('location')).toBe('/auth/security?key-renamed=1');
    expect(await names(id)).toEqual(['<b>Desk</b> & "co"']);
    const after = await (await getPage(jar, `${base}/auth/security?key-renamed=1`)).text();
    expect(after).toContain('&lt;b&gt;Desk&lt;/b&gt; &amp; &quot;co&quot;');
    expect(after).not.toContain('<b>Desk');
    expect(after).toContain('is renamed');

    for (const bad of ['', '   ', 'x'.repeat(65), 'tab\there', 'zero\u200bwidth']) {
      const refused = await postPageForm(jar, url, after, { name: bad });
      expect(refused.status, JSON.stringify(bad)).toBe(400);
      expect(await refused.text()).toContain('1 to 64 printable characters');
    }
    const api = await jsonCall(jar, url, 'POST', { name: '🔑'.repeat(64) });
    expect(api.status).toBe(200);
    expect(await api.json()).toEqual({ credential: { id: 'alice-key', name: '🔑'.repeat(64) } });
    expect((await jsonCall(jar, url, 'POST', { name: 7 })).status).toBe(400);
  });

  it("answers 404 NOT_FOUND for another user's key, which stays as it was", async () => {
    const bobId = users.bob?.id ?? '';
    await factors.saveWebauthn(bobId, key('bob-key', 'Bob’s key'));
    const jar = alice[1] as CookieJar;
    const page = await securityPage(jar, base);
    expect(page).not.toContain('bob-key');
    const calls = [
      postPageForm(jar, `${base}/auth/security/webauthn/bob-key/remove`, page, {}),
      postPageForm(jar, `${base}/auth/security/webauthn/bob-key/name`, page, { name: 'Mine' }),
      jsonCall(jar, `${base}/auth/security/webauthn/bob-key`, 'DELETE'),
      jsonCall(jar, `${base}/auth/security/webauthn/no-such-key/name`, 'POST', { name: 'x' }),
    ];
    for (const res of await Promise.all(calls)) expect(res.status).toBe(404);
    const api = await jsonCall(jar, `${base}/auth/security/webauthn/bob-key`, 'DELETE');
    expect((await api.json()).error).toBe('NOT_FOUND');
    expect(await names(bobId)).toEqual(['Bob’s key']);
  });

  it('changes nothing for a form without its CSRF token', async () => {
    const id = users.alice?.id ?? '';
    const jar = alice[2] as CookieJar;
    for (const path of ['remove', 'name']) {
      const res = await postPageForm(jar, `${base}/auth/security/webauthn/alice-key/${path}`, '', {
        name: 'Forged',
      });
      expect(res.status).toBe(403);
      expect(await res.text()).toContain('CSRF_TOKEN_INVALID');
    }
    expect(await names(id)).toEqual(['🔑'.repeat(64)]);
  });

  it('is removed after a recent sign-in; the other sessions end, this one stays', async () => {
    const id = users.alice?.id ?? '';
    const [other, jar] = [alice[3], alice[4]] as [CookieJar, CookieJar];
    clock.t += 11 * 60_000; // past the 10 minutes a recent sign-in lasts
    const url = `${base}/auth/security/webauthn/alice-key/remove`;
    const stale = await postPageForm(jar, url, await securityPage(jar, base), {});
    expect(stale.status).toBe(303);
    const stepUp = '/auth/step-up?need=recent-authentication&rd=%2Fauth%2Fsecurity';
    expect(stale.headers.get('location')).toBe(stepUp);
    const staleJson = await jsonCall(jar, `${base}/auth/security/webauthn/alice-key`, 'DELETE');
    expect(staleJson.status).toBe(401);
    expect((await staleJson.json()).error).toBe('REAUTHENTICATION_REQUIRED');
    expect(await names(id)).toHaveLength(1);

    // The password again on the step-up page, and back to the security page.
    const again = await postPageForm(
      jar,
      `${base}/auth/step-up`,
      await (await getPage(jar, `${base}${stepUp}`)).text(),
      { need: 'recent-authentication', rd: '/auth/security', password: PASSWORD },
    );
    expect(again.headers.get('location')).toBe('/auth/security');
    const listed = await jsonCall(jar, `${base}/auth/sessions`, 'GET');
    const others = (await listed.json()).sessions.length - 1;
    expect(others).toBe(4);
    const removed = await postPageForm(jar, url, await securityPage(jar, base), {});
    expect(removed.status).toBe(303);
    expect(removed.headers.get('location')).toBe(`/auth/security?key-removed=${others}`);
    expect(await names(id)).toEqual([]);
    expect((await other.fetch(`${base}/auth/validate`)).status).toBe(401);
    expect((await jar.fetch(`${base}/auth/validate`)).status).toBe(200);
    const notice = await getPage(jar, `${base}/auth/security?key-removed=${others}`);
    expect(await notice.text()).toContain(
      'is removed: it signs nobody in. Ended 4 other session(s).',
    );
  });

  it('is removed by DELETE (JSON), answering how many other sessions ended', async () => {
    const id = users.alice?.id ?? '';
    const jar = await signedIn(base, 'alice'); // no key left: the password signs her in
    await factors.saveWebauthn(id, key('alice-2'));
    const res = await jsonCall(jar, `${base}/auth/security/webauthn/alice-2`, 'DELETE');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ revoked: 1 }); // the browser of the test above
    expect((await (alice[4] as CookieJar).fetch(`${base}/auth/validate`)).status).toBe(401);
    expect(await names(id)).toEqual([]);
  });
});

describe('REQUIRE_SECOND_FACTOR and the last factor', () => {
  let base: string;
  let users: Record<string, StoredUser>;
  beforeAll(async () => {
    // A grace period, so a user without a factor yet still gets a session to manage them from.
    ({ base, users } = await serve(['carol', 'dan'], {
      REQUIRE_SECOND_FACTOR: 'true',
      SECOND_FACTOR_GRACE_DAYS: '7',
    }));
  });

  it('refuses to remove the last key (403 MFA_ENROLMENT_REQUIRED); with another left, it goes', async () => {
    const id = users.carol?.id ?? '';
    const jar = await signedIn(base, 'carol'); // before the keys: a password is her sign-in
    await factors.saveWebauthn(id, key('carol-1', 'First'));
    await factors.saveWebauthn(id, key('carol-2', 'Second'));
    const first = await postPageForm(
      jar,
      `${base}/auth/security/webauthn/carol-1/remove`,
      await securityPage(jar, base),
      {},
    );
    expect(first.status).toBe(303);
    const last = await postPageForm(
      jar,
      `${base}/auth/security/webauthn/carol-2/remove`,
      await securityPage(jar, base),
      {},
    );
    expect(last.status).toBe(403);
    expect(await last.text()).toContain('Your organisation requires a second factor');
    const api = await jsonCall(jar, `${base}/auth/security/webauthn/carol-2`, 'DELETE');
    expect(api.status).toBe(403);
    expect((await api.json()).error).toBe('MFA_ENROLMENT_REQUIRED');
    expect(await names(id)).toEqual(['Second']);
  });

  it('refuses to turn TOTP off when it is the only factor, and allows it beside a key', async () => {
    const id = users.dan?.id ?? '';
    const jar = await signedIn(base, 'dan');
    const enrolPage = await (await getPage(jar, `${base}/auth/security/totp`)).text();
    const secret = /secret=([A-Z2-7]+)/.exec(enrolPage)?.[1] ?? '';
    const on = await postPageForm(jar, `${base}/auth/security/totp`, enrolPage, {
      totp: totpAt(secret, clock.t),
    });
    expect(on.status).toBe(200);
    nextTotpStep(clock);
    const off = () =>
      postPageForm(jar, `${base}/auth/security/totp/remove`, enrolPage, {
        code: totpAt(secret, clock.t),
      });
    const refused = await off();
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('Your organisation requires a second factor');
    await factors.saveWebauthn(id, key('dan-key'));
    const allowed = await off();
    expect(allowed.status).toBe(303);
    expect(await factors.getTotp(id)).toBeNull();
  });
});
