/**
 * `npm run users` as a real process, one describe per command. Over 300 lines: the commands
 * share the Redis, the temp dir, the seeded hash and the users-file helpers.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verify } from '@node-rs/argon2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../session-service/src/domain/passwords.js';
import { newUser, type StoredUser } from '../../session-service/src/domain/users.js';
import { reservedDeadPort } from '../helpers/ports.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { sessionKeyOf, storedSessionId } from '../helpers/stored-sessions.js';
import { type CliResult, runUsersCli } from '../helpers/users-cli.js';

const COMMAND_TIMEOUT_MS = 15_000;
const TEST_TIMEOUT_MS = 30_000;
const PASSWORD = 'correct horse battery';

let redis: RedisServer;
let dir: string;
let seededHash: string;

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-users-cli-'));
  seededHash = await hashPassword('an old password');
});

afterAll(async () => {
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI as a real process; stdin is a pipe holding `input` (empty when not given). */
function run(
  usersFile: string,
  args: string[],
  options: { input?: string; redisUrl?: string } = {},
): Promise<CliResult> {
  return runUsersCli(args, {
    env: { USERS_FILE: usersFile, REDIS_URL: options.redisUrl ?? redis.url, REDIS_PREFIX: 'gh:' },
    ...(options.input === undefined ? {} : { input: options.input }),
    timeoutMs: COMMAND_TIMEOUT_MS,
  });
}

/** A fresh users file path in the temp dir, optionally holding `users`. */
function usersFileWith(users: StoredUser[] = []): string {
  const path = join(dir, `${randomUUID()}.json`);
  if (users.length > 0) writeFileSync(path, JSON.stringify({ users }, null, 2));
  return path;
}

function seededUser(username: string, extra: Partial<StoredUser> = {}): StoredUser {
  return { ...newUser({ username, passwordHash: seededHash }), ...extra };
}

function readUsers(path: string): StoredUser[] {
  return (JSON.parse(readFileSync(path, 'utf8')) as { users: StoredUser[] }).users;
}

/** Two live sessions of `user` in Redis, as the session service stores and indexes them. */
async function seedSessions(user: StoredUser): Promise<string[]> {
  const userId = user.id as string;
  const sids = [randomUUID(), randomUUID()];
  for (const sid of sids) {
    const auth = {
      userId,
      username: user.username,
      groups: [],
      email: '',
      createdAt: Date.now(),
    };
    await redis.client.set(sessionKeyOf(sid), JSON.stringify({ auth }), { EX: 600 });
    await redis.client.zAdd(`gh:user:{${userId}}:sessions`, {
      score: Date.now(),
      value: storedSessionId(sid),
    });
  }
  return sids;
}

async function sessionsExisting(sids: string[]): Promise<number> {
  return redis.client.exists(sids.map((sid) => sessionKeyOf(sid)));
}

describe('users add', { timeout: TEST_TIMEOUT_MS }, () => {
  it('adds a user from stdin that list then shows', async () => {
    const file = usersFileWith();
    const added = await run(file, ['add', 'alice', '--groups', 'admin,dev', '--email', 'a@x.io'], {
      input: `${PASSWORD}\n`,
    });
    expect(added.code).toBe(0);

    const listed = await run(file, ['list']);
    expect(listed.code).toBe(0);
    expect(listed.stdout.trim()).toBe('alice\tgroups=admin,dev\temail=a@x.io\tenabled');
    expect(listed.stdout).not.toContain('$argon2');

    const json = await run(file, ['list', '--json']);
    expect(JSON.parse(json.stdout)).toEqual([
      {
        id: expect.any(String),
        username: 'alice',
        groups: ['admin', 'dev'],
        email: 'a@x.io',
        disabled: false,
      },
    ]);
    expect(json.stdout).not.toContain('$argon2');
  });

  it('stores only an argon2id hash, in a file only the owner can read', async () => {
    const file = usersFileWith();
    const added = await run(file, ['add', 'alice'], { input: `${PASSWORD}\r\n` });
    expect(added.code).toBe(0);

    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(PASSWORD);
    const [user] = readUsers(file);
    expect(user?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(user?.passwordHash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    // Only the line end was stripped: the hash is of the password exactly.
    expect(await verify(user?.passwordHash ?? '', PASSWORD)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('keeps spaces in the password and reads only the first line', async () => {
    const file = usersFileWith();
    const added = await run(file, ['add', 'alice'], { input: ' spaced out \nsecond line\n' });
    expect(added.code).toBe(0);
    const [user] = readUsers(file);
    expect(await verify(user?.passwordHash ?? '', ' spaced out ')).toBe(true);
  });

  it('refuses a 7-character password and leaves the file unchanged', async () => {
    const file = usersFileWith([seededUser('bob')]);
    const before = readFileSync(file, 'utf8');
    const result = await run(file, ['add', 'alice'], { input: 'seven77\n' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('at least 8 characters');
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('refuses a password over 1024 characters', async () => {
    const file = usersFileWith();
    const result = await run(file, ['add', 'alice'], { input: `${'p'.repeat(1025)}\n` });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('at most 1024 characters');
  });

  it('refuses an empty username', async () => {
    const file = usersFileWith();
    const result = await run(file, ['add', ''], { input: `${PASSWORD}\n` });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe('username must not be empty');
  });

  it('refuses an over-long username', async () => {
    const file = usersFileWith();
    const result = await run(file, ['add', 'u'.repeat(65)], { input: `${PASSWORD}\n` });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('at most 64 characters');
  });

  it('refuses an existing username and keeps the existing user', async () => {
    const file = usersFileWith([seededUser('alice')]);
    const before = readFileSync(file, 'utf8');
    const result = await run(file, ['add', 'alice'], { input: `${PASSWORD}\n` });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe('a user named "alice" already exists');
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('refuses group names with whitespace and emails that are not emails', async () => {
    const file = usersFileWith();
    const groups = await run(file, ['add', 'alice', '--groups', 'admin, dev'], {
      input: `${PASSWORD}\n`,
    });
    expect(groups.code).toBe(1);
    expect(groups.stderr).toContain('must not contain commas, whitespace or control characters');

    const email = await run(file, ['add', 'alice', '--email', 'not-an-email'], {
      input: `${PASSWORD}\n`,
    });
    expect(email.code).toBe(1);
    expect(email.stderr).toContain('does not look like an email address');
    expect(() => statSync(file)).toThrow();
  });
});

describe('users list on a hand-edited file', { timeout: TEST_TIMEOUT_MS }, () => {
  it('warns about a group the service will not pass on, as the service logs it', async () => {
    const file = usersFileWith([seededUser('alice', { groups: ['a,b', 'dev'] })]);
    const result = await run(file, ['list']);
    expect(result.code).toBe(0);
    expect(result.stderr.trim()).toBe(
      'users file: entry 1 ("alice"): group "a,b" must not contain commas, whitespace or control characters; it signs in without that group',
    );
  });
});

describe('users remove', { timeout: TEST_TIMEOUT_MS }, () => {
  it('removes the user and ends their sessions', async () => {
    const alice = seededUser('alice');
    const file = usersFileWith([alice, seededUser('bob')]);
    const sids = await seedSessions(alice);

    const result = await run(file, ['remove', 'alice']);
    expect(result.code).toBe(0);
    expect(readUsers(file).map((u) => u.username)).toEqual(['bob']);
    expect(await sessionsExisting(sids)).toBe(0);
  });

  it('refuses an unknown user with exit code 1', async () => {
    const file = usersFileWith([seededUser('bob')]);
    const result = await run(file, ['remove', 'nobody']);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe('no user named "nobody"');
    expect(readUsers(file)).toHaveLength(1);
  });
});

describe('users passwd', { timeout: TEST_TIMEOUT_MS }, () => {
  it('sets the new password and ends all the user’s sessions', async () => {
    const alice = seededUser('alice');
    const bob = seededUser('bob');
    const file = usersFileWith([alice, bob]);
    const aliceSids = await seedSessions(alice);
    const bobSids = await seedSessions(bob);
    expect(await sessionsExisting(aliceSids)).toBe(2);

    const result = await run(file, ['passwd', 'alice'], { input: 'a brand new password\n' });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('ended 2 sessions of "alice"');
    expect(await sessionsExisting(aliceSids)).toBe(0);
    expect(await redis.client.exists(`gh:user:{${alice.id}}:sessions`)).toBe(0);
    expect(await sessionsExisting(bobSids)).toBe(2);

    const [stored] = readUsers(file);
    expect(await verify(stored?.passwordHash ?? '', 'a brand new password')).toBe(true);
  });

  it('refuses a weak new password and keeps the sessions', async () => {
    const alice = seededUser('alice');
    const file = usersFileWith([alice]);
    const before = readFileSync(file, 'utf8');
    const sids = await seedSessions(alice);

    const result = await run(file, ['passwd', 'alice'], { input: 'short\n' });
    expect(result.code).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(await sessionsExisting(sids)).toBe(2);
  });
});

describe('users disable and enable', { timeout: TEST_TIMEOUT_MS }, () => {
  it('disable sets disabled and ends the user’s sessions', async () => {
    const alice = seededUser('alice');
    const file = usersFileWith([alice]);
    const sids = await seedSessions(alice);

    const result = await run(file, ['disable', 'alice']);
    expect(result.code).toBe(0);
    expect(readUsers(file)[0]?.disabled).toBe(true);
    expect(await sessionsExisting(sids)).toBe(0);

    const listed = await run(file, ['list']);
    expect(listed.stdout).toContain('\tdisabled');
  });

  it('ends the sessions of a user stored without an id (keyed by username)', async () => {
    const { id: _, ...legacy } = seededUser('carol');
    const file = usersFileWith([legacy]);
    const sids = await seedSessions({ ...legacy, id: 'carol' });

    const result = await run(file, ['disable', 'carol']);
    expect(result.code).toBe(0);
    expect(await sessionsExisting(sids)).toBe(0);
  });

  it('enable clears disabled', async () => {
    const file = usersFileWith([seededUser('alice', { disabled: true })]);
    const result = await run(file, ['enable', 'alice']);
    expect(result.code).toBe(0);
    expect(readUsers(file)[0]?.disabled).toBe(false);
  });
});

describe('when Redis is unreachable', { timeout: TEST_TIMEOUT_MS }, () => {
  it('still changes the file, warns and exits with code 2', async () => {
    const file = usersFileWith([seededUser('alice')]);
    const redisUrl = `redis://127.0.0.1:${await reservedDeadPort()}`;

    const result = await run(file, ['passwd', 'alice'], {
      input: 'a brand new password\n',
      redisUrl,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `could not end the sessions of "alice": Redis unreachable at ${redisUrl}; they end at their timeout`,
    );
    const [stored] = readUsers(file);
    expect(await verify(stored?.passwordHash ?? '', 'a brand new password')).toBe(true);
  });
});

describe('users usage', { timeout: TEST_TIMEOUT_MS }, () => {
  it('prints usage and exits 0 for --help', async () => {
    const result = await run(usersFileWith(), ['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: npm run users -- <command>');
  });

  it('exits 1 with usage for no command or an unknown one', async () => {
    const none = await run(usersFileWith(), []);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('Usage:');
    const unknown = await run(usersFileWith(), ['frobnicate']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });
});
