/** The users file as the commands change it: read, find one user, write back. */

import { readUsersFile, writeUsersFile } from '../adapters/users-file.js';
import { usernameKey, visibleUsername } from '../domain/usernames.js';
import type { StoredUser } from '../domain/users.js';
import type { Settings } from './args.js';
import { CliError, describeError } from './errors.js';
import { quote } from './print.js';

export async function loadUsers(settings: Settings): Promise<StoredUser[]> {
  try {
    return await readUsersFile(settings.usersFile);
  } catch (err) {
    throw new CliError(`cannot read the users file ${settings.usersFile}: ${describeError(err)}`);
  }
}

export async function saveUsers(settings: Settings, users: StoredUser[]): Promise<void> {
  try {
    await writeUsersFile(settings.usersFile, users);
  } catch (err) {
    throw new CliError(`cannot write the users file ${settings.usersFile}: ${describeError(err)}`);
  }
}

/**
 * The entry `username` names: the one spelled exactly so, else the one it is a look-alike of
 * (`Alice` finds `alice`). Look-alike entries of a hand-edited file are told apart by their
 * exact spelling, so each can be renamed or removed.
 */
export function indexOfUser(users: StoredUser[], username: string): number {
  const exact = users.flatMap((u, i) => (u.username === username ? [i] : []));
  const key = usernameKey(username);
  const alike = users.flatMap((u, i) => (usernameKey(u.username) === key ? [i] : []));
  const found = exact.length > 0 ? exact : alike;
  if (found.length === 1) return found[0] as number;
  if (found.length === 0) throw new CliError(`no user named ${quote(username)}`);
  const names = found.map((i) => visibleUsername((users[i] as StoredUser).username)).join(', ');
  throw new CliError(
    exact.length > 1
      ? `the users file has ${found.length} entries named exactly ${quote(username)}; edit the file to keep one`
      : `${quote(username)} matches ${found.length} entries that look the same (${names}); give the exact spelling of one`,
  );
}

/** Refuse a name that is, or looks like, one already in the file. */
export function requireNewUsername(users: StoredUser[], username: string): void {
  const key = usernameKey(username);
  const existing = users.find((u) => usernameKey(u.username) === key);
  if (!existing) return;
  throw new CliError(
    existing.username === username
      ? `a user named ${quote(username)} already exists`
      : `a user named ${quote(username)} already exists, spelled ${visibleUsername(existing.username)} in the users file (usernames differing only in case, width or invisible characters are the same name)`,
  );
}

/** Read, change one user (or drop it when `change` returns null), write. Returns the old entry. */
export async function updateUser(
  settings: Settings,
  username: string,
  change: (user: StoredUser) => StoredUser | null,
): Promise<StoredUser> {
  const users = await loadUsers(settings);
  const index = indexOfUser(users, username);
  const user = users[index] as StoredUser;
  const changed = change(user);
  const next = changed ? users.with(index, changed) : users.filter((_, i) => i !== index);
  await saveUsers(settings, next);
  return user;
}
