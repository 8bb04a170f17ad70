import { type ProcessResult, runTsx } from './run-process.js';

export type CliResult = ProcessResult;

/**
 * Runs `npm run users` as a real process (node + tsx, from the repository root): our environment
 * with `env` on top (a variable set to undefined is removed, e.g. an inherited REDIS_URL), stdin a
 * pipe holding `input` (empty when not given), killed after `timeoutMs`.
 */
export function runUsersCli(
  args: string[],
  options: { env: Record<string, string | undefined>; input?: string; timeoutMs?: number },
): Promise<CliResult> {
  return runTsx('session-service/src/cli/users.ts', args, {
    env: { ...process.env, ...options.env },
    ...(options.input === undefined ? {} : { input: options.input }),
    timeoutMs: options.timeoutMs ?? 15_000,
  });
}
