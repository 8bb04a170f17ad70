import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { GatehouseError } from '../../../common/src/errors.js';
import { hashPassword, type PasswordVerifier } from '../domain/passwords.js';
import type { VerifyTask } from './hasher-worker.js';

/**
 * Password checks on worker threads at a lower CPU priority than the event loop (piscina).
 *
 * An argon2id check is ~10 ms of pure CPU. On libuv's thread pool (what `verify` of
 * @node-rs/argon2 uses) the checks compete with the event loop on equal terms, so a login flood
 * slows every validate down. Here each check runs on a piscina worker whose thread is reniced by
 * HASHER_NICE (piscina's `niceIncrement`, through its optional @napi-rs/nice; Linux nice values
 * are per thread; where that package is missing the workers keep the default priority): when the
 * CPU is contended, the event loop and other services win, and logins take what is left. On an
 * idle machine logins run exactly as fast as before.
 */

/**
 * Too many checks already queued: a login flood must not starve the service. Answered 503 BUSY
 * with `Retry-After: 1`, like any catalogue error.
 */
const hasherBusy = (cause: unknown) =>
  new GatehouseError('BUSY', { cause, headers: { 'Retry-After': '1' } });

/** How much the hashing threads are reniced (0 is the default; 19 the lowest priority). */
export const HASHER_NICE = 10;

/**
 * The worker module beside this one: hasher-worker.js once compiled (dist/), hasher-worker.ts when
 * run from source, where the worker threads need tsx to load it (vitest's own loader does not
 * reach worker threads; under `--import tsx` they inherit it already).
 */
function workerModule(): { filename: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  const filename = new URL(`./hasher-worker.${fromSource ? 'ts' : 'js'}`, import.meta.url).href;
  const hasTsx = process.execArgv.some((arg) => arg.includes('tsx'));
  const execArgv = fromSource && !hasTsx ? [...process.execArgv, '--import', 'tsx'] : undefined;
  return { filename, execArgv: execArgv ?? process.execArgv };
}

export interface HasherPool {
  /** How many checks run at once (one per worker). */
  readonly size: number;
  /**
   * argon2 verify of `password` against the PHC string `hash`; false for any malformed input.
   * Rejects with GatehouseError('BUSY') (Retry-After: 1) when every worker is busy and
   * `maxQueued` checks already wait.
   */
  verify(hash: string, password: string): Promise<boolean>;
}

/**
 * A pool of up to `size` workers (default: one per CPU), started on first use; each takes one
 * check at a time, and at most `maxQueued` more wait. A worker that dies fails its check and is
 * replaced. Idle workers never keep the process alive (piscina unrefs them).
 */
export function createHasherPool(
  size = Math.max(1, availableParallelism()),
  maxQueued = 64,
): HasherPool {
  const pool = new Piscina<VerifyTask, boolean>({
    ...workerModule(),
    minThreads: 0,
    maxThreads: size,
    concurrentTasksPerWorker: 1,
    maxQueue: maxQueued,
    niceIncrement: HASHER_NICE,
    // Workers live as long as the process: starting one costs more than a check.
    idleTimeout: Number.POSITIVE_INFINITY,
  });
  return {
    size,
    async verify(hash, password) {
      try {
        return (await pool.run({ hash, password })) === true;
      } catch (err) {
        // piscina's only signal for a full queue is this message (its Errors.TaskQueueAtLimit).
        if (err instanceof Error && err.message === 'Task queue is at limit') throw hasherBusy(err);
        throw err;
      }
    },
  };
}

let shared: HasherPool | null = null;

/** One pool per process, shared by every verifier (tests build many apps in one process). */
export function sharedHasherPool(): HasherPool {
  shared ??= createHasherPool();
  return shared;
}

/**
 * Checks passwords on the process's hasher pool (worker threads at a lower CPU priority than the
 * event loop, one check per CPU at a time, a bounded queue: past it, GatehouseError('BUSY'), a 503,
 * instead of an ever-growing queue).
 */
export async function createPasswordVerifier(): Promise<PasswordVerifier> {
  const pool = sharedHasherPool();
  // A real argon2id hash with our parameters, so an unknown user costs exactly what a known one does.
  const dummyHash = await hashPassword(`dummy-${Math.random()}`);

  return {
    async verify(passwordHash, password) {
      const ok = await pool.verify(passwordHash ?? dummyHash, password);
      return ok && passwordHash !== null;
    },
  };
}
