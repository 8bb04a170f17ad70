import type { RedisClient } from '../../common/src/redis.js';
import { createRedisClient } from '../../common/src/redis.js';
import { createApp } from '../../session-service/src/app.js';
import { loadSessionServiceConfig } from '../../session-service/src/config.js';
import { createPasswordVerifier } from '../../session-service/src/domain/passwords.js';
import { createUsersRepository } from '../../session-service/src/domain/users.js';
import { silentLogger } from './logger.js';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123';

/** A session-service app (createApp) on real dependencies: real Redis, real users file. */
export async function buildSessionService(options: {
  redisUrl: string;
  usersFile: string;
  env?: Record<string, string>;
}) {
  const config = loadSessionServiceConfig({
    NODE_ENV: 'test',
    REDIS_URL: options.redisUrl,
    USERS_FILE: options.usersFile,
    SESSION_SECRET: TEST_SECRET,
    ...(options.env ?? {}),
  });
  const redis: RedisClient = createRedisClient({ url: options.redisUrl }, silentLogger);
  await redis.connect();
  const app = createApp({
    config,
    logger: silentLogger,
    redis,
    users: createUsersRepository(options.usersFile),
    verifier: await createPasswordVerifier(),
  });
  return { app, config, redis, close: () => redis.close() };
}
