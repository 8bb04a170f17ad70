import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/processes.js';

// `<service> --check-config` (documented in docs/configuration.md, and in the image as
// `docker-compose run --rm <service> <service> --check-config`) checks the environment and exits:
// 0 with "configuration is valid", or 1 naming every problem. It never starts serving, which is
// what the exit itself proves: a service that listened would not exit at all.
const SERVICES = [
  {
    main: 'gateway/src/main.ts',
    bad: { GATEWAY_PORT: 'eighty' },
    names: 'GATEWAY_PORT',
  },
  {
    main: 'session-service/src/main.ts',
    bad: { NODE_ENV: 'production', SESSION_SECRET: 'short' },
    names: 'SESSION_SECRET',
  },
  {
    main: 'demo-app/src/main.ts',
    bad: { DEMO_APP_PORT: '99999', JWKS_URL: 'not a url' },
    names: 'DEMO_APP_PORT',
  },
] as const;

/** Runs `<main> --check-config` to its exit; several at once (each is mostly tsx compiling). */
function check(main: string, env: Record<string, string>) {
  return new Promise<{ status: number | null; stdout: string; stderr: string; error?: Error }>(
    (resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', main, '--check-config'],
        {
          cwd: ROOT,
          // No inherited settings: what the test passes is the whole environment. A service that
          // started serving would not exit, and the timeout would fail the test.
          env: { PATH: process.env.PATH ?? '', ...env },
          encoding: 'utf8',
          timeout: 20_000,
        },
        (error, stdout, stderr) =>
          resolve({
            status: error ? (typeof error.code === 'number' ? error.code : null) : 0,
            stdout,
            stderr,
            ...(error && typeof error.code !== 'number' ? { error } : {}),
          }),
      );
    },
  );
}

describe('--check-config', () => {
  it.concurrent.each(SERVICES)(
    '$main: a valid environment exits 0 without serving',
    async ({ main }) => {
      const result = await check(main, {});
      expect(result.error).toBeUndefined();
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toBe('configuration is valid\n');
      expect(result.stdout + result.stderr).not.toMatch(/listening on/);
    },
  );

  it.concurrent.each(SERVICES)(
    '$main: an invalid environment exits 1 naming the setting',
    async ({ main, bad, names }) => {
      const result = await check(main, bad);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('invalid configuration');
      expect(result.stderr).toContain(names);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    },
  );
});
