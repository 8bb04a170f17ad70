/** Concern: time limits on Redis work (command deadlines, bounded close) and reconnect backoff. */
import { RedisTimeoutError } from './errors.js';

/**
 * Retry forever with capped, jittered backoff: Redis coming back is recovered from without a
 * restart, and a crash loop never starts. `random` is there for tests.
 */
export const backoff = (retries: number, random: () => number = Math.random) =>
  Math.min(50 * 2 ** Math.min(retries, 6), 2000) + Math.floor(random() * 100);

/**
 * Reject with RedisTimeoutError when `work` has not settled within `ms`. The rejection waits for
 * the event loop's next look at the sockets (setImmediate runs after the poll phase): when the
 * process itself was too busy to read for a while (CPU starvation, a long GC), a reply that
 * arrived in time wins over the deadline that fired first.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        setImmediate(() =>
          reject(new RedisTimeoutError(`redis ${what} did not answer within ${ms} ms`)),
        ),
      ms,
    );
  });
  work.catch(() => {}); // it may still fail after the deadline; nobody is waiting then
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** Something node-redis can close politely (waits for replies) or destroy (at once). */
interface Closable {
  close(): Promise<unknown>;
  destroy(): unknown;
}

/**
 * Close within `ms`, else destroy: node-redis's close() waits for every reply first, forever if
 * Redis is frozen.
 */
export async function closeWithin(connection: Closable, ms: number): Promise<void> {
  try {
    await withDeadline(connection.close(), ms, 'close');
  } catch {
    try {
      await connection.destroy();
    } catch {
      // already closed
    }
  }
}
