import { z } from 'zod';

/** Raised when the environment does not describe a usable configuration. Lists every problem. */
export class ConfigError extends Error {
  readonly code = 'INVALID_CONFIGURATION';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

/**
 * Parse `env` with `schema` once, report every problem at once (as oauth2-proxy does) and
 * return a frozen result.
 */
export function parseConfig<S extends z.ZodType>(
  schema: S,
  env: NodeJS.ProcessEnv,
): Readonly<z.infer<S>> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const name = issue.path.join('.');
      return name ? `${name}: ${issue.message}` : issue.message;
    });
    throw new ConfigError(problems);
  }
  return Object.freeze(result.data);
}

/** A TCP port from the environment, with a default. */
export const port = (fallback: number) =>
  z.coerce.number().int().min(0).max(65535).default(fallback);

/** A positive whole number of seconds. */
export const seconds = (fallback: number) => z.coerce.number().int().positive().default(fallback);

export const logLevel = z
  .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
  .default('info');

export const nodeEnv = z.enum(['development', 'production', 'test']).default('development');

/** `TRUST_PROXY`: which peers may set X-Forwarded-* headers (Express `trust proxy` syntax). */
export const trustProxy = z
  .string()
  .default('loopback')
  .transform((value) => {
    const v = value.trim();
    if (v === 'false' || v === '') return false;
    if (v === 'true') {
      return true;
    }
    if (/^\d+$/.test(v)) return Number(v);
    return v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  });

export const url = z.string().refine((value) => {
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}, 'is not a URL');

/** Run `fn`, and on a ConfigError print it and exit 1 (used by every main.ts). */
export function loadOrExit<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
