/** Concern: the pub/sub connection (revocation events) beside the command connection. */
import { createClient, createCluster, createSentinel } from 'redis';
import type { Logger } from '../logger.js';
import { isGatehouseRedis, type RedisClient } from './commands.js';
import { clusterOptions, nodeClientOptions, sentinelOptions } from './node-options.js';
import type { RedisOptions } from './options.js';

/**
 * A connection in subscriber mode (pub/sub) to the same Redis as a RedisClient. PUBLISH reaches
 * every subscriber on standalone Redis, Sentinel (through the master) and Cluster (the bus
 * forwards it to every node), so one channel serves all three.
 */
export interface RedisSubscriber {
  /** Subscribe to `channel`; resolves once Redis confirmed. A reconnect resubscribes by itself. */
  subscribe(channel: string, listener: (message: string) => void): Promise<void>;
  /**
   * The connection broke or moved (error, reconnect, failover): whatever was published until it
   * is back is lost to this subscriber.
   */
  onDown(listener: (err: Error) => void): void;
  connect(): Promise<void>;
  close(): Promise<void>;
}

/** Node-redis standalone, Sentinel and Cluster objects, as far as a subscriber uses them. */
interface PubSubConnection {
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void | Promise<void>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** A subscriber for the topology in `options` (what createRedis's `subscriber()` makes). */
export function createSubscriber(options: RedisOptions, logger: Logger): RedisSubscriber {
  const timeoutMs = options.commandTimeoutMs ?? 1000;
  // With each, the events after which messages may have been missed.
  if ('sentinel' in options) {
    const sentinel = createSentinel(sentinelOptions(options, timeoutMs));
    return subscriberOf(
      sentinel as unknown as PubSubConnection,
      ['error', 'topology-change'],
      logger,
    );
  }
  if ('cluster' in options) {
    const cluster = createCluster(clusterOptions(options, timeoutMs));
    return subscriberOf(cluster as unknown as PubSubConnection, ['error', 'node-error'], logger);
  }
  const standalone = createClient({ url: options.url, ...nodeClientOptions(options) });
  return subscriberOf(
    standalone as unknown as PubSubConnection,
    ['error', 'reconnecting', 'end'],
    logger,
  );
}

function subscriberOf(
  connection: PubSubConnection,
  downEvents: readonly string[],
  logger: Logger,
): RedisSubscriber {
  const listeners: Array<(err: Error) => void> = [];
  let closed = false;
  for (const name of downEvents) {
    connection.on(name, (event: unknown) => {
      // Sentinel reports its first discovery as a topology change too; only a new master counts.
      if (name === 'topology-change' && (event as { type?: string })?.type !== 'MASTER_CHANGE')
        return;
      if (closed) return;
      const err = event instanceof Error ? event : new Error(`redis subscriber: ${name}`);
      for (const listener of listeners) listener(err);
    });
  }
  return {
    async subscribe(channel, listener) {
      await connection.subscribe(channel, listener);
    },
    onDown(listener) {
      listeners.push(listener);
    },
    async connect() {
      await connection.connect();
    },
    async close() {
      closed = true;
      try {
        if (connection.isOpen) await connection.close();
      } catch (err) {
        logger.debug?.({ err: { message: (err as Error).message } }, 'redis subscriber close');
        await connection.destroy();
      }
    },
  };
}

/**
 * A subscriber connection to the same Redis, with the same topology and settings, as `client`
 * (made by createRedis: its `subscriber()`; a plain node-redis client is duplicated).
 */
export function createRedisSubscriber(client: RedisClient, logger: Logger): RedisSubscriber {
  if (isGatehouseRedis(client)) return client.subscriber();
  const duplicate = (client as Partial<{ duplicate(): unknown }>).duplicate;
  if (typeof duplicate !== 'function')
    throw new Error('this Redis connection cannot make a subscriber connection');
  const copy = duplicate.call(client) as PubSubConnection;
  return subscriberOf(copy, ['error', 'reconnecting', 'end'], logger);
}
