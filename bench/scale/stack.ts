/**
 * The processes a dimension of `npm run bench -- --scale` runs (Redis, session-services,
 * gateways, upstreams), started like the rest of the benchmark (real processes on free ports,
 * production mode, warnings only) and stopped together; plus what every dimension reads from
 * them: session cookies, RSS, a Prometheus counter, the open-file limit.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { sign } from 'cookie-signature';
import { SERVICES, type ServiceProcess, startService } from '../../test/helpers/processes.js';
import { type RedisServer, startRedis } from '../../test/helpers/redis.js';

export const SCALE_SECRET = 'scale-secret-scale-secret-scale-secret-00';
/** What a deployment runs: production mode, warnings only. */
export const QUIET = { LOG_LEVEL: 'warn', NODE_ENV: 'production' };
/** A browser's user-agent: a session record carries what the login saw. */
export const BROWSER_UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

/** `gatehouse=<value>` for the session id `sid`, as express-session signs it with SCALE_SECRET. */
export const cookieOf = (sid: string) =>
  `gatehouse=${encodeURIComponent(`s:${sign(sid, SCALE_SECRET)}`)}`;

/** The session id inside a `gatehouse=s%3A<sid>.<signature>` cookie. */
export function sidOf(cookie: string): string {
  const value = decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1));
  return value.slice(2, value.lastIndexOf('.'));
}

export interface Stack {
  redis(): Promise<RedisServer>;
  sessionService(name: string, env: Record<string, string>): Promise<ServiceProcess>;
  gateway(name: string, env: Record<string, string>): Promise<ServiceProcess>;
  /** An Express hello-world (bench/hello-app.ts): the cheapest upstream. */
  hello(): Promise<ServiceProcess>;
  /** Register anything else to stop with the stack. */
  onStop(fn: () => Promise<unknown>): void;
  stop(): Promise<void>;
}

/**
 * One process starts at a time, whoever asks (a smoke run's dimensions run together): several
 * tsx compiles at once on a loaded 2-core machine miss startService's 20 s deadline. A start
 * that misses it anyway is tried once more.
 */
let queue: Promise<unknown> = Promise.resolve();
function oneAtATime<T>(fn: () => Promise<T>): Promise<T> {
  const run = queue.then(
    () => fn().catch(() => fn()),
    () => fn().catch(() => fn()),
  );
  queue = run.catch(() => {});
  return run;
}

/** Every stack not yet stopped, so an interrupted run stops what it started (stopAllStacks). */
const live = new Set<Stack>();

export async function stopAllStacks(): Promise<void> {
  for (const stack of [...live]) await stack.stop();
}

export function createStack(): Stack {
  const stops: Array<() => Promise<unknown>> = [];
  const track = (service: ServiceProcess) => {
    stops.push(() => service.stop());
    return service;
  };
  const stack: Stack = {
    async redis() {
      const redis = await startRedis();
      stops.push(() => redis.stop());
      return redis;
    },
    async sessionService(name, env) {
      return track(
        await oneAtATime(() =>
          startService({
            name,
            ...SERVICES.sessionService,
            env: { ...QUIET, SESSION_SECRET: SCALE_SECRET, ...env },
          }),
        ),
      );
    },
    async gateway(name, env) {
      return track(
        await oneAtATime(() =>
          startService({ name, ...SERVICES.gateway, env: { ...QUIET, ...env } }),
        ),
      );
    },
    async hello() {
      return track(
        await oneAtATime(() =>
          startService({
            name: 'hello',
            entry: 'bench/hello-app.ts',
            portVariable: 'PORT',
            healthPath: '/healthz',
            env: QUIET,
          }),
        ),
      );
    },
    onStop(fn) {
      stops.push(fn);
    },
    async stop() {
      live.delete(stack);
      for (const fn of stops.splice(0).reverse()) await fn().catch(() => {});
    },
  };
  live.add(stack);
  return stack;
}

/** Resident memory of a process, in bytes (0 when it is gone). */
export function rssOf(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** The soft open-file limit of a process (from /proc). */
export function openFileLimit(pid: number | string = 'self'): number {
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  return Number(/Max open files\s+(\d+)/.exec(limits)?.[1] ?? 0);
}

/**
 * Raise this process's open-file limit to `wanted` (prlimit on itself: root may raise the hard
 * limit, anyone the soft one up to the hard one), before any service starts, so every process
 * it spawns inherits it. Answers the limit in force afterwards.
 */
export function raiseOpenFiles(wanted: number): number {
  if (openFileLimit() >= wanted) return openFileLimit();
  const pid = String(process.pid);
  try {
    execFileSync('prlimit', ['--pid', pid, `--nofile=${wanted}:${wanted}`], { stdio: 'ignore' });
  } catch {
    try {
      const hard = readFileSync(`/proc/${pid}/limits`, 'utf8').match(
        /Max open files\s+\d+\s+(\d+)/,
      )?.[1];
      if (hard) execFileSync('prlimit', ['--pid', pid, `--nofile=${hard}`], { stdio: 'ignore' });
    } catch {
      // No prlimit: keep what we have, and the report says it.
    }
  }
  return openFileLimit();
}

/** The sum of a Prometheus counter's samples (all label sets) in a `/metrics` text. */
export function counterSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return sum;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Percentile `p` (0..1) of `xs` (nearest rank); 0 for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? 0;
}
