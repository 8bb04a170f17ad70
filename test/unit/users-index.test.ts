import { describe, expect, it } from 'vitest';
import { indexUsers, lookUp, type StoredUser } from '../../session-service/src/domain/users.js';

const HASH = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA';

function entry(username: string, id = `id-${username}`): StoredUser {
  return { id, username, passwordHash: HASH, groups: [], email: '', disabled: false };
}

describe('indexUsers on a file of canonical names', () => {
  const index = indexUsers([entry('alice'), entry('bob'), entry('josé')]);

  it('reports nothing', () => {
    expect(index.problems).toEqual([]);
  });

  it.each([
    ['alice', 'alice'],
    ['Alice', 'alice'],
    ['ALICE', 'alice'],
    ['ａｌｉｃｅ', 'alice'],
    ['ＡＬＩＣＥ', 'alice'],
    ['𝐚𝐥𝐢𝐜𝐞', 'alice'],
    ['JOSE\u0301', 'josé'],
    ['José', 'josé'],
  ])('finds %s as %s', (input, username) => {
    expect(lookUp(index, input)?.username).toBe(username);
  });

  it.each([
    'al\u200bice',
    'alice\u200d',
    '\ufeffalice',
    'a\u202elice',
    ' alice',
    'alice ',
    '\u0430lice',
    'al\uD800ice',
    '',
  ])('finds nobody for the refused look-alike %j', (input) => {
    expect(lookUp(index, input)).toBeNull();
  });
});

describe('indexUsers on a hand-edited file', () => {
  const index = indexUsers([
    entry('alice'),
    entry('Alice'),
    entry('al\u200bice'),
    entry('Bob'),
    entry('<b>carol</b>'),
    entry('dave'),
    entry('dave'),
    entry('erin'),
    entry('ΟΔΟΣ'),
    entry('οδοσ'),
  ]);

  it('reports every clash, naming the entries, and locks them all out', () => {
    const clashes = index.problems.filter((p) => p.kind === 'clash');
    expect(clashes.map((p) => p.entries)).toEqual([
      [1, 2, 3],
      [6, 7],
      [9, 10],
    ]);
    expect(clashes[0]?.message).toBe(
      'users file: entries 1, 2 and 3 ("alice", "Alice", "al\\u{200b}ice") are the same username "alice" once canonicalised; none of them can sign in until all but one are renamed or removed',
    );
    for (const input of ['alice', 'Alice', 'al\u200bice', 'dave', 'ΟΔΟΣ', 'οδος'])
      expect(lookUp(index, input)).toBeNull();
    for (const id of ['id-alice', 'id-Alice', 'id-dave', 'id-οδοσ'])
      expect(index.byId.get(id)).toBeUndefined();
  });

  it('signs a non-canonical entry in as its canonical name, and says so', () => {
    expect(index.problems).toContainEqual({
      kind: 'not_canonical',
      entries: [4],
      usernames: ['Bob'],
      message: 'users file: entry 4 ("Bob") is not in canonical form; it signs in as "bob"',
    });
    expect(lookUp(index, 'bob')).toMatchObject({ id: 'id-Bob', username: 'bob' });
    expect(lookUp(index, 'BOB')?.username).toBe('bob');
    expect(index.byId.get('id-Bob')?.username).toBe('bob');
  });

  it('keeps an entry with no canonical form signing in by its exact spelling only', () => {
    const invalid = index.problems.find((p) => p.kind === 'invalid');
    expect(invalid?.entries).toEqual([5]);
    expect(invalid?.message).toMatch(/^users file: entry 5 \("<b>carol<\/b>"\) is not a valid/);
    expect(lookUp(index, '<b>carol</b>')?.username).toBe('<b>carol</b>');
    expect(lookUp(index, '<B>CAROL</B>')).toBeNull();
  });

  it('leaves the other users alone', () => {
    expect(lookUp(index, 'ERIN')?.username).toBe('erin');
    expect(index.byId.get('id-erin')?.username).toBe('erin');
  });

  it('keeps an id as written, so sessions of a renamed spelling stay valid', () => {
    const legacy = indexUsers([{ ...entry('Frank'), id: undefined }]);
    expect(lookUp(legacy, 'frank')).toMatchObject({ id: 'Frank', username: 'frank' });
  });
});
