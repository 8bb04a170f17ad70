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
  /** Checks across variables, run on the raw environment so they are reported alongside field errors. */
  rawChecks: (env: NodeJS.ProcessEnv) => string[] = () => [],
): Readonly<z.infer<S>> {
  const result = schema.safeParse(env);
  const problems = result.success
    ? []
    : result.error.issues.map((issue) => {
        const name = issue.path.join('.');
        return name ? `${name}: ${issue.message}` : issue.message;
      });
  for (const problem of rawChecks(env)) if (!problems.includes(problem)) problems.push(problem);
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return Object.freeze(result.data);
}

/** A TCP port from the environment, with a default. */
export const port = (fallback: number) =>
  z.coerce
    .number({ error: 'must be a port number' })
    .int('must be a port number')
    .min(0)
    .max(65535)
    .default(fallback);

/** A positive whole number of seconds. */
export const seconds = (fallback: number) =>
  z.coerce
    .number({ error: 'must be a whole number of seconds' })
    .int('must be a whole number of seconds')
    .positive('must be a positive number of seconds')
    .default(fallback);

/** `true`/`false` (also 1/0, yes/no, on/off) from the environment. */
export const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'], {
      message: 'must be true or false',
    })
    .default(fallback ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes' || v === 'on');

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
