/**
 * Manage the users file: `npm run users -- <command>` (usage in args.ts). This file maps an
 * invocation to a command and its outcome to an exit code, and reads the environment: args.ts
 * parses, commands.ts acts through the domain (users.ts: the rules), print.ts prints.
 *
 * Exit codes: 0 done; 1 refused or failed (nothing changed); 2 the users file changed but the
 * user's sessions could not be ended (Redis unreachable), so they last until their timeout.
 */
import { readFileSync } from 'node:fs';
import { loadRedisConnection } from '../config.js';
import { parseInvocation, type Settings, USAGE } from './args.js';
import { COMMANDS } from './commands.js';
import { CliError, describeError, EXIT_FAILED, EXIT_OK } from './errors.js';
import { complain, quote } from './print.js';

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/**
 * The session-service's sealing keys: SESSION_ENCRYPTION_KEY and the previous ones; outside
 * production, when unset, the development key the session-service keeps (never made here: a
 * key the service does not have would seal records it cannot read).
 */
function encryptionKeysFrom(env: NodeJS.ProcessEnv): string[] {
  const previous = (env.SESSION_ENCRYPTION_KEY_PREVIOUS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (env.SESSION_ENCRYPTION_KEY) return [env.SESSION_ENCRYPTION_KEY, ...previous];
  const file = env.DEV_ENCRYPTION_KEY_FILE ?? './data/session-encryption-key';
  if (env.NODE_ENV !== 'production') {
    try {
      const key = readFileSync(file, 'utf8').trim();
      if (key.length >= 32) return [key, ...previous];
    } catch {
      // missing: said below
    }
  }
  throw new CliError(
    env.NODE_ENV === 'production'
      ? "SESSION_ENCRYPTION_KEY: set it to the session-service's key (tokens are sealed with it)"
      : `SESSION_ENCRYPTION_KEY: set it to the session-service's key, or start the session-service once so that it makes the development key in ${file}`,
  );
}

/** TOKEN_MAX_DAYS as the session-service reads it: whole days, 1 to 3650, default 90. */
function tokenMaxDaysFrom(env: NodeJS.ProcessEnv): number {
  const raw = env.TOKEN_MAX_DAYS?.trim() || '90';
  const days = Number(raw);
  if (!/^\d+$/.test(raw) || days < 1 || days > 3650)
    throw new CliError('TOKEN_MAX_DAYS: must be a whole number of days from 1 to 3650');
  return days;
}

/** The environment, read here only (as a service reads it in main.ts). */
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
    encryptionKeys: () => encryptionKeysFrom(env),
    tokenMaxDays: () => tokenMaxDaysFrom(env),
  };
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  try {
    const invocation = parseInvocation(argv);
    if (invocation.help) {
      process.stdout.write(USAGE);
      return EXIT_OK;
    }
    const command = invocation.command === undefined ? undefined : COMMANDS[invocation.command];
    if (!command) {
      if (invocation.command !== undefined)
        complain(`unknown command ${quote(invocation.command)}`);
      process.stderr.write(USAGE);
      return EXIT_FAILED;
    }
    return await command(settingsFrom(env), invocation);
  } catch (err) {
    if (err instanceof CliError) {
      complain(err.message);
      return err.exitCode;
    }
    complain(`failed: ${describeError(err)}`);
    return EXIT_FAILED;
  }
}

process.exitCode = await main(process.argv.slice(2), process.env);
