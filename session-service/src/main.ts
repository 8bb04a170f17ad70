import { loadOrExit } from '../../common/src/config.js';
import { DEV_INTERNAL_TOKEN_FILE, loadOrCreateDevSecret } from '../../common/src/dev-secret.js';
import { createLogger } from '../../common/src/logger.js';
import { connectInBackground, createRedis, describeRedis } from '../../common/src/redis.js';
import { onShutdown } from '../../common/src/shutdown.js';
import { createPasswordVerifier } from './adapters/hasher-pool.js';
import { createLdapDirectory } from './adapters/ldap-directory.js';
import { createUsersRepository } from './adapters/users-file.js';
import { createApp } from './app.js';
import { loadSessionServiceConfig } from './config.js';

const env = process.env;
const devSecret =
  !env.SESSION_SECRET && env.NODE_ENV !== 'production'
    ? loadOrCreateDevSecret(env.DEV_SECRET_FILE ?? './data/session-secret')
    : undefined;
// The gateway reads the same file: the token that lets it (and only it) ask for signed identities.
const devInternalToken =
  !env.INTERNAL_TOKEN && env.NODE_ENV !== 'production'
    ? loadOrCreateDevSecret(DEV_INTERNAL_TOKEN_FILE)
    : undefined;
// Development only: the key that seals session records and the signing key in Redis, kept
// beside the development secret (production requires SESSION_ENCRYPTION_KEY).
const devEncryptionKey =
  !env.SESSION_ENCRYPTION_KEY && env.NODE_ENV !== 'production'
    ? loadOrCreateDevSecret(env.DEV_ENCRYPTION_KEY_FILE ?? './data/session-encryption-key')
    : undefined;
const config = loadOrExit(() =>
  loadSessionServiceConfig(
    {
      ...env,
      ...(devInternalToken ? { INTERNAL_TOKEN: devInternalToken } : {}),
      ...(devEncryptionKey ? { SESSION_ENCRYPTION_KEY: devEncryptionKey } : {}),
    },
    devSecret,
  ),
);
if (process.argv.includes('--check-config')) {
  process.stdout.write('configuration is valid\n');
  process.exit(0);
}

const logger = createLogger({ name: 'session-service', level: config.env.LOG_LEVEL });
if (devSecret)
  logger.warn('SESSION_SECRET not set: using the development secret kept under ./data/');
if (devInternalToken)
  logger.warn(`INTERNAL_TOKEN not set: using the development token in ${DEV_INTERNAL_TOKEN_FILE}`);
if (devEncryptionKey)
  logger.warn('SESSION_ENCRYPTION_KEY not set: using the development key kept under ./data/');
const redis = createRedis(
  { ...config.redis, commandTimeoutMs: config.env.REDIS_COMMAND_TIMEOUT_MS },
  logger,
);
// In the background, retried with capped backoff forever: the service starts (and /readyz says
// 503) while Redis is down, and needs no restart when it comes.
logger.info({ redis: describeRedis(config.redis) }, 'connecting to redis');
connectInBackground(redis, logger);
const users = createUsersRepository(
  config.env.USERS_FILE,
  (err) =>
    logger.error(
      { err: { message: (err as Error).message } },
      'users file unreadable; keeping the last good copy',
    ),
  // Look-alike and non-canonical usernames: one line each, every time the file is loaded.
  {
    onProblems: (problems) => {
      for (const problem of problems) logger.warn(problem, problem.message);
    },
    // Read on a thread of its own; logins and validates wait for the first load only.
    onLoad: ({ entries, changed, ms, first }) =>
      logger.info(
        { entries, changed, ms: Math.round(ms) },
        first ? 'users file loaded' : 'users file reloaded',
      ),
  },
);
const verifier = await createPasswordVerifier();
// The LDAP directory (IDENTITY_SOURCES_FILE's ldap:): its pool connects on first use.
const ldap = config.identitySources.ldap;
const directory = ldap ? createLdapDirectory(ldap, logger) : undefined;
const app = createApp({
  config,
  logger,
  redis,
  users,
  verifier,
  ...(directory ? { directory } : {}),
});
const server = app.listen(config.env.SESSION_SERVICE_PORT, config.env.SESSION_SERVICE_HOST, () => {
  const address = server.address();
  const port =
    typeof address === 'object' && address ? address.port : config.env.SESSION_SERVICE_PORT;
  // The listening line is written whatever LOG_LEVEL says (a logger of its own at info): it is
  // how an operator, and a process started on port 0, learns where the service listens.
  logger
    .child({}, { level: 'info' })
    .info(
      { port },
      `session-service listening on http://${config.env.SESSION_SERVICE_HOST}:${port}`,
    );
});
server.keepAliveTimeout = 65_000;
// Revocation streams never go idle, so the server could not drain them: end them at once.
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.on(signal, () => app.closeRevocationStreams());
onShutdown(server, logger, [
  { name: 'redis connection', run: () => redis.close() },
  ...(directory ? [{ name: 'ldap connections', run: () => directory.close() }] : []),
]);
