import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { canonicalUsername, USERNAME_MAX, usernameKey, visibleUsername } from './usernames.js';

export { USERNAME_MAX };

export const EMAIL_MAX = 254;
/** The WHATWG HTML "valid e-mail address" pattern (what browsers check for type=email). */
const EMAIL_PATTERN =
  /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
/** Group names travel comma-joined in X-Auth-Request-Groups: `a,b` would reach backends as two. */
const BAD_GROUP_CHAR = /[\s,\p{Cc}\p{Cf}]/u;

/** A group name as backends receive it. The CLI refuses others; a users file loses them (indexUsers). */
export const groupNameSchema = z
  .string()
  .min(1, 'group names must not be empty (check for stray commas)')
  .refine((name) => !BAD_GROUP_CHAR.test(name), {
    error: (issue) =>
      `group ${JSON.stringify(issue.input)} must not contain commas, whitespace or control characters`,
  });

/** An email address, or '' for none. */
export const emailSchema = z
  .string()
  .refine((email) => email === '' || (email.length <= EMAIL_MAX && EMAIL_PATTERN.test(email)), {
    error: (issue) => `${JSON.stringify(issue.input)} does not look like an email address`,
  });

/** Why `value` does not fit `schema` (its first issue), or null when it does. */
export function fieldProblem(schema: z.ZodType, value: unknown): string | null {
  const result = schema.safeParse(value);
  return result.success ? null : (result.error.issues[0]?.message ?? 'invalid');
}

/** The groups of a comma-separated list (`--groups admin,dev`), without repeats, or why not. */
export function parseGroupList(
  list: string,
): { ok: true; groups: string[] } | { ok: false; message: string } {
  if (list === '') return { ok: true, groups: [] };
  const groups = list.split(',');
  for (const group of groups) {
    const message = fieldProblem(groupNameSchema, group);
    if (message) return { ok: false, message };
  }
  return { ok: true, groups: [...new Set(groups)] };
}

export const userSchema = z.looseObject({
  id: z.string().min(1).optional(),
  username: z.string().min(1).max(USERNAME_MAX),
  passwordHash: z.string().startsWith('$argon2id$'),
  groups: z.array(z.string()).default([]),
  email: z.string().default(''),
  disabled: z.boolean().default(false),
  /** ms since the epoch: sessions created before this are no longer valid (set by passwd/disable). */
  sessionsNotBefore: z.number().optional(),
});

export type StoredUser = z.infer<typeof userSchema>;

export interface User extends StoredUser {
  id: string;
  /** Set for a user from an identity source (domain/external-users.ts): no password of ours. */
  source?: 'oidc' | 'ldap' | 'service';
  /** An identity source's user: ms since the epoch when the source last vouched for them. */
  checkedAt?: number;
}

export function withId(user: StoredUser): User {
  return { ...user, id: user.id ?? user.username };
}

export function newUser(input: {
  username: string;
  passwordHash: string;
  groups?: string[];
  email?: string;
}): StoredUser {
  return {
    id: randomUUID(),
    username: input.username,
    passwordHash: input.passwordHash,
    groups: input.groups ?? [],
    email: input.email ?? '',
    disabled: false,
  };
}

/** Something wrong with the users file that does not stop it loading, for one warning line. */
export interface UsersFileProblem {
  kind: 'clash' | 'not_canonical' | 'invalid' | 'bad_group' | 'bad_email';
  /** The entries concerned, numbered from 1 in file order. */
  entries: number[];
  usernames: string[];
  message: string;
}

/** The users of a file as logins and validate see them. */
export interface UserIndex {
  /** Canonical username → user (whose `username` is the canonical one). */
  byName: Map<string, User>;
  /** Entries whose names have no canonical form (a hand-edited file): exact spelling → user. */
  byLegacyName: Map<string, User>;
  byId: Map<string, User>;
  problems: UsersFileProblem[];
}

const entryList = (entries: number[]) =>
  `entries ${entries.slice(0, -1).join(', ')} and ${entries.at(-1)}`;

/**
 * Index the users of a file by canonical name, and say what is wrong with it. Entries that are
 * look-alikes of each other (the same usernameKey: `alice`, `Alice`, `al<ZWSP>ice`, or the same
 * name twice) clash: none of them can sign in, and their sessions end, until all but one are
 * renamed or removed, since nothing tells which of them the name belongs to. An entry spelled
 * other than canonically (`Alice`) signs in as its canonical name (`alice`), which is also the
 * identity sent to backends. An entry with no canonical form (`<b>bob</b>`, written before these
 * rules) still signs in under its exact spelling, so an upgrade locks nobody out. A group or an
 * email that breaks groupNameSchema or emailSchema is not passed on (checkedFields). Each is reported.
 */
export function indexUsers(stored: readonly StoredUser[]): UserIndex {
  const index: UserIndex = {
    byName: new Map(),
    byLegacyName: new Map(),
    byId: new Map(),
    problems: [],
  };
  const byKey = new Map<string, number[]>();
  stored.forEach((entry, i) => {
    const key = usernameKey(entry.username);
    byKey.set(key, [...(byKey.get(key) ?? []), i]);
  });
  const clashing = new Set<number>();
  for (const [key, positions] of byKey) {
    if (positions.length < 2) continue;
    for (const i of positions) clashing.add(i);
    const usernames = positions.map((i) => (stored[i] as StoredUser).username);
    const entries = positions.map((i) => i + 1);
    index.problems.push({
      kind: 'clash',
      entries,
      usernames,
      message:
        `users file: ${entryList(entries)} (${usernames.map(visibleUsername).join(', ')}) are ` +
        `the same username ${visibleUsername(key)} once canonicalised; none of them can sign in ` +
        'until all but one are renamed or removed',
    });
  }
  stored.forEach((entry, i) => {
    if (clashing.has(i)) return;
    const name = canonicalUsername(entry.username);
    const shown = `users file: entry ${i + 1} (${visibleUsername(entry.username)})`;
    const about = { entries: [i + 1], usernames: [entry.username] };
    const fields = checkedFields(entry);
    for (const message of fields.badGroups)
      index.problems.push({
        kind: 'bad_group',
        ...about,
        message: `${shown}: ${message}; it signs in without that group`,
      });
    if (fields.badEmail)
      index.problems.push({
        kind: 'bad_email',
        ...about,
        message: `${shown}: ${fields.badEmail}; it signs in with no email`,
      });
    const user = { ...withId(entry), groups: fields.groups, email: fields.email };
    if (name.ok) {
      if (name.username !== entry.username) {
        index.problems.push({
          kind: 'not_canonical',
          ...about,
          message: `${shown} is not in canonical form; it signs in as ${visibleUsername(name.username)}`,
        });
      }
      const canonical = { ...user, username: name.username };
      index.byName.set(name.username, canonical);
      index.byId.set(canonical.id, canonical);
    } else {
      index.problems.push({
        kind: 'invalid',
        ...about,
        message: `${shown} is not a valid username (${name.message}); it signs in only as spelled until renamed`,
      });
      index.byLegacyName.set(entry.username, user);
      index.byId.set(user.id, user);
    }
  });
  return index;
}

/**
 * The groups and email a hand-edited entry may hand to backends. A bad group is dropped rather
 * than passed on (`a,b` would be read as groups a and b, a control character could split a
 * header) or locking the user out: groups grant access, so one fewer grants less. A bad email
 * becomes ''.
 */
function checkedFields(entry: StoredUser) {
  const badGroups: string[] = [];
  const groups = entry.groups.filter((group) => {
    const message = fieldProblem(groupNameSchema, group);
    if (message) badGroups.push(message);
    return message === null;
  });
  const badEmail = fieldProblem(emailSchema, entry.email);
  return { groups, badGroups, email: badEmail ? '' : entry.email, badEmail };
}

/** The maps of a UserIndex a changed user goes into (bits of UserIndexDiff's `changed`). */
export const IN_BY_NAME = 1;
export const IN_BY_LEGACY_NAME = 2;
export const IN_BY_ID = 4;

/**
 * What turns one UserIndex into another: the keys gone from each map, and each user that is new
 * or differs (with the maps that hold it: byName and byLegacyName key it by `username`, byId by
 * `id`). Its size is that of the change, not of the file: applying it costs O(changed entries +
 * problems). Clashes need no special case: indexUsers saw the whole file on both sides, so an
 * entry that starts or stops clashing is an entry whose place in the maps changed.
 */
export interface UserIndexDiff {
  removed: { byName: string[]; byLegacyName: string[]; byId: string[] };
  changed: Array<[user: User, maps: number]>;
  problems: UsersFileProblem[];
}

// Users of an index are built by indexUsers in one key order, so equal users stringify equally.
const sameUser = (a: User, b: User) => a === b || JSON.stringify(a) === JSON.stringify(b);

/** The diff from `before` to `after` (both whole indexes, as indexUsers built them): O(users). */
export function diffUserIndexes(before: UserIndex, after: UserIndex): UserIndexDiff {
  const diff: UserIndexDiff = {
    removed: { byName: [], byLegacyName: [], byId: [] },
    changed: [],
    problems: after.problems,
  };
  const changed = new Map<User, number>();
  const maps = [
    ['byName', IN_BY_NAME],
    ['byLegacyName', IN_BY_LEGACY_NAME],
    ['byId', IN_BY_ID],
  ] as const;
  for (const [map, bit] of maps) {
    for (const key of before[map].keys()) if (!after[map].has(key)) diff.removed[map].push(key);
    for (const [key, user] of after[map]) {
      const old = before[map].get(key);
      if (old === undefined || !sameUser(old, user))
        changed.set(user, (changed.get(user) ?? 0) | bit);
    }
  }
  diff.changed = [...changed];
  return diff;
}

/** Apply `diff` to `index` in place: O(diff), the keys removed first, then the users set. */
export function applyUserIndexDiff(
  index: UserIndex,
  diff: Pick<UserIndexDiff, 'removed' | 'changed'> & { problems?: UsersFileProblem[] },
): void {
  for (const key of diff.removed.byName) index.byName.delete(key);
  for (const key of diff.removed.byLegacyName) index.byLegacyName.delete(key);
  for (const key of diff.removed.byId) index.byId.delete(key);
  for (const [user, maps] of diff.changed) {
    if (maps & IN_BY_NAME) index.byName.set(user.username, user);
    if (maps & IN_BY_LEGACY_NAME) index.byLegacyName.set(user.username, user);
    if (maps & IN_BY_ID) index.byId.set(user.id, user);
  }
  if (diff.problems) index.problems = diff.problems;
}

/** The user a login names: by canonical name, else (legacy entries) by the exact spelling. */
export function lookUp(index: UserIndex, username: string): User | null {
  const name = canonicalUsername(username);
  if (name.ok) return index.byName.get(name.username) ?? null;
  return index.byLegacyName.get(username) ?? null;
}

export interface UsersRepository {
  findByUsername(username: string): Promise<User | null>;
  findById(id: string): Promise<User | null>;
  /** findByUsername from what is loaded now, without looking at the source again (validate). */
  peekByUsername?(username: string): User | null;
}
