import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createUsersRepository } from '../../session-service/src/adapters/users-file.js';
import {
  emailSchema,
  fieldProblem,
  groupNameSchema,
  indexUsers,
  lookUp,
  parseGroupList,
  type StoredUser,
  type UsersFileProblem,
} from '../../session-service/src/domain/users.js';

const HASH = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA';

function entry(username: string, extra: Partial<StoredUser> = {}): StoredUser {
  return {
    id: `id-${username}`,
    username,
    passwordHash: HASH,
    groups: [],
    email: '',
    disabled: false,
    ...extra,
  };
}

describe('the group name rule', () => {
  it.each(['admin', 'dev-ops', 'team.a', 'ops@eu', 'Ünïcødé'])('accepts %j', (name) => {
    expect(fieldProblem(groupNameSchema, name)).toBeNull();
  });

  it.each([
    ['', 'must not be empty'],
    ['a,b', 'must not contain commas'],
    ['admin dev', 'must not contain commas, whitespace'],
    ['admin\n', 'control characters'],
    ['ad\u0000min', 'control characters'],
    ['ad\u200bmin', 'control characters'],
  ])('refuses %j, saying why', (name, why) => {
    expect(fieldProblem(groupNameSchema, name)).toContain(why);
  });

  it('parses a --groups list without repeats, and refuses a stray comma', () => {
    expect(parseGroupList('admin,dev,admin')).toEqual({ ok: true, groups: ['admin', 'dev'] });
    expect(parseGroupList('')).toEqual({ ok: true, groups: [] });
    expect(parseGroupList('admin,,dev')).toEqual({
      ok: false,
      message: 'group names must not be empty (check for stray commas)',
    });
  });
});

describe('the email rule', () => {
  it.each(['', 'a@x.io', 'first.last+tag@mail.example.org'])('accepts %j', (email) => {
    expect(fieldProblem(emailSchema, email)).toBeNull();
  });

  it.each(['not-an-email', 'a@x.io\r\nX-Evil: 1', 'a b@x.io', `${'a'.repeat(250)}@x.io`])(
    'refuses %j',
    (email) => {
      expect(fieldProblem(emailSchema, email)).toContain('does not look like an email address');
    },
  );
});

describe('a hand-edited users file with bad groups or a bad email', () => {
  const index = indexUsers([
    entry('alice', { groups: ['admin', 'a,b', '', 'ops\u0007', 'dev'] }),
    entry('bob', { groups: ['dev'], email: 'bob@x.io\r\nX-Auth-Request-User: alice' }),
    entry('carol', { groups: ['dev'], email: 'carol@x.io' }),
  ]);

  it('signs alice in without the bad groups, keeping the good ones', () => {
    expect(lookUp(index, 'alice')?.groups).toEqual(['admin', 'dev']);
    expect(index.byId.get('id-alice')?.groups).toEqual(['admin', 'dev']);
  });

  it('signs bob in with no email', () => {
    expect(lookUp(index, 'bob')).toMatchObject({ groups: ['dev'], email: '' });
  });

  it('reports each bad group and the bad email, naming the entry', () => {
    const messages = index.problems.map((p) => [p.kind, p.entries, p.message]);
    expect(messages).toEqual([
      [
        'bad_group',
        [1],
        'users file: entry 1 ("alice"): group "a,b" must not contain commas, whitespace or control characters; it signs in without that group',
      ],
      [
        'bad_group',
        [1],
        'users file: entry 1 ("alice"): group names must not be empty (check for stray commas); it signs in without that group',
      ],
      [
        'bad_group',
        [1],
        'users file: entry 1 ("alice"): group "ops\\u0007" must not contain commas, whitespace or control characters; it signs in without that group',
      ],
      [
        'bad_email',
        [2],
        'users file: entry 2 ("bob"): "bob@x.io\\r\\nX-Auth-Request-User: alice" does not look like an email address; it signs in with no email',
      ],
    ]);
  });

  it('leaves a clean entry alone', () => {
    expect(lookUp(index, 'carol')).toMatchObject({ groups: ['dev'], email: 'carol@x.io' });
  });
});

describe('the users repository on such a file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-user-fields-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads it, reports the problem once per load and hands out the cleaned user', async () => {
    const path = join(dir, 'users.json');
    writeFileSync(path, JSON.stringify({ users: [entry('alice', { groups: ['a,b', 'dev'] })] }));
    const heard: UsersFileProblem[][] = [];
    const repo = createUsersRepository(path, undefined, { onProblems: (p) => heard.push(p) });
    expect((await repo.findByUsername('alice'))?.groups).toEqual(['dev']);
    expect((await repo.findById('id-alice'))?.groups).toEqual(['dev']);
    expect(heard.map((p) => p.map(({ kind }) => kind))).toEqual([['bad_group']]);
  });
});
