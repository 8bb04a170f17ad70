/** Concern: building the connection for the configured topology (standalone, Sentinel, Cluster). */
import { createLogger, type Logger } from '../logger.js';
import { createGatehouseRedis } from './client.js';
import { createClusterBackend } from './cluster.js';
import type { GatehouseRedis } from './commands.js';
import type { RedisOptions } from './options.js';
import { createSentinelBackend } from './sentinel.js';
import { createStandaloneBackend } from './standalone.js';
import { createSubscriber } from './subscriber.js';

/**
 * A Redis connection for the topology in `options` (standalone, Sentinel or Cluster) with the same
 * fail-fast behaviour on all three: no offline queue, a per-command deadline, reconnects with
 * capped backoff, and an 'error' listener that logs at most once a second.
 */
export function createRedis(options: RedisOptions, logger: Logger): GatehouseRedis {
  const timeoutMs = options.commandTimeoutMs ?? 1000;
  const backend =
    'sentinel' in options
      ? createSentinelBackend(options, timeoutMs, logger)
      : 'cluster' in options
        ? createClusterBackend(options, timeoutMs, logger)
        : createStandaloneBackend(options, timeoutMs, logger);
  const client = createGatehouseRedis(backend, {
    timeoutMs,
    reconnect: options.reconnect !== false,
    subscriber: () => createSubscriber(options, logger),
  });
  let lastErrorLog = 0;
  client.on('error', (err: Error) => {
    // Without an 'error' listener node-redis errors crash the process. Log at most once a second.
    const now = Date.now();
    if (now - lastErrorLog > 1000) {
      lastErrorLog = now;
      logger.warn({ err: { message: err.message } }, 'redis error');
    }
  });
  return client;
}

/**
 * A connection for one short job (the users CLI ending sessions, the doctor's probe): no
 * reconnects, `timeoutMs` for connecting and for each command, and no log lines: every failure
 * reaches the caller as a rejection.
 */
export function createOneShotRedis(connection: RedisOptions, timeoutMs: number): GatehouseRedis {
  return createRedis(
    { ...connection, reconnect: false, commandTimeoutMs: timeoutMs, connectTimeoutMs: timeoutMs },
    createLogger({ name: 'redis', level: 'silent' }),
  );
}

/** The original name of `createRedis`, from when only standalone Redis was supported. */
export const createRedisClient = createRedis;
