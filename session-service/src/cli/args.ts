/** The command line and environment of `npm run users`, parsed (node:util parseArgs). */
import { parseArgs } from 'node:util';
import type { RedisConnection } from '../config.js';
import type { Lifetimes } from '../domain/sessions.js';
import { CliError } from './errors.js';

export const USAGE = `Usage: npm run users -- <command> [options]

Commands:
  add <username> [--groups a,b] [--email e]  add a user (stored in canonical form: see README "Users")
  list [--json]                              list users (never their password hashes)
  remove <username>                          remove a user, their second factors and sessions
  passwd <username>                          set a new password and end the user's sessions
  disable <username>                         refuse the user's logins and end their sessions
                                             (their second factors are kept for enable)
  enable <username>                          allow the user's logins again
  reset-factors <username>                   remove the user's second factors (authenticator
                                             app, recovery codes, security keys, passkeys)
                                             and end their sessions
                                             (remove, passwd and disable also end the user's
                                             access tokens)

Service accounts (identities for services: groups and tokens, no password):
  service-account add <name> [--groups a,b] [--description text]
  service-account list [--json]
  service-account disable <name>             refuse its tokens and end them
  service-account enable <name>
  service-account remove <name>              remove it and end its tokens

Access tokens (shown once, on stdout, when made; Gatehouse keeps only their hash):
  token create <owner> --name <name> --expires-days N [--routes a,b] [--groups a,b] [--read-only]
                                             <owner>: a service account, or a user (a personal
                                             token made by an admin); N at most TOKEN_MAX_DAYS
  token list <owner> [--json]                the owner's tokens (never the tokens themselves)
  token revoke <owner> <id>                  end one token (its id as token list shows it)

add and passwd read the password from the first line of stdin when it is not a terminal,
otherwise they ask for it twice without echoing it.

Environment:
  USERS_FILE    the users file (default ./data/users.json)
  REDIS_URL     Redis holding the sessions (default redis://127.0.0.1:6379)
  REDIS_SENTINELS, REDIS_SENTINEL_NAME, REDIS_CLUSTER_NODES, REDIS_USERNAME, REDIS_PASSWORD
                Sentinel or Cluster instead of REDIS_URL, as for the session-service
  REDIS_PREFIX  session key prefix (default gh:)
  SESSION_ENCRYPTION_KEY, SESSION_ENCRYPTION_KEY_PREVIOUS
                the session-service's keys, to seal and read token records (service-account
                add and token; outside production, when unset, the development key in
                ./data/session-encryption-key, or DEV_ENCRYPTION_KEY_FILE)
  TOKEN_MAX_DAYS  the longest expiry of a token, as for the session-service (default 90)

Exit codes: 0 done, 1 refused or failed (nothing changed; reset-factors when Redis is
  unreachable), 2 changed but the sessions could not be ended (Redis unreachable; they end at
  their timeout)
`;

export interface Settings {
  usersFile: string;
  /** Parsed when sessions are ended, so `list` and `add` never depend on the Redis variables. */
  redis: () => Readonly<RedisConnection>;
  redisPrefix: string;
  lifetimes: Lifetimes;
  /** The session-service's SESSION_ENCRYPTION_KEY (and previous ones): read when tokens are. */
  encryptionKeys: () => string[];
  /** TOKEN_MAX_DAYS, checked as the session-service checks it. */
  tokenMaxDays: () => number;
}

export interface Invocation {
  command: string | undefined;
  positionals: string[];
  groups: string | undefined;
  email: string | undefined;
  json: boolean;
  help: boolean;
  description: string | undefined;
  name: string | undefined;
  expiresDays: string | undefined;
  routes: string | undefined;
  readOnly: boolean;
}

const OPTIONS = {
  groups: { type: 'string' },
  email: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  description: { type: 'string' },
  name: { type: 'string' },
  'expires-days': { type: 'string' },
  routes: { type: 'string' },
  'read-only': { type: 'boolean' },
} as const;

export type OptionName =
  | 'groups'
  | 'email'
  | 'json'
  | 'description'
  | 'name'
  | 'expires-days'
  | 'routes'
  | 'read-only';

const given: Record<OptionName, (invocation: Invocation) => boolean> = {
  groups: (i) => i.groups !== undefined,
  email: (i) => i.email !== undefined,
  json: (i) => i.json,
  description: (i) => i.description !== undefined,
  name: (i) => i.name !== undefined,
  'expires-days': (i) => i.expiresDays !== undefined,
  routes: (i) => i.routes !== undefined,
  'read-only': (i) => i.readOnly,
};

/** Refuse options that do not belong to the command (`what`: how it is named in the message). */
export function refuseOptions(invocation: Invocation, allowed: OptionName[], what: string): void {
  for (const option of Object.keys(given) as OptionName[]) {
    if (given[option](invocation) && !allowed.includes(option))
      throw new CliError(`${what} does not take --${option}`);
  }
}

/**
 * A token id as `token list` prints it (the 43 base64url characters of a SHA-256): one in 64
 * begins with '-', and is an argument, never an option.
 */
const TOKEN_ID = /^-[A-Za-z0-9_-]{42}$/;
const HELD = (i: number) => `\u0000${i}`;

export function parseInvocation(argv: string[]): Invocation {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  // Token ids are held aside under a placeholder no one types, and put back as arguments.
  const args = argv.map((arg, i) => (TOKEN_ID.test(arg) ? HELD(i) : arg));
  try {
    parsed = parseArgs({ args, allowPositionals: true, strict: true, options: OPTIONS });
  } catch (err) {
    throw new CliError(`${(err as Error).message} (run with --help for usage)`);
  }
  const restore = <T extends string | undefined>(arg: T): T =>
    arg?.startsWith('\u0000') ? (argv[Number(arg.slice(1))] as T) : arg;
  const [command, ...positionals] = parsed.positionals.map(restore);
  return {
    command,
    positionals,
    groups: restore(parsed.values.groups),
    email: restore(parsed.values.email),
    json: parsed.values.json ?? false,
    help: parsed.values.help ?? false,
    description: restore(parsed.values.description),
    name: restore(parsed.values.name),
    expiresDays: restore(parsed.values['expires-days']),
    routes: restore(parsed.values.routes),
    readOnly: parsed.values['read-only'] ?? false,
  };
}

/** Refuse options that do not belong to the command, and a wrong number of arguments. */
export function expectShape(
  invocation: Invocation,
  allowed: Array<'groups' | 'email' | 'json'>,
  args: number,
): void {
  refuseOptions(invocation, allowed, String(invocation.command));
  if (invocation.positionals.length !== args) {
    const what = args === 0 ? 'no arguments' : 'exactly one username';
    throw new CliError(`${invocation.command} takes ${what}; run with --help for usage`);
  }
}
