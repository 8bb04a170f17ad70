import { z } from 'zod';
import {
  logLevel,
  nodeEnv,
  parseConfig,
  port,
  seconds,
  trustProxy,
  url,
} from '../../common/src/config.js';

/** Secrets we ship in examples and docs: never accepted in production. */
export const KNOWN_DEFAULT_SECRETS = new Set([
  'change-me-to-a-long-random-string-of-at-least-32-characters',
  'secret$%^134',
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

export const sessionServiceSchema = z.object({
  NODE_ENV: nodeEnv,
  LOG_LEVEL: logLevel,
  SESSION_SERVICE_HOST: z.string().default('127.0.0.1'),
  SESSION_SERVICE_PORT: port(4000),
  REDIS_URL: url.default('redis://127.0.0.1:6379'),
  REDIS_PREFIX: z.string().default('gh:'),
  REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().positive().default(1000),
  SESSION_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  SESSION_SECRET_PREVIOUS: list,
  SESSION_IDLE_TIMEOUT: seconds(1800),
  SESSION_ABSOLUTE_TIMEOUT: seconds(43200),
  REMEMBER_ME_TIMEOUT: z.coerce.number().int().min(0).default(0),
  REMEMBER_ME_IDLE_TIMEOUT: seconds(7 * 24 * 3600),
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
});

/** Checks across variables, on the raw environment (reported together with field errors). */
export function crossChecks(env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  if (env.NODE_ENV === 'production') {
    if (!env.SESSION_SECRET) problems.push('SESSION_SECRET: is required when NODE_ENV=production');
    else if (KNOWN_DEFAULT_SECRETS.has(env.SESSION_SECRET)) {
      problems.push(
        'SESSION_SECRET: is a published example value; generate your own (openssl rand -base64 48)',
      );
    }
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

export interface SessionServiceConfig {
  env: SessionServiceEnv;
  /** Newest first: sign with the first, accept any (rotation). */
  secrets: string[];
  cookieName: string;
  /** true when PUBLIC_URL is https: the cookie is always Secure and takes the __Host- prefix. */
  https: boolean;
}

export function loadSessionServiceConfig(
  env: NodeJS.ProcessEnv,
  devSecret?: string,
): Readonly<SessionServiceConfig> {
  const parsed = parseConfig(sessionServiceSchema, env, crossChecks);
  const https = parsed.PUBLIC_URL?.startsWith('https:') ?? false;
  const secret = parsed.SESSION_SECRET ?? devSecret;
  if (!secret) throw new Error('no SESSION_SECRET and no development secret');
  const cookieName =
    parsed.COOKIE_NAME ?? (https && !parsed.COOKIE_DOMAIN ? '__Host-gatehouse' : 'gatehouse');
  return Object.freeze({
    env: parsed,
    secrets: [secret, ...parsed.SESSION_SECRET_PREVIOUS],
    cookieName,
    https,
  });
}
