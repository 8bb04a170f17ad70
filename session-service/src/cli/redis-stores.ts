/**
 * The users CLI's Redis: a one-shot connection under a deadline (a frozen Redis must not hang a
 * command), and the stores the service-account, token and `add` commands use on it, built with
 * the session-service's own domain code.
 */
import { GatehouseError } from '../../../common/src/errors.js';
import {
  createOneShotRedis,
  describeRedis,
  type RedisClient,
  withDeadline,
} from '../../../common/src/redis.js';
import type { RedisConnection } from '../config.js';
import {
  type AccessTokens,
  createAccessTokens,
  createTokenRevoker,
} from '../domain/access-tokens.js';
import { createExternalUsers, type ExternalUsers } from '../domain/external-users.js';
import { publishRevocations } from '../domain/revocation-channel.js';
import { createSealer } from '../domain/sealing.js';
import { createServiceAccounts } from '../domain/service-accounts.js';
import type { Settings } from './args.js';
import { CliError, describeError } from './errors.js';

/** How long the CLI waits to connect to Redis, and for all of a command's work there. */
export const REDIS_CONNECT_TIMEOUT_MS = 2000;
export const REDIS_DEADLINE_MS = 5000;

/** Why a Redis call failed, in a few words (the cause's message or errno code). */
export function causeOf(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  if (cause instanceof Error) return cause.message || (cause as NodeJS.ErrnoException).code || '';
  return String(cause);
}

export interface Stores {
  redis: RedisClient;
  serviceAccounts: ReturnType<typeof createServiceAccounts>;
  revoker: ReturnType<typeof createTokenRevoker>;
  /** Only with the sealing keys (keys: true). */
  tokens: AccessTokens;
  externalUsers: ExternalUsers;
}

/**
 * Run `work` on a one-shot Redis connection, under a deadline. Refusals of the domain become
 * CLI refusals; Redis unreachable says where it was looked for.
 */
export async function withStores<T>(
  settings: Settings,
  what: string,
  options: { keys: boolean },
  work: (stores: Stores) => Promise<T>,
): Promise<T> {
  const keys = options.keys ? settings.encryptionKeys() : [];
  let connection: Readonly<RedisConnection>;
  try {
    connection = settings.redis();
  } catch (err) {
    throw new CliError(`could not ${what}: ${describeError(err)}`);
  }
  const redis = createOneShotRedis(connection, REDIS_CONNECT_TIMEOUT_MS);
  const prefix = settings.redisPrefix;
  const onRevoked = (ids: readonly string[]) => publishRevocations(redis, prefix, ids);
  const unsealable = () => {
    throw new Error('no encryption key');
  };
  const sealerOf = (purpose: 'access-token' | 'external-user') =>
    keys.length > 0
      ? createSealer(keys, purpose)
      : { keyId: '', seal: unsealable, open: unsealable };
  const stores: Stores = {
    redis,
    serviceAccounts: createServiceAccounts({ redis, prefix }),
    revoker: createTokenRevoker({ redis, prefix, onRevoked }),
    tokens: createAccessTokens({ redis, prefix, sealer: sealerOf('access-token'), onRevoked }),
    externalUsers: createExternalUsers({
      redis,
      prefix,
      sealer: sealerOf('external-user'),
      retentionMs: 1,
    }),
  };
  try {
    return await withDeadline(
      (async () => {
        await redis.connect();
        return work(stores);
      })(),
      REDIS_DEADLINE_MS,
      what,
    );
  } catch (err) {
    if (err instanceof CliError) throw err;
    if (err instanceof GatehouseError && err.code !== 'SESSION_STORE_UNAVAILABLE')
      throw new CliError(err.code === 'USERNAME_TAKEN' ? 'that name is taken' : err.message);
    const reason = causeOf(err);
    throw new CliError(
      `could not ${what}: Redis unreachable at ${describeRedis(connection)}${reason ? ` (${reason})` : ''}`,
    );
  } finally {
    if (redis.isOpen) await redis.destroy();
  }
}

/**
 * Which account in Redis holds `username` (a canonical name): a service account's or an identity
 * source's, or null. Redis unreachable: `unknown`, for `users add` to say it could not look.
 */
export async function nameHolderInRedis(
  settings: Settings,
  username: string,
): Promise<'service account' | 'identity-source user' | null | { unknown: string }> {
  try {
    return await withStores(settings, 'look the name up', { keys: false }, async (s) => {
      if (await s.serviceAccounts.get(username)) return 'service account';
      if ((await s.externalUsers.idOfUsername(username)) !== null) return 'identity-source user';
      return null;
    });
  } catch (err) {
    if (err instanceof CliError) return { unknown: err.message };
    throw err;
  }
}
