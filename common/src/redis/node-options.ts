/** Concern: the node-redis settings of every connection Gatehouse opens, per topology. */
import type { RedisClientOptions, RedisClusterOptions, RedisSentinelOptions } from 'redis';
import { backoff } from './deadline.js';
import type { ClusterOptions, RedisOptions, SentinelOptions } from './options.js';

/** How often every connection PINGs Redis, whatever the traffic. */
const PING_INTERVAL_MS = 1000;

/**
 * A connection that has neither sent nor received a byte for this long is replaced (node-redis
 * `socketTimeout`: it destroys the socket and reconnects with the backoff). Healthy connections
 * are never that quiet (a PING a second), and a stuck one soon is: a Redis that stopped
 * answering gets no more commands (the stall guard refuses them) and no more PINGs (the next one
 * waits for the last reply). It also bounds a connect whose handshake never completes.
 */
export const socketTimeoutFor = (commandTimeoutMs: number) => Math.max(3000, 3 * commandTimeoutMs);

/**
 * Settings of every connection to a Redis node, whatever the topology. Fail fast instead of
 * queueing: with the offline queue on, commands issued while Redis is down wait for the reconnect
 * and requests hang (node-redis #2079), so the gateway would hang instead of answering 503.
 *
 * Why not TCP keepalive alone: it is on (a NAT or firewall in between keeps an idle connection),
 * but it only notices a vanished peer after about 11 minutes (Linux: 9 probes 75 s apart) and
 * never notices a frozen one (SIGSTOP, a hung VM: the kernel still answers the probes). The
 * PING a second plus `socketTimeout` notice both within seconds.
 */
export function nodeClientOptions(options: RedisOptions) {
  return {
    disableOfflineQueue: true,
    // A hard cap; the stall guard keeps the queue to about one command deadline's worth.
    commandsQueueMaxLength: 10_000,
    pingInterval: PING_INTERVAL_MS,
    ...(options.username ? { username: options.username } : {}),
    ...(options.password ? { password: options.password } : {}),
    socket: {
      connectTimeout: options.connectTimeoutMs ?? 2000,
      socketTimeout: socketTimeoutFor(options.commandTimeoutMs ?? 1000),
      keepAlive: true,
      noDelay: true,
      reconnectStrategy: options.reconnect === false ? (false as const) : (n: number) => backoff(n),
    },
  } satisfies RedisClientOptions;
}

/** Every Sentinel connection of ours (commands, and the pub/sub subscriber). */
export function sentinelOptions(options: SentinelOptions, timeoutMs: number) {
  return {
    name: options.sentinel.name,
    sentinelRootNodes: options.sentinel.nodes,
    nodeClientOptions: { ...nodeClientOptions(options), commandOptions: { timeout: timeoutMs } },
    sentinelClientOptions: {
      ...(options.username ? { username: options.username } : {}),
      ...(options.password ? { password: options.password } : {}),
      socket: { connectTimeout: options.connectTimeoutMs ?? 2000 },
      // A frozen sentinel must not stall discovery: the next one is tried.
      commandOptions: { timeout: timeoutMs },
    },
    // Errors of the master's connection reach our 'error' listener (else they are only counted).
    passthroughClientErrorEvents: true,
  } satisfies RedisSentinelOptions;
}

/** Every Cluster connection of ours (commands, and the pub/sub subscriber). */
export function clusterOptions(options: ClusterOptions, timeoutMs: number) {
  const first = new URL(options.cluster.nodes[0] ?? 'redis://127.0.0.1:6379');
  const defaults = nodeClientOptions({
    ...options,
    // Credentials and TLS of the root URLs do not reach the nodes discovered from them.
    username: options.username ?? (decodeURIComponent(first.username) || undefined),
    password: options.password ?? (decodeURIComponent(first.password) || undefined),
  });
  return {
    rootNodes: options.cluster.nodes.map((url) => ({ url })),
    defaults: {
      ...defaults,
      socket: { ...defaults.socket, ...(first.protocol === 'rediss:' ? { tls: true } : {}) },
    },
    commandOptions: { timeout: timeoutMs },
    // A MOVED reply (resharding, failover) makes node-redis rediscover the slots and retry.
    maxCommandRedirections: 16,
  } satisfies RedisClusterOptions;
}
