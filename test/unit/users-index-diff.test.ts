/**
 * The users file's reload applies only what changed (issue 16): diffUserIndexes + applyUserIndexDiff
 * over a table of changes give exactly the index a full indexUsers of the new file gives, with a
 * diff the size of the change; and the repository (reader thread, piscina) ends on that same
 * index after each change of the table, written one after another into one file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createUsersRepository,
  writeUsersFile,
} from '../../session-service/src/adapters/users-file.js';
import {
  applyUserIndexDiff,
  diffUserIndexes,
  indexUsers,
  lookUp,
  type StoredUser,
  type UserIndex,
} from '../../session-service/src/domain/users.js';

const HASH = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA';

function entry(username: string, extra: Partial<StoredUser> = {}): StoredUser {
  return {
    id: `id-${username}`,
    username,
    passwordHash: HASH,
    groups: ['dev'],
    email: `${username}@x.io`,
    disabled: false,
    ...extra,
  };
}

/** A comparable picture of an index: each map's entries sorted, and the problems. */
function picture(index: UserIndex) {
  const sorted = (map: Map<string, unknown>) =>
    [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    byName: sorted(index.byName),
    byLegacyName: sorted(index.byLegacyName),
    byId: sorted(index.byId),
    problems: index.problems,
  };
}

const base = [entry('alice'), entry('bob'), entry('carol'), entry('<b>dave</b>')];
/** [what, the file before, the file after, how many users the diff may carry]. */
const CHANGES: Array<[string, StoredUser[], StoredUser[], number]> = [
  ['nothing', base, base, 0],
  ['add', base, [...base, entry('erin')], 1],
  ['remove', base, base.filter((u) => u.username !== 'bob'), 0],
  ['rename', base, base.map((u) => (u.username === 'bob' ? { ...u, username: 'robert' } : u)), 1],
  ['rename to a non-canonical spelling', base, base.with(1, { ...entry('Bob'), id: 'id-bob' }), 1],
  ['a legacy name renamed', base, base.with(3, entry('dave', { id: 'id-<b>dave</b>' })), 1],
  ['clash appears', base, [...base, entry('ALICE', { id: 'id-alice-2' })], 0],
  ['clash resolved', [...base, entry('ALICE', { id: 'id-alice-2' })], base, 1],
  [
    'clash resolved by a rename',
    [...base, entry('ALICE', { id: 'id-alice-2' })],
    [...base, entry('alicia', { id: 'id-alice-2' })],
    2,
  ],
  ['group change', base, base.with(0, entry('alice', { groups: ['dev', 'admin'] })), 1],
  ['a bad group appears', base, base.with(0, entry('alice', { groups: ['a,b'] })), 1],
  ['disable', base, base.with(2, entry('carol', { disabled: true })), 1],
  [
    'sessions ended',
    base,
    base.with(2, entry('carol', { sessionsNotBefore: 1_700_000_000_000 })),
    1,
  ],
  ['email change', base, base.with(1, entry('bob', { email: 'robert@x.io' })), 1],
  ['reordered', base, [...base].reverse(), 0],
  ['two entries share an id', base, [...base, entry('frank', { id: 'id-alice' })], 1],
  ['everything replaced', base, [entry('zed'), entry('yves')], 2],
  ['emptied', base, [], 0],
  ['from empty', [], base, 4],
];

describe('diffUserIndexes + applyUserIndexDiff', () => {
  it.each(CHANGES)('%s: the same index as indexUsers of the new file', (_, before, after, most) => {
    const diff = diffUserIndexes(indexUsers(before), indexUsers(after));
    expect(diff.changed.length).toBeLessThanOrEqual(most);
    // As the reader thread sends it: a structured clone, applied to the event loop's own copy.
    const index = indexUsers(before);
    applyUserIndexDiff(index, structuredClone(diff));
    expect(picture(index)).toEqual(picture(indexUsers(after)));
  });

  it('carries one user for one change in a file of 10,000', () => {
    const many = Array.from({ length: 10_000 }, (_, i) => entry(`user${i}`));
    const changed = many.with(5000, entry('user5000', { disabled: true }));
    const diff = diffUserIndexes(indexUsers(many), indexUsers(changed));
    expect(diff.changed.map(([user]) => user.username)).toEqual(['user5000']);
    expect(diff.removed).toEqual({ byName: [], byLegacyName: [], byId: [] });
  });

  it('a clash that appears takes every entry of the name out', () => {
    const clash = [...base, entry('ALICE', { id: 'id-alice-2' })];
    const appears = diffUserIndexes(indexUsers(base), indexUsers(clash));
    expect(appears.removed.byName).toEqual(['alice']);
    expect(appears.removed.byId).toEqual(['id-alice']);
    expect(appears.problems.map((p) => p.kind)).toContain('clash');
    const index = indexUsers(base);
    applyUserIndexDiff(index, structuredClone(appears));
    expect(lookUp(index, 'alice')).toBeNull();
  });
});

describe('the repository over the same changes, one file rewritten each time', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-users-diff-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('ends each reload on the index a full read of the file gives', async () => {
    const path = join(dir, 'users.json');
    await writeUsersFile(path, base);
    const repo = createUsersRepository(path, (err) => {
      throw err;
    });
    try {
      await repo.ready;
      for (const [what, before, after] of CHANGES) {
        for (const file of [before, after]) {
          await writeUsersFile(path, file);
          const expected = indexUsers(file);
          // findByUsername waits for the reload of a changed file; then every user is as expected.
          await repo.findByUsername('nobody');
          for (const user of expected.byId.values())
            expect(await repo.findById(user.id), `${what}: ${user.id}`).toEqual(user);
          for (const [name, user] of expected.byName)
            expect(await repo.findByUsername(name), `${what}: ${name}`).toEqual(user);
          for (const [name, user] of expected.byLegacyName)
            expect(await repo.findByUsername(name), `${what}: ${name}`).toEqual(user);
          for (const old of [...before, ...after])
            if (!expected.byId.has(old.id ?? old.username))
              expect(await repo.findById(old.id ?? old.username), `${what}: ${old.id}`).toBeNull();
        }
      }
    } finally {
      repo.close();
    }
  });
});
