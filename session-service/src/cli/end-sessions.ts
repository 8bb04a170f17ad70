/**
 * Ending a user's sessions in Redis after remove, passwd and disable (and reset-factors), and
 * their access tokens (not after reset-factors: a lost phone is no leaked token).
 */
import { createOneShotRedis, describeRedis, withDeadline } from '../../../common/src/redis.js';
import type { RedisConnection } from '../config.js';
import { createTokenRevoker } from '../domain/access-tokens.js';
import { createRedisFactorRepository } from '../domain/factors-redis.js';
import { publishRevocations } from '../domain/revocation-channel.js';
import { createRedisSessionRepository } from '../domain/session-repository-redis.js';
import { type StoredUser, withId } from '../domain/users.js';
import type { Settings } from './args.js';
import { describeError, EXIT_OK, EXIT_SESSIONS_NOT_ENDED } from './errors.js';
import { complain, printSessionsEnded, printTokensEnded, quote, say } from './print.js';
import { causeOf, REDIS_CONNECT_TIMEOUT_MS, REDIS_DEADLINE_MS } from './redis-stores.js';

/**
 * Remove the user's second factors first when `resetFactors` (then a failure leaves no session
 * ended for nothing), then end every session of the user. Throws when Redis cannot be reached or
 * does not answer.
 */
async function revokeSessions(
  settings: Settings,
  connection: RedisConnection,
  userId: string,
  resetFactors: boolean,
  endTokens: boolean,
): Promise<{ ended: number; hadFactor: boolean; tokens: number }> {
  const redis = createOneShotRedis(connection, REDIS_CONNECT_TIMEOUT_MS);
  const sessions = createRedisSessionRepository({
    redis,
    lifetimes: settings.lifetimes,
    prefix: settings.redisPrefix,
  });
  const factors = createRedisFactorRepository({ redis, prefix: settings.redisPrefix });
  // Published as the session-service publishes: every gateway drops the tokens from its cache.
  const tokens = createTokenRevoker({
    redis,
    prefix: settings.redisPrefix,
    onRevoked: (ids) => publishRevocations(redis, settings.redisPrefix, ids),
  });
  try {
    return await withDeadline(
      (async () => {
        await redis.connect();
        const hadFactor = resetFactors ? await factors.removeAllFactors(userId) : false;
        const ended = await sessions.deleteUserSessions(userId);
        return { ended, hadFactor, tokens: endTokens ? await tokens.revokeAll(userId) : 0 };
      })(),
      REDIS_DEADLINE_MS,
      resetFactors ? 'removing the second factors' : 'ending the sessions',
    );
  } finally {
    if (redis.isOpen) await redis.destroy();
  }
}

/**
 * End the user's sessions and say so; exit code 2 when Redis could not be reached. With
 * `resetFactors` (reset-factors, remove) the user's second factors are removed first: when Redis
 * cannot be reached nothing is removed, and `unreachableExit` says what that means for the command.
 */
export async function endSessions(
  settings: Settings,
  user: StoredUser,
  options: { resetFactors?: boolean; unreachableExit?: number; endTokens?: boolean } = {},
): Promise<number> {
  const resetFactors = options.resetFactors ?? false;
  const endTokens = options.endTokens ?? true;
  const unreachable = options.unreachableExit ?? EXIT_SESSIONS_NOT_ENDED;
  const what = resetFactors ? 'remove the second factors' : 'end the sessions';
  let connection: Readonly<RedisConnection>;
  try {
    connection = settings.redis();
  } catch (err) {
    complain(`could not ${what} of ${quote(user.username)}: ${describeError(err)}`);
    return unreachable;
  }
  try {
    const done = await revokeSessions(
      settings,
      connection,
      withId(user).id,
      resetFactors,
      endTokens,
    );
    if (resetFactors)
      say(
        done.hadFactor
          ? `removed the second factors of ${quote(user.username)} (authenticator app and recovery codes)`
          : `${quote(user.username)} had no second factor`,
      );
    printSessionsEnded(user.username, done.ended);
    if (endTokens) printTokensEnded(user.username, done.tokens);
    return EXIT_OK;
  } catch (err) {
    complain(
      `could not ${what} of ${quote(user.username)}: Redis unreachable at ` +
        `${describeRedis(connection)}` +
        (resetFactors ? '' : '; they end at their timeout'),
    );
    const reason = causeOf(err);
    if (reason) complain(`  (${reason})`);
    return unreachable;
  }
}
