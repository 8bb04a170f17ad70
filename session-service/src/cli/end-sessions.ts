/** Ending a user's sessions in Redis after remove, passwd and disable. */
import { createOneShotRedis, describeRedis, withDeadline } from '../../../common/src/redis.js';
import type { RedisConnection } from '../config.js';
import { createRedisSessionRepository } from '../domain/session-repository-redis.js';
import { type StoredUser, withId } from '../domain/users.js';
import type { Settings } from './args.js';
import { describeError, EXIT_OK, EXIT_SESSIONS_NOT_ENDED } from './errors.js';
import { complain, printSessionsEnded, quote } from './print.js';

const REDIS_CONNECT_TIMEOUT_MS = 2000;
/** Overall deadline for ending sessions: a frozen Redis must not hang the CLI. */
const REDIS_DEADLINE_MS = 5000;

/** End every session of the user. Throws when Redis cannot be reached or does not answer. */
async function revokeSessions(
  settings: Settings,
  connection: RedisConnection,
  userId: string,
): Promise<number> {
  const redis = createOneShotRedis(connection, REDIS_CONNECT_TIMEOUT_MS);
  const sessions = createRedisSessionRepository({
    redis,
    lifetimes: settings.lifetimes,
    prefix: settings.redisPrefix,
  });
  try {
    return await withDeadline(
      redis.connect().then(() => sessions.deleteUserSessions(userId)),
      REDIS_DEADLINE_MS,
      'ending the sessions',
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
export async function endSessions(settings: Settings, user: StoredUser): Promise<number> {
  let connection: Readonly<RedisConnection>;
  try {
    connection = settings.redis();
  } catch (err) {
    complain(`could not end the sessions of ${quote(user.username)}: ${describeError(err)}`);
    return EXIT_SESSIONS_NOT_ENDED;
  }
  try {
    printSessionsEnded(user.username, await revokeSessions(settings, connection, withId(user).id));
    return EXIT_OK;
  } catch (err) {
    complain(
      `could not end the sessions of ${quote(user.username)}: Redis unreachable at ` +
        `${describeRedis(connection)}; they end at their timeout`,
    );
    const reason = causeOf(err);
    if (reason) complain(`  (${reason})`);
    return EXIT_SESSIONS_NOT_ENDED;
  }
}
