import type { Server } from 'node:http';
import type { Logger } from './logger.js';

/**
 * Graceful shutdown on SIGTERM/SIGINT: stop accepting, let in-flight requests finish (bounded by
 * `graceMs`), run the cleanups (close Redis), exit 0.
 */
export function onShutdown(
  server: Server,
  logger: Logger,
  cleanups: Array<() => Promise<unknown> | unknown>,
  graceMs = 10_000,
): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.warn('grace period over; closing remaining connections');
      server.closeAllConnections();
    }, graceMs);
    force.unref();
    server.close(async () => {
      for (const cleanup of cleanups) {
        try {
          await cleanup();
        } catch (err) {
          logger.warn({ err }, 'cleanup failed');
        }
      }
      clearTimeout(force);
      logger.info('stopped');
      process.exit(0);
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
