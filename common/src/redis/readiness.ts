/** Concern: is Redis there? Readiness probes, and connecting without blocking startup. */
import type { Logger } from '../logger.js';
import { isGatehouseRedis, type RedisClient } from './commands.js';
import { withDeadline } from './deadline.js';
import { RedisClosedError } from './errors.js';

/** Connect in the background: a service starts (and reports not-ready) while Redis is down. */
export function connectInBackground(client: RedisClient, logger: Logger): void {
  client.connect().catch((err: Error) => {
    if (err instanceof RedisClosedError) return; // shutting down
    logger.warn({ err: { message: err.message } }, 'redis connect failed; retrying');
  });
}

/**
 * Readiness: Redis answers PING within the command deadline (a Cluster: every master does), as
 * the client's `probe()` says. `timeoutMs` applies to clients not made by `createRedis`.
 */
export async function pingRedis(client: RedisClient, timeoutMs = 1000): Promise<boolean> {
  if (isGatehouseRedis(client)) return client.probe();
  if (!client.isReady) return false;
  try {
    return (await withDeadline(client.ping(), timeoutMs, 'PING')) === 'PONG';
  } catch {
    return false;
  }
}
