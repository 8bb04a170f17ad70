import { writeFileSync } from 'node:fs';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeUsersFile } from '../../session-service/src/adapters/users-file.js';
import { newUser } from '../../session-service/src/domain/users.js';
import { waitFor } from '../helpers/ports.js';
import { type ServiceProcess, startSessionServiceProcess } from '../helpers/processes.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  buildSessionService,
  cookiePairOf,
  type SessionServiceApp,
} from '../helpers/session-service.js';
import { writeTestUsers } from '../helpers/users.js';

const PASSWORD = 'correct horse battery';
type Service = SessionServiceApp;

let redis: RedisServer;
let service: Service;

beforeAll(async () => {
  redis = await startRedis();
  const users = await writeTestUsers([
    { username: 'alice', password: PASSWORD, groups: ['staff'] },
    { username: 'erin', password: PASSWORD },
    { username: 'frank', password: PASSWORD },
  ]);
  service = await buildSessionService({
    redisUrl: redis.url,
    usersFile: users.path,
    // Pair blocks after 3 failures, the account after 6 from anywhere.
    throttleLimits: {
      pairFailures: 3,
      accountFailures: 6,
      addressAttempts: 100_000,
      addressFailures: 100_000,
    },
  });
});

afterAll(async () => {
  await service?.close();
  await redis?.stop();
});

function jsonLogin(ip: string, username: string, password = PASSWORD) {
  return request(service.app)
    .post('/auth/login')
    .set('content-type', 'application/json')
    .set('x-forwarded-for', ip)
    .send(JSON.stringify({ username, password }));
}

describe('a login with another spelling of a username', () => {
  it.each([
    ['Alice', '198.51.100.1'],
    ['ALICE', '198.51.100.2'],
    ['ａｌｉｃｅ', '198.51.100.3'],
    ['ＡＬＩＣＥ', '198.51.100.4'],
    ['𝐚𝐥𝐢𝐜𝐞', '198.51.100.5'],
  ])('%s signs in as alice, the identity backends get', async (spelling, ip) => {
    const res = await jsonLogin(ip, spelling);
    expect(res.status).toBe(200);
    expect(res.body.user.username).toBe('alice');
    const validate = await request(service.app)
      .get('/auth/validate')
      .set('cookie', cookiePairOf(res.headers['set-cookie']));
    expect(validate.status).toBe(200);
    expect(validate.headers['x-auth-request-user']).toBe('alice');
    expect(validate.body.user.username).toBe('alice');
  });

  it.each([
    ['a zero-width space', 'al\u200bice', '198.51.100.11'],
    ['a zero-width joiner', 'alice\u200d', '198.51.100.12'],
    ['a byte-order mark', '\ufeffalice', '198.51.100.13'],
    ['a right-to-left override', 'a\u202elice', '198.51.100.14'],
    ['a Cyrillic a', '\u0430lice', '198.51.100.15'],
    ['a trailing space', 'alice ', '198.51.100.16'],
  ])('with %s is refused like a wrong password', async (_, spelling, ip) => {
    // An address each: every one of them counts against alice (see the throttle below).
    const res = await jsonLogin(ip, spelling);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({
      error: 'INVALID_CREDENTIALS',
      message: 'Invalid username or password.',
    });
    expect(res.headers['set-cookie']).toBeUndefined();
  });
});

describe('the login throttle', () => {
  it('counts failures under every spelling against one account and address pair', async () => {
    const ip = '203.0.113.10';
    for (const spelling of ['FRANK', 'ｆｒａｎｋ', 'fr\u200bank']) {
      expect((await jsonLogin(ip, spelling, 'wrong password')).status).toBe(401);
    }
    const blocked = await jsonLogin(ip, 'frank');
    expect(blocked.status).toBe(429);
    expect(blocked.body.error).toBe('TOO_MANY_ATTEMPTS');
    // Another address is not blocked: it was the pair.
    expect((await jsonLogin('203.0.113.11', 'frank')).status).toBe(200);
  });

  it('counts failures under every spelling from many addresses against one account', async () => {
    const spellings = ['erin', 'ERIN', 'Erin', 'ｅｒｉｎ', 'ＥＲＩＮ', 'er\u200din'];
    for (const [i, spelling] of spellings.entries()) {
      const res = await jsonLogin(`192.0.2.${20 + i}`, spelling, 'wrong password');
      expect(res.status).toBe(401);
    }
    const blocked = await jsonLogin('192.0.2.99', 'erin');
    expect(blocked.status).toBe(429);
  });
});

describe('a users file with look-alike and non-canonical names', { timeout: 30_000 }, () => {
  let process_: ServiceProcess;
  let usersFile: string;

  beforeAll(async () => {
    const written = await writeTestUsers([
      { username: 'carol', password: PASSWORD },
      { username: 'dave', password: PASSWORD },
    ]);
    usersFile = written.path;
    const [carol, dave] = written.users;
    // A hand-edited file: a second carol, spelled with a capital and with a zero-width space,
    // a non-canonical Dave, and a name from before the rules.
    writeFileSync(
      usersFile,
      JSON.stringify({
        users: [
          carol,
          { ...carol, id: 'carol-2', username: 'Carol' },
          { ...carol, id: 'carol-3', username: 'car\u200bol' },
          { ...dave, username: 'Dave' },
          { ...dave, id: 'legacy', username: '<b>gus</b>' },
        ],
      }),
    );
    process_ = await startSessionServiceProcess({
      redisUrl: redis.url,
      usersFile,
      env: { LOGIN_THROTTLE_ADDRESS_ATTEMPTS: '1000' },
    });
  });

  afterAll(async () => {
    await process_?.stop();
  });

  const login = (username: string) =>
    fetch(`${process_.url}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: PASSWORD }),
    });

  it('stays up and reports every problem on one warning line each, naming the entries', async () => {
    expect((await fetch(`${process_.url}/healthz`)).status).toBe(200);
    // The file is read at the first lookup.
    expect((await login('dave')).status).toBe(200);
    await waitFor(
      async () => process_.output().includes('is not a valid username'),
      10_000,
      'the users file warnings',
    );
    const warnings = process_
      .output()
      .split('\n')
      .filter((line) => line.includes('users file:'))
      .map((line) => JSON.parse(line) as { level: number; msg: string; entries: number[] });
    expect(warnings.map((w) => [w.level, w.entries])).toEqual([
      [40, [1, 2, 3]],
      [40, [4]],
      [40, [5]],
    ]);
    expect(warnings[0]?.msg).toBe(
      'users file: entries 1, 2 and 3 ("carol", "Carol", "car\\u{200b}ol") are the same username "carol" once canonicalised; none of them can sign in until all but one are renamed or removed',
    );
    expect(warnings[1]?.msg).toBe(
      'users file: entry 4 ("Dave") is not in canonical form; it signs in as "dave"',
    );
  });

  it('lets none of the clashing entries sign in, and the others as before', async () => {
    for (const username of ['carol', 'Carol', 'car\u200bol'])
      expect((await login(username)).status).toBe(401);
    const dave = await login('DAVE');
    expect(dave.status).toBe(200);
    expect(((await dave.json()) as { user: { username: string } }).user.username).toBe('dave');
    expect((await login('<b>gus</b>')).status).toBe(200);
  });

  it('lets carol sign in again once the file holds one carol', async () => {
    const hash = (await writeTestUsers([{ username: 'carol', password: PASSWORD }])).users[0];
    await writeUsersFile(usersFile, [hash ?? newUser({ username: 'carol', passwordHash: '' })]);
    const res = await login('Carol');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { user: { username: string } }).user.username).toBe('carol');
  });
});
