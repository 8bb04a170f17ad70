/** Concern: what Gatehouse asks of a Redis connection (its commands, and the client it builds). */
import type { RedisClientType } from 'redis';
import type { RedisObserver } from './observers.js';
import type { RedisSubscriber } from './subscriber.js';

/**
 * The commands Gatehouse sends. Each names at most one key (a Lua script declares its one key in
 * KEYS), so standalone Redis, Sentinel and Cluster all serve them; multi-key calls would fail on
 * a Cluster with CROSSSLOT and must not be added.
 */
export const COMMANDS = [
  'get',
  'set',
  'del',
  'exists',
  'expire',
  'pExpire',
  'pTTL',
  'zAdd',
  'zRem',
  'zRange',
  'zRangeWithScores',
  'eval',
  'evalSha',
  'ping',
  'publish',
] as const;
export type Command = (typeof COMMANDS)[number];

export type RedisCommands = Pick<RedisClientType, Command>;

/**
 * What the domain code, connect-redis and the readiness probe need from Redis, whatever the
 * topology. A plain node-redis client satisfies it (tests use one); `createRedis` adapts every
 * topology to it with deadlines, the stall guard and metrics.
 */
export interface RedisClient extends RedisCommands {
  readonly isOpen: boolean;
  /** Connected and able to take commands (for a Cluster: every master is). */
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void | Promise<void>;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * The connection `createRedis` builds: a RedisClient that also knows its topology, so the
 * metrics, the readiness probe, SCAN and pub/sub ask it rather than a side table.
 */
export interface GatehouseRedis extends RedisClient {
  /** Watch every command sent through this connection, and its errors. Returns the unsubscribe. */
  observe(observer: RedisObserver): () => void;
  /**
   * The keys matching `match`, in batches of about `count` (SCAN on every master of a Cluster).
   * Throws RedisUnavailableError when the connection stops being ready between batches.
   */
  scan(match: string, options?: { count?: number }): AsyncGenerator<string[]>;
  /** A new pub/sub connection to the same Redis, with the same topology and settings. */
  subscriber(): RedisSubscriber;
  /** Readiness: Redis answers PING within the command deadline (a Cluster: every master). */
  probe(): Promise<boolean>;
}

/** Made by `createRedis` (as opposed to a plain node-redis client, which tests pass). */
export function isGatehouseRedis(client: RedisClient): client is GatehouseRedis {
  const candidate = client as Partial<GatehouseRedis>;
  return typeof candidate.observe === 'function' && typeof candidate.probe === 'function';
}
