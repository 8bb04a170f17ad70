/**
 * What the Redis contract's parts share (redis-contract.test.ts runs them on each topology): the
 * topology as the contract sees it, the context each part reads once the topology is up, and the
 * sessions the parts make.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import type { RedisClient } from '../../common/src/redis.js';
import { storedSessionId } from '../../common/src/session-id.js';
import type { SessionServiceConfig } from '../../session-service/src/config.js';
import type {
  Lifetimes,
  SessionAuth,
} from '../../session-service/src/domain/session-repository.js';
import { createRedisSessionRepository } from '../../session-service/src/domain/session-repository-redis.js';
import { startRedis } from '../helpers/redis.js';
import { startRedisCluster, startRedisSentinel } from '../helpers/redis-topologies.js';
import { testRecords } from '../helpers/stored-sessions.js';

/** A running topology, as the contract sees it. */
export interface Topology {
  /** The REDIS_* variables that point the session-service at it. */
  env: Record<string, string>;
  /** How many masters share the keyspace (1 but for a Cluster). */
  masters: number;
  /** How many masters hold at least one key matching `pattern`. */
  mastersWithKeys(pattern: string): Promise<number>;
  /** Every master's URL (what a dump of the whole keyspace reads). */
  masterUrls: string[];
  stop(): Promise<void>;
}

/**
 * What a part of the contract reads: `prefix` and the key names from the start, `topology`,
 * `config` and `redis` once the suite's beforeAll has run (read them inside tests and hooks).
 */
export interface ContractContext {
  /** Each run writes under its own prefix, so nothing needs flushing (FLUSHALL is per node). */
  readonly prefix: string;
  /** Redis knows a session by its stored id only (the SHA-256 of the cookie's id). */
  sessionKey(sid: string): string;
  userKey(userId: string): string;
  topology: Topology;
  config: Readonly<SessionServiceConfig>;
  redis: RedisClient;
}

export function contractContext(): ContractContext {
  const prefix = `contract-${randomBytes(4).toString('hex')}:`;
  const unset = (what: string) => () => {
    throw new Error(`the Redis contract's ${what} is read before its beforeAll ran`);
  };
  const context = {
    prefix,
    sessionKey: (sid: string) => `${prefix}sess:${storedSessionId(sid)}`,
    userKey: (userId: string) => `${prefix}user:{${userId}}:sessions`,
  };
  // Until the suite's beforeAll assigns them, reading topology, config or redis throws.
  for (const what of ['topology', 'config', 'redis'])
    Object.defineProperty(context, what, { get: unset(what), configurable: true });
  return context as ContractContext;
}

/** Fill in what the suite's beforeAll made. */
export function setUp(
  ctx: ContractContext,
  values: Pick<ContractContext, 'topology' | 'config' | 'redis'>,
): void {
  for (const [key, value] of Object.entries(values))
    Object.defineProperty(ctx, key, { value, writable: true, configurable: true });
}

export const LIFETIMES: Lifetimes = {
  idleSeconds: 60,
  absoluteSeconds: 3600,
  rememberIdleSeconds: 60,
  rememberAbsoluteSeconds: 3600,
};

export const newSid = () => randomBytes(32).toString('base64url');

export function authOf(userId: string, createdAt = Date.now()): SessionAuth {
  return { userId, username: userId, groups: ['dev'], email: '', createdAt };
}

/** A login's session, made as the login route makes it (the repository's login transaction). */
export async function createLoggedInSession(
  redis: RedisClient,
  prefix: string,
  userId: string,
): Promise<string> {
  const sid = newSid();
  const repository = createRedisSessionRepository({
    redis,
    lifetimes: LIFETIMES,
    prefix,
    records: testRecords,
  });
  await repository.createSession(sid, authOf(userId));
  return sid;
}

/** Keys matching `pattern` on each of `urls` (one plain connection per node). */
async function countKeysPerNode(urls: string[], pattern: string): Promise<number[]> {
  return Promise.all(
    urls.map(async (url) => {
      const node = createClient({ url });
      node.on('error', () => {});
      await node.connect();
      try {
        return (await node.keys(pattern)).length;
      } finally {
        node.destroy();
      }
    }),
  );
}

const mastersWithKeysOn = (urls: string[]) => async (pattern: string) =>
  (await countKeysPerNode(urls, pattern)).filter((n) => n > 0).length;

/** The three topologies the contract runs on, each started by its suite. */
export const TOPOLOGIES: Array<[name: string, start: () => Promise<Topology>]> = [
  [
    'standalone Redis',
    async () => {
      const server = await startRedis();
      return {
        env: { REDIS_URL: server.url },
        masters: 1,
        mastersWithKeys: mastersWithKeysOn([server.url]),
        masterUrls: [server.url],
        stop: () => server.stop(),
      };
    },
  ],
  [
    'Redis Cluster (3 masters)',
    async () => {
      const cluster = await startRedisCluster();
      return {
        env: { REDIS_CLUSTER_NODES: cluster.clusterNodes },
        masters: cluster.nodes.length,
        mastersWithKeys: mastersWithKeysOn(cluster.nodes.map((n) => n.url)),
        masterUrls: cluster.nodes.map((n) => n.url),
        stop: () => cluster.stop(),
      };
    },
  ],
  [
    'Redis Sentinel (primary, replica, 3 sentinels)',
    async () => {
      const sentinel = await startRedisSentinel();
      return {
        env: { REDIS_SENTINELS: sentinel.sentinelList, REDIS_SENTINEL_NAME: sentinel.name },
        masters: 1,
        mastersWithKeys: mastersWithKeysOn([sentinel.primary.url]),
        masterUrls: [sentinel.primary.url],
        stop: () => sentinel.stop(),
      };
    },
  ],
];
