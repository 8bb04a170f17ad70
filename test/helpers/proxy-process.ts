/**
 * What the proxies the tests run (nginx, Caddy, HAProxy) have in common as processes: finding the
 * binary, a fresh development certificate, running it in the foreground with what it prints kept
 * for failure messages, waiting until it listens, and stopping it. nginx.ts and proxies.ts add
 * only each proxy's configuration.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { GiveUp, waitFor } from './ports.js';
import { ROOT } from './processes.js';

/**
 * A proxy binary: `fromEnv` (the caller reads $<envVar> itself, so docs.test.ts finds where each
 * variable is read), then PATH, then the usual sbin and bin directories (nginx and haproxy live in
 * /usr/sbin, often not on PATH), then `extraDirs`. Throws when there is none: the tests that need
 * one never skip.
 */
export function resolveBinary(
  name: string,
  envVar: string,
  fromEnv: string | undefined,
  extraDirs: string[] = [],
): string {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/usr/bin',
    '/usr/local/sbin',
    '/usr/local/bin',
    ...extraDirs,
  ];
  const candidates = [fromEnv, ...dirs.map((dir) => (dir ? join(dir, name) : ''))];
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  throw new Error(`${name} not found (apt-get install ${name}, or set ${envVar} to its path)`);
}

/** A fresh self-signed certificate for localhost and 127.0.0.1 (scripts/dev-cert.sh). */
export function devCertificate(dir: string): { cert: string; key: string; ca: string } {
  execFileSync('sh', [join(ROOT, 'scripts', 'dev-cert.sh'), dir], { stdio: 'pipe' });
  const cert = join(dir, 'cert.pem');
  return { cert, key: join(dir, 'key.pem'), ca: readFileSync(cert, 'utf8') };
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface ProxyProcess {
  child: ChildProcess;
  /** What it printed, then `logFile` as far as it was written. */
  output(): string;
  /** A spawn error (no such binary, not executable), once there was one. */
  failure(): Error | undefined;
  /** SIGTERM, SIGKILL after 5 s; then `dir` is removed. */
  stop(): Promise<void>;
}

/**
 * Runs `bin args` in the foreground. With `env`, exactly that environment (plus PATH): nothing of
 * the test runner's reaches the proxy; without, the runner's. `dir` is the proxy's own temporary
 * directory, removed by stop().
 */
export function runProxyProcess(options: {
  bin: string;
  args: string[];
  dir: string;
  env?: Record<string, string>;
  /** A log the proxy writes besides what it prints (nginx's error.log). */
  logFile?: string;
}): ProxyProcess {
  let printed = '';
  const child = spawn(options.bin, options.args, {
    ...(options.env ? { env: { PATH: process.env.PATH ?? '', ...options.env } } : {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d: Buffer) => {
    printed += d.toString();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let failed: Error | undefined;
  child.once('error', (err) => {
    failed = err;
  });
  const output = () => {
    let log = '';
    if (options.logFile) {
      try {
        log = readFileSync(options.logFile, 'utf8');
      } catch {
        // not written yet
      }
    }
    return `${printed}${log}`;
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        // SIGTERM: nginx's fast shutdown (SIGQUIT would wait for open keep-alive connections).
        child.kill('SIGTERM');
      });
    }
    rmSync(options.dir, { recursive: true, force: true });
  };
  return { child, output, failure: () => failed, stop };
}

/**
 * Waits (10 s) until every one of `ports` accepts connections. When it does not, or the process
 * failed or exited first, stops it and throws with what it printed and `context` (e.g. the
 * rendered configuration).
 */
export async function untilListening(
  name: string,
  proxy: ProxyProcess,
  ports: number[],
  context = '',
): Promise<void> {
  try {
    await waitFor(
      async () => {
        // it will not listen: stop waiting at once
        const failed = proxy.failure();
        if (failed) throw new GiveUp(`${name} did not start: ${failed.message}`);
        const { exitCode } = proxy.child;
        if (exitCode !== null) throw new GiveUp(`${name} exited with ${exitCode}`);
        for (const port of ports) if (!(await portAnswers(port))) return false;
        return true;
      },
      10_000,
      `${name} to listen on ${ports.join(', ')}`,
    );
  } catch (err) {
    const message = `${(err as Error).message}\n${proxy.output()}${context}`;
    await proxy.stop();
    throw new Error(message);
  }
}
