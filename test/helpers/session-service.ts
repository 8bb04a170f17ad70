import signature from 'cookie-signature';
import request from 'supertest';
import type { Logger } from '../../common/src/logger.js';
import { createRedis, type RedisClient } from '../../common/src/redis.js';
import { createPasswordVerifier } from '../../session-service/src/adapters/hasher-pool.js';
import { createLdapDirectory } from '../../session-service/src/adapters/ldap-directory.js';
import { createUsersRepository } from '../../session-service/src/adapters/users-file.js';
import { createApp } from '../../session-service/src/app.js';
import { loadSessionServiceConfig } from '../../session-service/src/config.js';
import type { PasswordVerifier } from '../../session-service/src/domain/passwords.js';
import type { ThrottleLimits } from '../../session-service/src/domain/throttle.js';
import { silentLogger } from './logger.js';
import { TEST_ENCRYPTION_KEY, TEST_INTERNAL_TOKEN } from './processes.js';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123';

/** A session-service app (createApp) on real dependencies: real Redis, real users file. */
export async function buildSessionService(options: {
  /** Standalone Redis. Leave it out for a Sentinel or Cluster given in `env` (REDIS_SENTINELS…). */
  redisUrl?: string;
  /** A client to use as it is (any topology); the caller connects and closes it. */
  redis?: RedisClient;
  usersFile: string;
  env?: Record<string, string>;
  /** Overrides of the real login throttle's limits (keeps tests that log in often fast). */
  throttleLimits?: Partial<ThrottleLimits>;
  logger?: Logger;
  /** The password verifier to use (default: the real one, createPasswordVerifier). */
  verifier?: PasswordVerifier;
  /** Overrides of the second-factor code throttle's limits. */
  codeThrottleLimits?: Partial<ThrottleLimits>;
  /** The service's clock for codes, pending logins, step-ups and the enrolment grace. */
  now?: () => number;
}) {
  const config = loadSessionServiceConfig({
    NODE_ENV: 'test',
    ...(options.redisUrl ? { REDIS_URL: options.redisUrl } : {}),
    USERS_FILE: options.usersFile,
    SESSION_SECRET: TEST_SECRET,
    INTERNAL_TOKEN: TEST_INTERNAL_TOKEN,
    SESSION_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
    ...(options.env ?? {}),
  });
  const logger = options.logger ?? silentLogger;
  const redis = options.redis ?? createRedis(config.redis, logger);
  if (!options.redis) await redis.connect();
  // The LDAP directory of IDENTITY_SOURCES_FILE's ldap:, as main.ts builds it.
  const ldap = config.identitySources.ldap;
  const directory = ldap ? createLdapDirectory(ldap, logger) : undefined;
  const app = createApp({
    config,
    logger,
    redis,
    ...(directory ? { directory } : {}),
    users: createUsersRepository(options.usersFile),
    verifier: options.verifier ?? (await createPasswordVerifier()),
    ...(options.throttleLimits ? { throttleLimits: options.throttleLimits } : {}),
    ...(options.codeThrottleLimits ? { codeThrottleLimits: options.codeThrottleLimits } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  return {
    app,
    config,
    redis,
    close: async () => {
      await directory?.close();
      if (!options.redis) await redis.close();
    },
  };
}

/**
 * The real password verifier (argon2id on the hasher pool), counting the checks it is asked for:
 * what a test reads to prove a request was answered without any hash, or with exactly one.
 */
export async function countingVerifier(): Promise<PasswordVerifier & { readonly checks: number }> {
  const real = await createPasswordVerifier();
  let checks = 0;
  return {
    get checks() {
      return checks;
    },
    verify(passwordHash, password) {
      checks++;
      return real.verify(passwordHash, password);
    },
  };
}

/** A session-service app as buildSessionService makes it (app, config, redis, close). */
export type SessionServiceApp = Awaited<ReturnType<typeof buildSessionService>>;

/** Throttle limits high enough that a test logging in many times from 127.0.0.1 is never throttled. */
export const NO_THROTTLE: Partial<ThrottleLimits> = {
  pairFailures: 1_000,
  accountFailures: 1_000,
  addressAttempts: 100_000,
  addressFailures: 100_000,
};

/** The Set-Cookie line of the cookie `name`, if the answer sets it. */
export function setCookieLine(
  setCookie: string[] | string | undefined,
  name = 'gatehouse',
): string | undefined {
  return ([] as string[]).concat(setCookie ?? []).find((c) => c.startsWith(`${name}=`));
}

/** `name=value` of the cookie `name`, ready for a Cookie header ('' when it is not set). */
export function cookiePairOf(setCookie: string[] | string | undefined, name = 'gatehouse'): string {
  return setCookieLine(setCookie, name)?.split(';')[0] ?? '';
}

/** The session id inside an express-session cookie (`s:<id>.<hmac>`, URL-encoded). */
export function sidOf(setCookie: string[] | string | undefined, name = 'gatehouse'): string {
  const value = decodeURIComponent(cookiePairOf(setCookie, name).slice(name.length + 1));
  return value.startsWith('s:') ? value.slice(2, value.lastIndexOf('.')) : '';
}

/** A cookie value for `sid` signed like express-session signs it (with TEST_SECRET by default). */
export function signedSessionCookie(sid: string, secret = TEST_SECRET): string {
  return encodeURIComponent(`s:${signature.sign(sid, secret)}`);
}

/** POST /auth/logout with JSON and the cookie pair `cookie`, through supertest (204 when it ends a session). */
export function jsonLogout(app: Parameters<typeof request>[0], cookie: string) {
  return request(app)
    .post('/auth/logout')
    .set('cookie', cookie)
    .set('content-type', 'application/json')
    .send('{}');
}
