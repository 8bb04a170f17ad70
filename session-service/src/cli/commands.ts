/** The commands of `npm run users`: each checks its input with the domain, acts, and prints. */
import { hashPassword } from '../domain/passwords.js';
import { canonicalUsername, visibleUsername } from '../domain/usernames.js';
import {
  emailSchema,
  fieldProblem,
  indexUsers,
  newUser,
  parseGroupList,
  type StoredUser,
  withId,
} from '../domain/users.js';
import { expectShape, type Invocation, type Settings } from './args.js';
import { endSessions } from './end-sessions.js';
import { CliError, EXIT_FAILED, EXIT_OK } from './errors.js';
import { readNewPassword } from './password-input.js';
import { complain, printUsers, quote, say } from './print.js';
import { nameHolderInRedis } from './redis-stores.js';
import { TOKEN_COMMANDS } from './tokens.js';
import { indexOfUser, loadUsers, requireNewUsername, saveUsers, updateUser } from './users-file.js';

export type Command = (settings: Settings, invocation: Invocation) => Promise<number>;

/** The canonical form of a new username (`ＡＬＩＣＥ` → `alice`), or a refusal saying why. */
function requireValidUsername(username: string): string {
  const name = canonicalUsername(username);
  if (!name.ok) throw new CliError(name.message);
  return name.username;
}

function requireValidGroups(list: string | undefined): string[] {
  const parsed = parseGroupList(list ?? '');
  if (!parsed.ok) throw new CliError(parsed.message);
  return parsed.groups;
}

function requireValidEmail(email: string | undefined): string {
  const problem = fieldProblem(emailSchema, email ?? '');
  if (problem) throw new CliError(problem);
  return email ?? '';
}

const add: Command = async (settings, invocation) => {
  expectShape(invocation, ['groups', 'email'], 1);
  const given = invocation.positionals[0] as string;
  const username = requireValidUsername(given);
  const groups = requireValidGroups(invocation.groups);
  const email = requireValidEmail(invocation.email);
  requireNewUsername(await loadUsers(settings), username); // refuse before asking for a password
  // One username per account across every source: a users-file entry would take the name from a
  // service account or an identity-source user, which would stop working (users.ts composeUsers).
  const holder = await nameHolderInRedis(settings, username);
  if (typeof holder === 'string')
    throw new CliError(`${quote(username)} is taken: a ${holder} has that name`);
  if (holder !== null)
    complain(
      `note: ${holder.unknown}; if a service account or an identity-source user has this name, it stops working once this user is added`,
    );
  const passwordHash = await hashPassword(await readNewPassword(username));
  // Read again: the file may have changed while we waited for the password.
  const current = await loadUsers(settings);
  requireNewUsername(current, username);
  const user = newUser({ username, passwordHash, groups, email });
  await saveUsers(settings, [...current, user]);
  const as = username === given ? '' : ` as ${quote(username)}, its canonical form`;
  say(`added ${visibleUsername(given)}${as} (id ${user.id})`);
  return EXIT_OK;
};

const list: Command = async (settings, invocation) => {
  expectShape(invocation, ['json'], 0);
  const stored = await loadUsers(settings);
  // What the session-service logs when it loads the file: look-alikes, bad groups, and so on.
  for (const problem of indexUsers(stored).problems) complain(problem.message);
  printUsers(stored.map(withId), { json: invocation.json, usersFile: settings.usersFile });
  return EXIT_OK;
};

const remove: Command = async (settings, invocation) => {
  expectShape(invocation, [], 1);
  const username = invocation.positionals[0] as string;
  const removed = await updateUser(settings, username, () => null);
  say(`removed ${quote(username)}`);
  // Validate refuses sessions of removed users anyway; ending them frees Redis at once. Their
  // second factors go too: user ids are never reused, so nothing else could read them.
  return endSessions(settings, removed, { resetFactors: true });
};

/**
 * A lost authenticator app: its TOTP and recovery codes are removed and the user's sessions end
 * (whoever holds one may be who has the phone); the user signs in with the password and sets a
 * factor up again (at once when REQUIRE_SECOND_FACTOR's grace is over). The users file is not
 * touched: factors live in Redis, so Redis unreachable is a refusal (exit 1), nothing changed.
 */
const resetFactors: Command = async (settings, invocation) => {
  expectShape(invocation, [], 1);
  const username = invocation.positionals[0] as string;
  const users = await loadUsers(settings);
  const user = users[indexOfUser(users, username)] as StoredUser;
  return endSessions(settings, user, {
    resetFactors: true,
    unreachableExit: EXIT_FAILED,
    endTokens: false,
  });
};

const passwd: Command = async (settings, invocation) => {
  expectShape(invocation, [], 1);
  const username = invocation.positionals[0] as string;
  indexOfUser(await loadUsers(settings), username); // refuse before asking for a password
  const passwordHash = await hashPassword(await readNewPassword(username));
  // sessionsNotBefore: validate refuses older sessions even if ending them in Redis fails below.
  const user = await updateUser(settings, username, (u) => ({
    ...u,
    passwordHash,
    sessionsNotBefore: Date.now(),
  }));
  say(`changed the password of ${quote(username)}`);
  return endSessions(settings, user);
};

const disable: Command = async (settings, invocation) => {
  expectShape(invocation, [], 1);
  const username = invocation.positionals[0] as string;
  const user = await updateUser(settings, username, (u) => ({
    ...u,
    disabled: true,
    sessionsNotBefore: Date.now(),
  }));
  say(`disabled ${quote(username)}`);
  return endSessions(settings, user);
};

const enable: Command = async (settings, invocation) => {
  expectShape(invocation, [], 1);
  const username = invocation.positionals[0] as string;
  await updateUser(settings, username, (u) => ({ ...u, disabled: false }));
  say(`enabled ${quote(username)}`);
  return EXIT_OK;
};

export const COMMANDS: Readonly<Record<string, Command>> = {
  add,
  list,
  remove,
  passwd,
  disable,
  enable,
  'reset-factors': resetFactors,
  ...TOKEN_COMMANDS,
};
