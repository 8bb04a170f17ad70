import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../session-service/src/domain/passwords.js';
import { newUser, type StoredUser } from '../../session-service/src/domain/users.js';
import { reservedDeadPort } from '../helpers/ports.js';
import { type CliResult, runUsersCli } from '../helpers/users-cli.js';

const PASSWORD = 'correct horse battery';

let dir: string;
let seededHash: string;
/** Nothing listens there: commands that end sessions fail fast, with exit code 2. */
let deadRedis: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-users-lookalike-'));
  seededHash = await hashPassword('an old password');
  deadRedis = `redis://127.0.0.1:${await reservedDeadPort()}`;
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The CLI as a real process; stdin holds `input`. */
function run(usersFile: string, args: string[], input = `${PASSWORD}\n`): Promise<CliResult> {
  return runUsersCli(args, { env: { USERS_FILE: usersFile, REDIS_URL: deadRedis }, input });
}

function fileWith(usernames: string[]): string {
  const path = join(dir, `${randomUUID()}.json`);
  const users = usernames.map((username) => newUser({ username, passwordHash: seededHash }));
  writeFileSync(path, JSON.stringify({ users }, null, 2));
  return path;
}

const namesIn = (path: string) =>
  (JSON.parse(readFileSync(path, 'utf8')) as { users: StoredUser[] }).users.map((u) => u.username);

describe('users add', { timeout: 30_000 }, () => {
  it('stores the canonical form and says so', async () => {
    const file = fileWith([]);
    const result = await run(file, ['add', 'ＡＬＩＣＥ']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^added "ＡＬＩＣＥ" as "alice", its canonical form \(id /);
    expect(namesIn(file)).toEqual(['alice']);
  });

  it.each([
    ['upper case', 'Alice'],
    ['full width', 'ａｌｉｃｅ'],
    ['full width upper case', 'ＡＬＩＣＥ'],
    ['mathematical bold', '𝐚𝐥𝐢𝐜𝐞'],
  ])('refuses %s alice beside alice, naming the existing user', async (_, name) => {
    const file = fileWith(['alice']);
    const before = readFileSync(file, 'utf8');
    const result = await run(file, ['add', name]);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe('a user named "alice" already exists');
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('refuses a name that looks like a hand-written non-canonical entry', async () => {
    const file = fileWith(['Alice']);
    const result = await run(file, ['add', 'alice']);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      'a user named "alice" already exists, spelled "Alice" in the users file (usernames differing only in case, width or invisible characters are the same name)',
    );
  });

  it.each([
    ['a zero-width space', 'al\u200bice', 'invisible characters', 'U+200B'],
    ['a zero-width joiner', 'alice\u200d', 'invisible characters', 'U+200D'],
    ['a right-to-left override', 'a\u202elice', 'invisible characters', 'U+202E'],
    ['a no-break space', 'al\u00a0ice', 'spaces', 'U+0020'],
    ['a Cyrillic a', '\u0430lice', 'mix Latin and Cyrillic', ''],
    ['a dotted capital I', 'İlice', 'combining mark', 'U+0307'],
    ['markup', '<b>alice</b>', 'must not contain "<"', 'U+003C'],
  ])('refuses a name with %s, saying why', async (_, name, why, codePoint) => {
    const file = fileWith(['alice']);
    const result = await run(file, ['add', name]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(why);
    expect(result.stderr).toContain(codePoint);
    expect(result.stderr.split('\n').length).toBe(2);
    expect(namesIn(file)).toEqual(['alice']);
  });
});

describe('users remove, passwd, disable', { timeout: 30_000 }, () => {
  it('find a user by any spelling', async () => {
    const file = fileWith(['alice', 'bob']);
    const result = await run(file, ['disable', 'ＡＬＩＣＥ']);
    // Redis is unreachable on purpose: the file changed (2: sessions not ended).
    expect(result.code).toBe(2);
    const alice = (JSON.parse(readFileSync(file, 'utf8')) as { users: StoredUser[] }).users[0];
    expect(alice?.disabled).toBe(true);
  });

  it('take the exact spelling among entries that look alike, and refuse to guess', async () => {
    const file = fileWith(['alice', 'Alice']);
    const ambiguous = await run(file, ['remove', 'ALICE']);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr.trim()).toBe(
      '"ALICE" matches 2 entries that look the same ("alice", "Alice"); give the exact spelling of one',
    );
    expect(namesIn(file)).toEqual(['alice', 'Alice']);
    const exact = await run(file, ['remove', 'Alice']);
    expect(exact.code).toBe(2);
    expect(namesIn(file)).toEqual(['alice']);
  });
});

describe('users list', { timeout: 30_000 }, () => {
  it('warns on stderr about look-alike and non-canonical entries, as the service logs them', async () => {
    const file = fileWith(['alice', 'Alice', 'Bob', 'carol']);
    const result = await run(file, ['list'], '');
    expect(result.code).toBe(0);
    expect(result.stderr.trim().split('\n')).toEqual([
      'users file: entries 1 and 2 ("alice", "Alice") are the same username "alice" once canonicalised; none of them can sign in until all but one are renamed or removed',
      'users file: entry 3 ("Bob") is not in canonical form; it signs in as "bob"',
    ]);
    expect(result.stdout.split('\n').filter(Boolean)).toHaveLength(4);
  });

  it('says nothing more about a file of canonical names', async () => {
    const result = await run(fileWith(['alice', 'bob']), ['list', '--json'], '');
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
  });
});
