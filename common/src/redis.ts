/**
 * Redis access: the public names of ./redis/, one concern per file there (see its headers).
 * Importers keep this path; new code may import from the folder's files directly.
 */
export type { GatehouseRedis, RedisClient, RedisCommands } from './redis/commands.js';
export { isGatehouseRedis } from './redis/commands.js';
export { createOneShotRedis, createRedis, createRedisClient } from './redis/create.js';
export { withDeadline } from './redis/deadline.js';
export {
  type RedisCommandOutcome,
  RedisTimeoutError,
  RedisUnavailableError,
} from './redis/errors.js';
export { socketTimeoutFor } from './redis/node-options.js';
export { observeRedis, type RedisObserver } from './redis/observers.js';
export {
  clusterNodeUrl,
  describeRedis,
  parseHostPort,
  type RedisCredentials,
  type RedisNode,
  type RedisOptions,
  type RedisTopology,
} from './redis/options.js';
export { connectInBackground, pingRedis } from './redis/readiness.js';
export { countKeys, escapeGlob } from './redis/scan.js';
export { createRedisSubscriber, type RedisSubscriber } from './redis/subscriber.js';
