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

add and passwd read the password from the first line of stdin when it is not a terminal,
otherwise they ask for it twice without echoing it.

Environment:
  USERS_FILE    the users file (default ./data/users.json)
  REDIS_URL     Redis holding the sessions (default redis://127.0.0.1:6379)
  REDIS_SENTINELS, REDIS_SENTINEL_NAME, REDIS_CLUSTER_NODES, REDIS_USERNAME, REDIS_PASSWORD
                Sentinel or Cluster instead of REDIS_URL, as for the session-service
  REDIS_PREFIX  session key prefix (default gh:)

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
}

export interface Invocation {
  command: string | undefined;
  positionals: string[];
  groups: string | undefined;
  email: string | undefined;
  json: boolean;
  help: boolean;
}

const OPTIONS = {
  groups: { type: 'string' },
  email: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export function parseInvocation(argv: string[]): Invocation {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
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

/** Refuse options that do not belong to the command, and a wrong number of arguments. */
export function expectShape(
  invocation: Invocation,
  allowed: Array<'groups' | 'email' | 'json'>,
  args: number,
): void {
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
