import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Password checks on worker threads at a lower CPU priority than the event loop.
 *
 * An argon2id check is ~10 ms of pure CPU. On libuv's thread pool (what `verify` of
 * @node-rs/argon2 uses) the checks compete with the event loop on equal terms, so a login flood
 * slows every validate down. Here each check runs in a worker whose thread is reniced (Linux:
 * the nice value is per thread, found through /proc/thread-self; elsewhere the worker simply
 * keeps the default priority): when the CPU is contended, the event loop and other services win,
 * and logins take what is left. On an idle machine logins run exactly as fast as before.
 */

/** Thrown when too many checks are already queued: a login flood must not starve the service. */
export class HasherBusyError extends Error {
  readonly code = 'HASHER_BUSY';
}

/** The nice value of the hashing threads (0 is the default; 19 the lowest priority). */
export const HASHER_NICE = 10;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readlinkSync } = require('node:fs');
const { setPriority } = require('node:os');
const { verifySync } = require(workerData.argon2);
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isInteger(tid) && tid > 0) setPriority(tid, workerData.nice);
} catch {}
parentPort.on('message', ({ id, hash, password }) => {
  let ok = false;
  try { ok = verifySync(hash, password); } catch { ok = false; }
  parentPort.postMessage({ id, ok });
});
`;

interface Job {
  id: number;
  hash: string;
  password: string;
  resolve: (ok: boolean) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
}

export interface HasherPool {
  /** How many checks run at once (one per worker). */
  readonly size: number;
  /**
   * argon2 verify of `password` against the PHC string `hash`; false for any malformed input.
   * Rejects with HasherBusyError when every worker is busy and `maxQueued` checks already wait.
   */
  verify(hash: string, password: string): Promise<boolean>;
}

/**
 * A fixed pool of `size` workers (default: one per CPU), started on first use; each takes one
 * check at a time, and at most `maxQueued` more wait. A worker that dies fails its check and is
 * replaced on the next one. Workers never keep the process alive.
 */
export function createHasherPool(
  size = Math.max(1, availableParallelism()),
  maxQueued = 64,
): HasherPool {
  const argon2 = createRequire(import.meta.url).resolve('@node-rs/argon2');
  const slots: Slot[] = [];
  const queue: Job[] = [];
  let nextId = 1;

  function start(): Slot {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { argon2, nice: HASHER_NICE },
    });
    worker.unref();
    const slot: Slot = { worker, job: null };
    worker.on('message', (message: { id: number; ok: boolean }) => {
      const job = slot.job;
      if (!job || job.id !== message.id) return;
      slot.job = null;
      job.resolve(message.ok === true);
      dispatch();
    });
    const fail = (err: Error) => {
      const job = slot.job;
      slot.job = null;
      const i = slots.indexOf(slot);
      if (i >= 0) slots.splice(i, 1);
      job?.reject(err);
      dispatch();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`password hasher worker exited (${code})`)));
    slots.push(slot);
    return slot;
  }

  function dispatch() {
    while (queue.length > 0) {
      const slot = slots.find((s) => s.job === null) ?? (slots.length < size ? start() : null);
      if (!slot) return;
      const job = queue.shift() as Job;
      slot.job = job;
      slot.worker.postMessage({ id: job.id, hash: job.hash, password: job.password });
    }
  }

  return {
    size,
    verify(hash, password) {
      // (the queue holds checks only while every worker is busy)
      if (queue.length >= maxQueued)
        return Promise.reject(new HasherBusyError('password hasher is busy'));
      return new Promise<boolean>((resolve, reject) => {
        queue.push({ id: nextId++, hash, password, resolve, reject });
        dispatch();
      });
    },
  };
}

let shared: HasherPool | null = null;

/** One pool per process, shared by every verifier (tests build many apps in one process). */
export function sharedHasherPool(): HasherPool {
  shared ??= createHasherPool();
  return shared;
}
