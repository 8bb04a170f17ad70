import type { Server, ServerResponse } from 'node:http';
import type { Logger } from './logger.js';

/** What to close after the server has stopped, with a name for the logs. */
export type Cleanup = (() => Promise<unknown> | unknown) | { name: string; run: () => unknown };

export interface ShutdownOptions {
  /** How long in-flight requests may take to finish before their connections are closed. */
  graceMs?: number;
  /** How long each cleanup may take (closing Redis on a frozen server must not hang the exit). */
  cleanupTimeoutMs?: number;
  /** Told when shutdown starts (before the server stops accepting). */
  onStart?: () => void;
}

/**
 * Let the logger write what it holds before exiting (our loggers write synchronously, but one
 * given an asynchronous destination would lose its last lines). At most 1 s.
 */
function flush(logger: Logger): Promise<void> {
  const flushable = logger as Partial<{ flush(cb: (err?: Error) => void): void }>;
  if (typeof flushable.flush !== 'function') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    try {
      flushable.flush?.(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/**
 * Graceful shutdown on SIGTERM/SIGINT:
 * 1. stop accepting connections (new ones are refused) and close idle keep-alive connections;
 * 2. let in-flight requests finish, bounded by `graceMs`: each answer then carries
 *    `Connection: close`, so a kept-alive client does not hold the server open; past the grace
 *    period the remaining connections are closed;
 * 3. run the cleanups in order (close Redis), each bounded by `cleanupTimeoutMs`;
 * 4. exit 0.
 * A second signal during shutdown changes nothing (Ctrl-C under `npm start` sends two).
 */
export function onShutdown(
  server: Server,
  logger: Logger,
  cleanups: Cleanup[],
  options: ShutdownOptions | number = {},
): void {
  const {
    graceMs = 10_000,
    cleanupTimeoutMs = 5_000,
    onStart,
  } = typeof options === 'number' ? { graceMs: options } : options;
  let stopping = false;
  const inFlight = new Set<ServerResponse>();

  // First listener: before the app answers (a quick answer sends its headers synchronously).
  server.prependListener('request', (_req, res: ServerResponse) => {
    if (stopping && !res.headersSent) res.setHeader('Connection', 'close');
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      // its connection is idle now: close it rather than wait for the keep-alive timeout
      if (stopping) setImmediate(() => server.closeIdleConnections());
    });
  });

  const runCleanup = async (cleanup: Cleanup, index: number) => {
    const name = typeof cleanup === 'function' ? `cleanup ${index + 1}` : cleanup.name;
    const run = typeof cleanup === 'function' ? cleanup : cleanup.run;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(run),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`did not finish within ${cleanupTimeoutMs} ms`)),
            cleanupTimeoutMs,
          );
        }),
      ]);
      if (typeof cleanup !== 'function') logger.info(`${name} closed`);
    } catch (err) {
      logger.warn({ err: { message: (err as Error).message } }, `${name}: cleanup failed`);
    } finally {
      clearTimeout(timer);
    }
  };

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, inFlight: inFlight.size }, 'shutting down');
    try {
      onStart?.();
    } catch (err) {
      logger.warn({ err: { message: (err as Error).message } }, 'shutdown hook failed');
    }
    for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
    const force = setTimeout(() => {
      logger.warn({ inFlight: inFlight.size }, 'grace period over; closing remaining connections');
      server.closeAllConnections();
    }, graceMs);
    force.unref();
    server.close(async () => {
      clearTimeout(force);
      for (const [index, cleanup] of cleanups.entries()) await runCleanup(cleanup, index);
      logger.info('stopped');
      await flush(logger);
      process.exit(0);
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
