import { spawn } from 'node:child_process';
import { ROOT } from './processes.js';

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr as they came, interleaved. */
  output: string;
}

/**
 * Runs `command args` (in the repository root unless `cwd` says otherwise) until it exits, stdin
 * a pipe holding `input` (empty when not given), and answers its exit code and what it printed.
 * `env` is its whole environment. After `timeoutMs` it is sent `killSignal` (SIGKILL by default;
 * SIGINT lets a program stop its own children first).
 */
export function runToExit(
  command: string,
  args: string[],
  options: {
    env: NodeJS.ProcessEnv;
    cwd?: string;
    input?: string;
    timeoutMs: number;
    killSignal?: NodeJS.Signals;
  },
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: options.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const result: ProcessResult = { code: null, stdout: '', stderr: '', output: '' };
    child.stdout.on('data', (d: Buffer) => {
      result.stdout += d.toString();
      result.output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      result.stderr += d.toString();
      result.output += d.toString();
    });
    const timer = setTimeout(() => child.kill(options.killSignal ?? 'SIGKILL'), options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ ...result, code });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** `node --import tsx <entry> ...args`, the way the services and scripts run from source. */
export function runTsx(
  entry: string,
  args: string[],
  options: Omit<Parameters<typeof runToExit>[2], 'timeoutMs'> & { timeoutMs?: number },
): Promise<ProcessResult> {
  return runToExit(process.execPath, ['--import', 'tsx', entry, ...args], {
    timeoutMs: 20_000,
    ...options,
  });
}
