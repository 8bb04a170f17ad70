/**
 * Issue 15's "done when" for LDAP, through real processes: the session-service with an
 * IDENTITY_SOURCES_FILE pointing at a real OpenLDAP over ldaps:// (its CA in caFile), a gateway
 * with an admins-only route. A directory user in admins signs in on the gateway's login page and
 * reaches the route with the directory's identity; one outside admins gets 403; the directory
 * down makes the login answer 503 DIRECTORY_UNAVAILABLE, never "wrong password".
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CookieJar } from '../helpers/cookie-jar.js';
import { type EchoUpstream, startEchoUpstream } from '../helpers/echo-upstream.js';
import { browserLogin } from '../helpers/login.js';
import { waitFor } from '../helpers/ports.js';
import { type System, startSystem } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { PEOPLE_DN, SERVICE_DN, type Slapd, startSlapd, userDn } from '../helpers/slapd.js';
import { writeTestUsers } from '../helpers/users.js';

const ALICE_PASSWORD = 'alice-Directory-e2e-1';
const BOB_PASSWORD = 'bob-Directory-e2e-2';

let redis: RedisServer;
let slapd: Slapd;
let echo: EchoUpstream;
let system: System;

beforeAll(async () => {
  [redis, slapd, echo] = await Promise.all([startRedis(), startSlapd(), startEchoUpstream()]);
  await slapd.addUser({ uid: 'alice', password: ALICE_PASSWORD, mail: 'alice@corp.example' });
  await slapd.addUser({ uid: 'bob', password: BOB_PASSWORD });
  await slapd.addGroup('admins', [userDn('alice')]);
  await slapd.addGroup('staff', [userDn('alice'), userDn('bob')]);
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-e2e-ldap-'));
  writeFileSync(join(dir, 'ca.pem'), slapd.caPem);
  writeFileSync(
    join(dir, 'identity-sources.yaml'),
    `ldap:
  url: ${slapd.ldapsUrl}
  caFile: ${join(dir, 'ca.pem')}
  bindDn: ${SERVICE_DN}
  bindPasswordEnv: LDAP_BIND_PASSWORD
  userBase: ${PEOPLE_DN}
  timeoutMs: 2000
`,
  );
  writeFileSync(
    join(dir, 'routes.yaml'),
    `routes:
  - id: app
    upstream: ${echo.url}
  - id: admin
    path: /admin
    upstream: ${echo.url}
    allow: { groups: [admins] }
`,
  );
  const users = await writeTestUsers([]);
  system = await startSystem({
    redisUrl: redis.url,
    usersFile: users.path,
    sessionEnv: {
      IDENTITY_SOURCES_FILE: join(dir, 'identity-sources.yaml'),
      LDAP_BIND_PASSWORD: slapd.servicePassword,
    },
    gatewayEnv: { GATEWAY_ROUTES: join(dir, 'routes.yaml') },
  });
});

afterAll(async () => {
  await system?.stop();
  await Promise.all([slapd?.close(), echo?.close(), redis?.stop()]);
  // Neither the users' passwords nor the service account's reached a log line.
  const logs = `${system?.sessionService.output() ?? ''}${system?.gateway.output() ?? ''}`;
  for (const secret of [ALICE_PASSWORD, BOB_PASSWORD, slapd?.servicePassword ?? 'unset'])
    expect(logs).not.toContain(secret);
});

describe('a directory user through the gateway', () => {
  it('alice (admins) signs in on the login page and reaches the admins route with the directory identity', async () => {
    const jar = new CookieJar();
    const login = await browserLogin(
      jar,
      system.gateway.url,
      'alice',
      ALICE_PASSWORD,
      '/admin/panel',
    );
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/admin/panel');
    const before = echo.received.length;
    const res = await jar.fetch(`${system.gateway.url}/admin/panel`, {
      headers: { 'x-auth-request-user': 'mallory', 'x-auth-request-groups': 'root' },
    });
    expect(res.status).toBe(200);
    await echo.waitFor(before + 1);
    const seen = echo.last();
    expect(seen.url).toBe('/admin/panel');
    expect(seen.header('x-auth-request-user')).toEqual(['alice']);
    expect(seen.header('x-auth-request-groups')).toEqual(['admins,staff']);
    expect(seen.header('x-auth-request-email')).toEqual(['alice@corp.example']);
  });

  it('bob (not in admins) signs in and gets 403 on the admins route, 200 elsewhere', async () => {
    const jar = new CookieJar();
    const login = await browserLogin(jar, system.gateway.url, 'bob', BOB_PASSWORD, '/');
    expect(login.status).toBe(303);
    const before = echo.received.length;
    const refused = await jar.fetch(`${system.gateway.url}/admin/panel`, {
      headers: { accept: 'application/json' },
    });
    expect(refused.status).toBe(403);
    expect(echo.received.length).toBe(before);
    const home = await jar.fetch(`${system.gateway.url}/home`);
    expect(home.status).toBe(200);
    expect(echo.last().header('x-auth-request-user')).toEqual(['bob']);
    expect(echo.last().header('x-auth-request-groups')).toEqual(['staff']);
  });

  it('a wrong directory password is the login page again with 401', async () => {
    const jar = new CookieJar();
    const res = await browserLogin(jar, system.gateway.url, 'alice', 'not-her-password');
    expect(res.status).toBe(401);
    expect(await res.text()).toContain('Invalid username or password.');
    expect(jar.get('gatehouse')).toBeFalsy();
  });

  // Last: it stops the directory.
  it('the directory down: the login through the gateway answers 503 DIRECTORY_UNAVAILABLE, never 401', async () => {
    await slapd.stop();
    try {
      for (const password of [ALICE_PASSWORD, 'not-her-password']) {
        const jar = new CookieJar();
        const res = await browserLogin(jar, system.gateway.url, 'alice', password);
        expect(res.status).toBe(503);
        expect(res.headers.get('content-type')).toMatch(/^text\/html/);
        const page = await res.text();
        expect(page).toContain('The user directory is not reachable right now.');
        expect(page).toContain('DIRECTORY_UNAVAILABLE');
        expect(page).not.toContain('Invalid username or password');
        expect(jar.get('gatehouse')).toBeFalsy();
      }
    } finally {
      await slapd.start();
    }
    // Back: the next sign-in works (the pool binds again).
    await waitFor(
      async () =>
        (await browserLogin(new CookieJar(), system.gateway.url, 'alice', ALICE_PASSWORD))
          .status === 303,
      10_000,
      'a sign-in after the directory is back',
    );
  });
});
