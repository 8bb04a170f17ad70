/**
 * Manage the users file: `npm run users -- <command>`. See USAGE below.
 *
 * Exit codes: 0 done; 1 refused or failed (nothing changed); 2 the users file changed but the
 * user's sessions could not be ended (Redis unreachable), so they last until their timeout.
 */
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { createLogger } from '../../../common/src/logger.js';
import { createRedis, describeRedis } from '../../../common/src/redis.js';
import { loadRedisConnection, type RedisConnection } from '../config.js';
import { checkNewPassword, hashPassword, PASSWORD_MAX } from '../domain/passwords.js';
import { createSessionStore, type Lifetimes } from '../domain/sessions.js';
import { canonicalUsername, usernameKey, visibleUsername } from '../domain/usernames.js';
import {
  indexUsers,
  newUser,
  readUsersFile,
  type StoredUser,
  withId,
  writeUsersFile,
} from '../domain/users.js';

const USAGE = `Usage: npm run users -- <command> [options]

Commands:
  add <username> [--groups a,b] [--email e]  add a user (stored in canonical form: see README "Users")
  list [--json]                              list users (never their password hashes)
  remove <username>                          remove a user and end their sessions
  passwd <username>                          set a new password and end the user's sessions
  disable <username>                         refuse the user's logins and end their sessions
  enable <username>                          allow the user's logins again

add and passwd read the password from the first line of stdin when it is not a terminal,
otherwise they ask for it twice without echoing it.

Environment:
  USERS_FILE    the users file (default ./data/users.json)
  REDIS_URL     Redis holding the sessions (default redis://127.0.0.1:6379)
  REDIS_SENTINELS, REDIS_SENTINEL_NAME, REDIS_CLUSTER_NODES, REDIS_USERNAME, REDIS_PASSWORD
                Sentinel or Cluster instead of REDIS_URL, as for the session-service
  REDIS_PREFIX  session key prefix (default gh:)

Exit codes: 0 done, 1 refused or failed (nothing changed),
  2 changed but the sessions could not be ended (Redis unreachable; they end at their timeout)
`;

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_SESSIONS_NOT_ENDED = 2;
const EXIT_CANCELLED = 130;

const REDIS_CONNECT_TIMEOUT_MS = 2000;
/** Overall deadline for ending sessions: a frozen Redis must not hang the CLI. */
const REDIS_DEADLINE_MS = 5000;
/** More bytes than any accepted password can take (1024 characters of up to 4 bytes each). */
const STDIN_LIMIT_BYTES = PASSWORD_MAX * 4 + 2;
const EMAIL_MAX = 254;
/** The WHATWG HTML "valid e-mail address" pattern (what browsers check for type=email). */
const EMAIL_PATTERN =
  /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
/** Group names travel comma-joined in identity headers. */
const BAD_GROUP_CHAR = /[\s,\p{Cc}\p{Cf}]/u;

/** A refusal or failure with a one-line message for stderr. */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = EXIT_FAILED,
  ) {
    super(message);
  }
}

interface Settings {
  usersFile: string;
  /** Parsed when sessions are ended, so `list` and `add` never depend on the Redis variables. */
  redis: () => Readonly<RedisConnection>;
  redisPrefix: string;
  lifetimes: Lifetimes;
}

interface Invocation {
  command: string | undefined;
  positionals: string[];
  groups: string | undefined;
  email: string | undefined;
  json: boolean;
  help: boolean;
}

type Command = (settings: Settings, invocation: Invocation) => Promise<number>;

// --- configuration and arguments -----------------------------------------------------------

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

function settingsFrom(env: NodeJS.ProcessEnv): Settings {
  // Only revokeAll uses the store here, and it ignores lifetimes; pass the service's values.
  const idleSeconds = positiveInt(env.SESSION_IDLE_TIMEOUT, 1800);
  const absoluteSeconds = positiveInt(env.SESSION_ABSOLUTE_TIMEOUT, 43200);
  return {
    usersFile: env.USERS_FILE || './data/users.json',
    // An empty REDIS_URL means the default, as it always has here.
    redis: () => loadRedisConnection({ ...env, REDIS_URL: env.REDIS_URL || undefined }),
    redisPrefix: env.REDIS_PREFIX ?? 'gh:',
    lifetimes: {
      idleSeconds,
      absoluteSeconds,
      rememberIdleSeconds: idleSeconds,
      rememberAbsoluteSeconds: absoluteSeconds,
    },
  };
}

function parseInvocation(argv: string[]): Invocation {
  let parsed: ReturnType<typeof parseArgsStrict>;
  try {
    parsed = parseArgsStrict(argv);
  } catch (err) {
    throw new CliError(`${(err as Error).message} (run with --help for usage)`);
  }
  const [command, ...positionals] = parsed.positionals;
  return {
    command,
    positionals,
    groups: parsed.values.groups,
    email: parsed.values.email,
    json: parsed.values.json ?? false,
    help: parsed.values.help ?? false,
  };
}

function parseArgsStrict(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      groups: { type: 'string' },
      email: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/** Refuse options that do not belong to the command, and a wrong number of arguments. */
function expectShape(
  invocation: Invocation,
  allowed: Array<'groups' | 'email' | 'json'>,
  args: number,
) {
  for (const option of ['groups', 'email', 'json'] as const) {
    const given = option === 'json' ? invocation.json : invocation[option] !== undefined;
    if (given && !allowed.includes(option)) {
      throw new CliError(`${invocation.command} does not take --${option}`);
    }
  }
  if (invocation.positionals.length !== args) {
    const what = args === 0 ? 'no arguments' : 'exactly one username';
    throw new CliError(`${invocation.command} takes ${what}; run with --help for usage`);
  }
}

// --- validation ----------------------------------------------------------------------------

function quote(value: string): string {
  return JSON.stringify(value);
}

function parseGroups(value: string | undefined): string[] {
  if (value === undefined || value === '') return [];
  const groups = value.split(',');
  for (const group of groups) {
    if (group === '') throw new CliError('group names must not be empty (check for stray commas)');
    if (BAD_GROUP_CHAR.test(group)) {
      throw new CliError(
        `group ${quote(group)} must not contain commas, whitespace or control characters`,
      );
    }
  }
  return [...new Set(groups)];
}

function parseEmail(value: string | undefined): string {
  if (value === undefined || value === '') return '';
  if (value.length > EMAIL_MAX || !EMAIL_PATTERN.test(value)) {
    throw new CliError(`${quote(value)} does not look like an email address`);
  }
  return value;
}

/** The canonical form of a new username (`ＡＬＩＣＥ` → `alice`), or a refusal saying why. */
function requireValidUsername(username: string): string {
  const name = canonicalUsername(username);
  if (!name.ok) throw new CliError(name.message);
  return name.username;
}

function requireValidPassword(password: string): void {
  const problem = checkNewPassword(password);
  if (problem) throw new CliError(problem);
}

// --- password input ------------------------------------------------------------------------

/** Strip exactly one trailing "\n" or "\r\n", nothing else. */
function stripLineEnd(line: string): string {
  if (line.endsWith('\r\n')) return line.slice(0, -2);
  if (line.endsWith('\n')) return line.slice(0, -1);
  return line;
}

/** The bytes of stdin up to and including the first newline (or to EOF). */
async function readFirstLineBytes(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    const newline = buf.indexOf(0x0a);
    chunks.push(newline >= 0 ? buf.subarray(0, newline + 1) : buf);
    size += buf.length;
    if (newline >= 0) break;
    if (size > STDIN_LIMIT_BYTES) {
      throw new CliError(`password must be at most ${PASSWORD_MAX} characters`);
    }
  }
  return Buffer.concat(chunks);
}

async function readPasswordFromPipe(stream: Readable): Promise<string> {
  const bytes = await readFirstLineBytes(stream);
  try {
    return stripLineEnd(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch {
    throw new CliError('the password on stdin is not valid UTF-8');
  }
}

/** Apply keys typed in raw mode to `value`; `done` once Enter (or Ctrl-D) ends the line. */
function applyKeys(value: string, keys: string): { value: string; done: boolean } {
  // Arrow keys and other escape sequences arrive as one chunk: ignore them whole.
  if (keys.startsWith('\u001b')) return { value, done: false };
  let current = value;
  for (const key of keys) {
    if (key === '\u0003') throw new CliError('cancelled', EXIT_CANCELLED);
    if (key === '\r' || key === '\n' || key === '\u0004') return { value: current, done: true };
    if (key === '\u007f' || key === '\b') current = [...current].slice(0, -1).join('');
    else if (key >= ' ') current += key;
  }
  return { value: current, done: false };
}

/** Ask on the terminal without echoing what is typed. */
function promptHidden(prompt: string): Promise<string> {
  const { stdin, stderr } = process;
  // Raw mode before the prompt: keys typed the moment it shows must not be echoed.
  stdin.setEncoding('utf8');
  stdin.setRawMode(true);
  stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (err: unknown) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (keys: string) => {
      try {
        const next = applyKeys(value, keys);
        value = next.value;
        if (next.done) finish(null);
      } catch (err) {
        finish(err);
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

async function promptPasswordTwice(username: string): Promise<string> {
  const first = await promptHidden(`New password for ${quote(username)}: `);
  requireValidPassword(first);
  const second = await promptHidden('Repeat the password: ');
  if (first !== second) throw new CliError('the two passwords do not match');
  return first;
}

/** A valid new password from stdin (piped) or the terminal (asked twice, hidden). */
async function readNewPassword(username: string): Promise<string> {
  const password = process.stdin.isTTY
    ? await promptPasswordTwice(username)
    : await readPasswordFromPipe(process.stdin);
  requireValidPassword(password);
  return password;
}

// --- the users file ------------------------------------------------------------------------

function describeError(err: unknown): string {
  if (err instanceof z.ZodError) {
    const issue = err.issues[0];
    return issue ? `${issue.path.join('.') || 'file'}: ${issue.message}` : 'invalid content';
  }
  return err instanceof Error ? err.message : String(err);
}

async function loadUsers(settings: Settings): Promise<StoredUser[]> {
  try {
    return await readUsersFile(settings.usersFile);
  } catch (err) {
    throw new CliError(`cannot read the users file ${settings.usersFile}: ${describeError(err)}`);
  }
}

async function saveUsers(settings: Settings, users: StoredUser[]): Promise<void> {
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
function indexOfUser(users: StoredUser[], username: string): number {
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
function requireNewUsername(users: StoredUser[], username: string): void {
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
async function updateUser(
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

// --- sessions ------------------------------------------------------------------------------

function withDeadline<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** End every session of the user. Throws when Redis cannot be reached or does not answer. */
async function revokeSessions(
  settings: Settings,
  connection: RedisConnection,
  userId: string,
): Promise<number> {
  const redis = createRedis(
    {
      ...connection,
      commandTimeoutMs: REDIS_CONNECT_TIMEOUT_MS,
      connectTimeoutMs: REDIS_CONNECT_TIMEOUT_MS,
      reconnect: false,
    },
    // Errors are reported through the rejected promises below.
    createLogger({ name: 'users', level: 'silent' }),
  );
  const store = createSessionStore({
    redis,
    lifetimes: settings.lifetimes,
    prefix: settings.redisPrefix,
  });
  try {
    return await withDeadline(
      REDIS_DEADLINE_MS,
      redis.connect().then(() => store.revokeAll(userId)),
    );
  } finally {
    if (redis.isOpen) await redis.destroy();
  }
}

function causeOf(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  if (cause instanceof Error) return cause.message || (cause as NodeJS.ErrnoException).code || '';
  return String(cause);
}

/** End the user's sessions and say so; exit code 2 when Redis could not be reached. */
async function endSessions(settings: Settings, user: StoredUser): Promise<number> {
  let connection: Readonly<RedisConnection>;
  try {
    connection = settings.redis();
  } catch (err) {
    console.error(`could not end the sessions of ${quote(user.username)}: ${describeError(err)}`);
    return EXIT_SESSIONS_NOT_ENDED;
  }
  try {
    const ended = await revokeSessions(settings, connection, withId(user).id);
    console.log(`ended ${ended} session${ended === 1 ? '' : 's'} of ${quote(user.username)}`);
    return EXIT_OK;
  } catch (err) {
    console.error(
      `could not end the sessions of ${quote(user.username)}: Redis unreachable at ` +
        `${describeRedis(connection)}; they end at their timeout`,
    );
    const reason = causeOf(err);
    if (reason) console.error(`  (${reason})`);
    return EXIT_SESSIONS_NOT_ENDED;
  }
}

// --- commands ------------------------------------------------------------------------------

const add: Command = async (settings, invocation) => {
  expectShape(invocation, ['groups', 'email'], 1);
  const given = invocation.positionals[0] as string;
  const username = requireValidUsername(given);
  const groups = parseGroups(invocation.groups);
  const email = parseEmail(invocation.email);
  requireNewUsername(await loadUsers(settings), username); // refuse before asking for a password
  const passwordHash = await hashPassword(await readNewPassword(username));
  // Read again: the file may have changed while we waited for the password.
  const current = await loadUsers(settings);
  requireNewUsername(current, username);
  const user = newUser({ username, passwordHash, groups, email });
  await saveUsers(settings, [...current, user]);
  const as = username === given ? '' : ` as ${quote(username)}, its canonical form`;
  console.log(`added ${visibleUsername(given)}${as} (id ${user.id})`);
  return EXIT_OK;
};

/** Terminal output must not carry control characters from a hand-edited file. */
function printable(value: string): string {
  return value.replace(
    /[\p{Cc}\p{Cf}]/gu,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
  );
}

function listLine(user: StoredUser): string {
  const groups = user.groups.length > 0 ? user.groups.join(',') : '-';
  const state = user.disabled ? 'disabled' : 'enabled';
  const fields = [user.username, `groups=${groups}`, `email=${user.email || '-'}`, state];
  return fields.map(printable).join('\t');
}

const list: Command = async (settings, invocation) => {
  expectShape(invocation, ['json'], 0);
  const stored = await loadUsers(settings);
  // What the session-service logs when it loads the file: look-alikes, non-canonical names.
  for (const problem of indexUsers(stored).problems) console.error(problem.message);
  const users = stored.map(withId);
  if (invocation.json) {
    const out = users.map(({ id, username, groups, email, disabled }) => {
      return { id, username, groups, email, disabled };
    });
    console.log(JSON.stringify(out, null, 2));
    return EXIT_OK;
  }
  if (users.length === 0) console.error(`no users in ${settings.usersFile}`);
  for (const user of users) console.log(listLine(user));
  return EXIT_OK;
};

const remove: Command = async (settings, invocation) => {
  expectShape(invocation, [], 1);
  const username = invocation.positionals[0] as string;
  const removed = await updateUser(settings, username, () => null);
  console.log(`removed ${quote(username)}`);
  // Validate refuses sessions of removed users anyway; ending them frees Redis at once.
  return endSessions(settings, removed);
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
  console.log(`changed the password of ${quote(username)}`);
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
  console.log(`disabled ${quote(username)}`);
  return endSessions(settings, user);
};

const enable: Command = async (settings, invocation) => {
  expectShape(invocation, [], 1);
  const username = invocation.positionals[0] as string;
  await updateUser(settings, username, (u) => ({ ...u, disabled: false }));
  console.log(`enabled ${quote(username)}`);
  return EXIT_OK;
};

const COMMANDS: Record<string, Command> = { add, list, remove, passwd, disable, enable };

// --- entry point ---------------------------------------------------------------------------

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  try {
    const invocation = parseInvocation(argv);
    if (invocation.help) {
      process.stdout.write(USAGE);
      return EXIT_OK;
    }
    const command = invocation.command === undefined ? undefined : COMMANDS[invocation.command];
    if (!command) {
      if (invocation.command !== undefined) {
        console.error(`unknown command ${quote(invocation.command)}`);
      }
      process.stderr.write(USAGE);
      return EXIT_FAILED;
    }
    return await command(settingsFrom(env), invocation);
  } catch (err) {
    if (err instanceof CliError) {
      console.error(err.message);
      return err.exitCode;
    }
    console.error(`failed: ${describeError(err)}`);
    return EXIT_FAILED;
  }
}

process.exitCode = await main(process.argv.slice(2), process.env);
