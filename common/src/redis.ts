import { createClient } from 'redis';
import type { Logger } from './logger.js';

export type RedisClient = ReturnType<typeof createClient>;

export interface RedisOptions {
  url: string;
  /** Per-command deadline in ms: a frozen Redis must fail requests, not hang them. */
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/**
 * A node-redis client that fails fast instead of queueing: with the offline queue on, commands
 * issued while Redis is down wait for the reconnect and requests hang (node-redis #2079), so a
 * gateway would hang instead of answering 503.
 */
export function createRedisClient(options: RedisOptions, logger: Logger): RedisClient {
  const client = createClient({
    url: options.url,
    disableOfflineQueue: true,
    commandsQueueMaxLength: 10_000,
    commandOptions: { timeout: options.commandTimeoutMs ?? 1000 },
    pingInterval: 5000,
    socket: {
      connectTimeout: options.connectTimeoutMs ?? 2000,
      keepAlive: true,
      noDelay: true,
      // Retry forever with capped, jittered backoff: Redis coming back is recovered from
      // without a restart, and a crash loop never starts.
      reconnectStrategy: (retries: number) =>
        Math.min(50 * 2 ** Math.min(retries, 6), 2000) + Math.floor(Math.random() * 100),
    },
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
  client.on('ready', () => logger.info('redis ready'));
  return client;
}

/** Connect in the background: a service starts (and reports not-ready) while Redis is down. */
export function connectInBackground(client: RedisClient, logger: Logger): void {
  client.connect().catch((err: Error) => {
    logger.warn({ err: { message: err.message } }, 'redis connect failed; retrying');
  });
}

export async function pingRedis(client: RedisClient): Promise<boolean> {
  if (!client.isReady) return false;
  try {
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  }
}
