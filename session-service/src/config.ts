import { z } from 'zod';
import {
  ConfigError,
  flag,
  logLevel,
  nodeEnv,
  parseConfig,
  port,
  seconds,
  trustProxy,
  url,
} from '../../common/src/config.js';
import {
  clusterNodeUrl,
  parseHostPort,
  type RedisCredentials,
  type RedisTopology,
} from '../../common/src/redis.js';
import type { Lifetimes } from './domain/session-repository.js';
import { type IdentitySources, loadIdentitySources } from './identity-sources.js';

/** Secrets we ship in examples and docs: never accepted in production. */
export const KNOWN_DEFAULT_SECRETS = new Set([
  'change-me-to-a-long-random-string-of-at-least-32-characters',
  'secret$%^134',
  'change-me-to-another-long-random-string-of-32-characters-or-more',
  'change-me-to-a-third-long-random-string-of-32-characters-or-more',
]);

const list = z
  .string()
  .default('')
  .transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** A comma-separated list whose entries each pass `parse` (null: not valid, reported). */
const parsedList = <T>(parse: (entry: string) => T | null, what: string) =>
  list.transform((entries, ctx) => {
    const values: T[] = [];
    for (const entry of entries) {
      const value = parse(entry);
      if (value === null) ctx.addIssue({ code: 'custom', message: `${entry} is not ${what}` });
      else values.push(value);
    }
    return values;
  });

/** Unset and empty are the same: `REDIS_PASSWORD=` in an env file sets nothing. */
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === '' ? undefined : v));

/** Where Redis is: at most one of REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES. */
const redisEnvShape = {
  /** Standalone Redis; redis://127.0.0.1:6379 when no topology is set. */
  REDIS_URL: z.preprocess((v) => (v === '' ? undefined : v), url.optional()),
  REDIS_SENTINELS: parsedList(parseHostPort, 'host:port'),
  REDIS_SENTINEL_NAME: optionalText,
  REDIS_CLUSTER_NODES: parsedList(clusterNodeUrl, 'host:port or a redis:// URL'),
  REDIS_USERNAME: optionalText,
  REDIS_PASSWORD: optionalText,
};
const redisEnvSchema = z.object(redisEnvShape);

/** Checks across the Redis variables, on the raw environment. */
function redisCrossChecks(env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const set = (name: string) => (env[name] ?? '').trim() !== '';
  const chosen = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'].filter(set);
  if (chosen.length > 1) {
    problems.push(
      `REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES: set only one, they choose the Redis topology (found ${chosen.join(' and ')})`,
    );
  }
  if (set('REDIS_SENTINELS') && !set('REDIS_SENTINEL_NAME')) {
    problems.push(
      'REDIS_SENTINEL_NAME: is required with REDIS_SENTINELS (the master name the sentinels monitor)',
    );
  }
  if (set('REDIS_SENTINEL_NAME') && !set('REDIS_SENTINELS')) {
    problems.push('REDIS_SENTINEL_NAME: only applies with REDIS_SENTINELS');
  }
  if (set('REDIS_USERNAME') && !set('REDIS_PASSWORD')) {
    problems.push('REDIS_USERNAME: needs REDIS_PASSWORD');
  }
  return problems;
}

export type RedisConnection = RedisTopology & RedisCredentials;

function redisConnectionOf(env: z.infer<typeof redisEnvSchema>): RedisConnection {
  const credentials: RedisCredentials = {
    ...(env.REDIS_USERNAME ? { username: env.REDIS_USERNAME } : {}),
    ...(env.REDIS_PASSWORD ? { password: env.REDIS_PASSWORD } : {}),
  };
  if (env.REDIS_SENTINELS.length > 0) {
    const name = env.REDIS_SENTINEL_NAME ?? '';
    return { sentinel: { name, nodes: env.REDIS_SENTINELS }, ...credentials };
  }
  if (env.REDIS_CLUSTER_NODES.length > 0) {
    return { cluster: { nodes: env.REDIS_CLUSTER_NODES }, ...credentials };
  }
  return { url: env.REDIS_URL ?? 'redis://127.0.0.1:6379', ...credentials };
}

/** Only the Redis variables (for tools such as the users CLI), validated as the service does. */
export function loadRedisConnection(env: NodeJS.ProcessEnv): Readonly<RedisConnection> {
  return Object.freeze(redisConnectionOf(parseConfig(redisEnvSchema, env, redisCrossChecks)));
}

export const sessionServiceSchema = z.object({
  NODE_ENV: nodeEnv,
  LOG_LEVEL: logLevel,
  SESSION_SERVICE_HOST: z.string().default('127.0.0.1'),
  SESSION_SERVICE_PORT: port(4000),
  ...redisEnvShape,
  REDIS_PREFIX: z.string().default('gh:'),
  REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().positive().default(1000),
  SESSION_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  SESSION_SECRET_PREVIOUS: list,
  /** Seals session records and the signing key in Redis (domain/sealing.ts); never in Redis. */
  SESSION_ENCRYPTION_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
  /** Older keys, still accepted for reading (rotation); comma-separated. */
  SESSION_ENCRYPTION_KEY_PREVIOUS: parsedList(
    (entry) => (entry.length >= 32 ? entry : null),
    'a key of at least 32 characters',
  ),
  SESSION_IDLE_TIMEOUT: seconds(1800),
  SESSION_ABSOLUTE_TIMEOUT: seconds(43200),
  REMEMBER_ME_TIMEOUT: z.coerce.number().int().min(0).default(0),
  REMEMBER_ME_IDLE_TIMEOUT: seconds(7 * 24 * 3600),
  /** Sessions one user may have; a login past it ends their least recently active. 0: no limit. */
  SESSIONS_PER_USER_MAX: z.coerce.number().int().min(0).default(100),
  USERS_FILE: z.string().default('./data/users.json'),
  TRUST_PROXY: trustProxy,
  PUBLIC_URL: url.optional(),
  COOKIE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/, 'may hold letters, digits, _ . - only')
    .optional(),
  COOKIE_DOMAIN: z.string().optional(),
  ALLOWED_REDIRECT_HOSTS: list,
  ADMIN_TOKEN: z.string().min(32, 'must be at least 32 characters').optional(),
  LOGIN_BODY_LIMIT: z.string().default('16kb'),
  /** Login throttle limits (domain/throttle.ts ThrottleLimits); windows stay as documented there. */
  LOGIN_THROTTLE_PAIR_FAILURES: z.coerce.number().int().positive().default(5),
  LOGIN_THROTTLE_ACCOUNT_FAILURES: z.coerce.number().int().positive().default(50),
  /** Attempts per client address per minute. */
  LOGIN_THROTTLE_ADDRESS_ATTEMPTS: z.coerce.number().int().positive().default(20),
  LOGIN_THROTTLE_ADDRESS_FAILURES: z.coerce.number().int().positive().default(100),
  /**
   * Bearer token of trusted callers (gateways, the nginx auth subrequest) on /internal/validate
   * (the only way to a signed identity) and /internal/revocations. Required in production; in
   * development main.ts makes one under ./data/ that the gateway reads too.
   */
  INTERNAL_TOKEN: z.string().min(32, 'must be at least 32 characters').optional(),
  /** Every user must have a second factor (TOTP): after SECOND_FACTOR_GRACE_DAYS, no session without. */
  REQUIRE_SECOND_FACTOR: flag(false),
  /** Days from a user's first sign-in under REQUIRE_SECOND_FACTOR during which they may skip enrolling. */
  SECOND_FACTOR_GRACE_DAYS: z.coerce
    .number({ error: 'must be a whole number of days' })
    .int('must be a whole number of days')
    .min(0, 'must be 0 or more days')
    .max(365, 'must be at most 365 days')
    .default(7),
  /**
   * The longest expiry an access token may have (personal or service account), in days. Every
   * token has an expiry (never 0): a leaked token stops working by itself.
   */
  TOKEN_MAX_DAYS: z.coerce
    .number({ error: 'must be a whole number of days' })
    .int('must be a whole number of days')
    .min(1, 'must be 1 or more days (every token expires)')
    .max(3650, 'must be at most 3650 days')
    .default(90),
  /** Identity sources besides the users file: OpenID Connect providers, LDAP (identity-sources.ts). */
  IDENTITY_SOURCES_FILE: optionalText,
  /** The name authenticator apps show for Gatehouse's TOTP entries. */
  TOTP_ISSUER: z
    .string()
    .min(1)
    .max(64)
    .refine((v) => !v.includes(':'), 'must not contain ":"')
    .default('Gatehouse'),
});

/** Checks across variables, on the raw environment (reported together with field errors). */
export function crossChecks(env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = redisCrossChecks(env);
  if (env.NODE_ENV === 'production') {
    if (!env.SESSION_SECRET) problems.push('SESSION_SECRET: is required when NODE_ENV=production');
    else if (KNOWN_DEFAULT_SECRETS.has(env.SESSION_SECRET)) {
      problems.push(
        'SESSION_SECRET: is a published example value; generate your own (openssl rand -base64 48)',
      );
    }
    if (!env.INTERNAL_TOKEN) problems.push('INTERNAL_TOKEN: is required when NODE_ENV=production');
    else if (KNOWN_DEFAULT_SECRETS.has(env.INTERNAL_TOKEN)) {
      problems.push(
        'INTERNAL_TOKEN: is a published example value; generate your own (openssl rand -base64 48)',
      );
    }
  }
  if (env.NODE_ENV === 'production') {
    const key = env.SESSION_ENCRYPTION_KEY;
    if (!key) problems.push('SESSION_ENCRYPTION_KEY: is required when NODE_ENV=production');
    else if (KNOWN_DEFAULT_SECRETS.has(key)) {
      problems.push(
        'SESSION_ENCRYPTION_KEY: is a published example value; generate your own (openssl rand -base64 32)',
      );
    }
  }
  if (env.SESSION_ENCRYPTION_KEY && env.SESSION_ENCRYPTION_KEY === env.SESSION_SECRET) {
    problems.push('SESSION_ENCRYPTION_KEY: must differ from SESSION_SECRET');
  }
  const idle = Number(env.SESSION_IDLE_TIMEOUT ?? 1800);
  const absolute = Number(env.SESSION_ABSOLUTE_TIMEOUT ?? 43200);
  if (idle > absolute)
    problems.push('SESSION_IDLE_TIMEOUT: must not exceed SESSION_ABSOLUTE_TIMEOUT');
  if (env.COOKIE_DOMAIN && env.COOKIE_NAME?.startsWith('__Host-')) {
    problems.push('COOKIE_NAME: a __Host- cookie cannot carry COOKIE_DOMAIN');
  }
  return problems;
}

export type SessionServiceEnv = z.infer<typeof sessionServiceSchema>;

/** The session lifetimes the variables ask for; "remember me" off means the plain ones. */
export function sessionLifetimes(env: SessionServiceEnv): Lifetimes {
  const remember = env.REMEMBER_ME_TIMEOUT > 0;
  return {
    idleSeconds: env.SESSION_IDLE_TIMEOUT,
    absoluteSeconds: env.SESSION_ABSOLUTE_TIMEOUT,
    rememberIdleSeconds: remember
      ? Math.min(env.REMEMBER_ME_IDLE_TIMEOUT, env.REMEMBER_ME_TIMEOUT)
      : env.SESSION_IDLE_TIMEOUT,
    rememberAbsoluteSeconds: remember ? env.REMEMBER_ME_TIMEOUT : env.SESSION_ABSOLUTE_TIMEOUT,
  };
}

export interface SessionServiceConfig {
  env: SessionServiceEnv;
  /** Where Redis is (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES) and how to log in. */
  redis: RedisConnection;
  /** Newest first: sign with the first, accept any (rotation). */
  secrets: string[];
  /**
   * Newest first: seal with the first, open with any (rotation). Empty only outside production
   * when SESSION_ENCRYPTION_KEY is unset (main.ts then supplies the development key).
   */
  encryptionKeys: string[];
  cookieName: string;
  /** true when PUBLIC_URL is https: the cookie is always Secure and takes the __Host- prefix. */
  https: boolean;
  /** IDENTITY_SOURCES_FILE, read and checked (none: the users file alone). */
  identitySources: IdentitySources;
}

export function loadSessionServiceConfig(
  env: NodeJS.ProcessEnv,
  devSecret?: string,
): Readonly<SessionServiceConfig> {
  // Every problem at once: the variables' and the identity sources file's together.
  const problems: string[] = [];
  const collect = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
      return undefined;
    }
  };
  const maybeParsed = collect(() => parseConfig(sessionServiceSchema, env, crossChecks));
  const identitySources = collect(() => loadIdentitySources(env));
  if (identitySources && identitySources.oidc.length > 0 && !env.PUBLIC_URL)
    problems.push(
      'PUBLIC_URL: is required with OpenID Connect providers (their callback is <PUBLIC_URL>/auth/oidc/<id>/callback)',
    );
  if (problems.length > 0 || !maybeParsed || !identitySources) throw new ConfigError(problems);
  const parsed = maybeParsed;
  const https = parsed.PUBLIC_URL?.startsWith('https:') ?? false;
  const secret = parsed.SESSION_SECRET ?? devSecret;
  if (!secret) throw new Error('no SESSION_SECRET and no development secret');
  const cookieName =
    parsed.COOKIE_NAME ?? (https && !parsed.COOKIE_DOMAIN ? '__Host-gatehouse' : 'gatehouse');
  return Object.freeze({
    env: parsed,
    redis: redisConnectionOf(parsed),
    secrets: [secret, ...parsed.SESSION_SECRET_PREVIOUS],
    encryptionKeys: parsed.SESSION_ENCRYPTION_KEY
      ? [parsed.SESSION_ENCRYPTION_KEY, ...parsed.SESSION_ENCRYPTION_KEY_PREVIOUS]
      : [],
    cookieName,
    https,
    identitySources,
  });
}
