import {
  ClientClosedError,
  ClientOfflineError,
  createClient,
  createCluster,
  createSentinel,
  type RedisClientOptions,
  type RedisClientType,
} from 'redis';
import type { Logger } from './logger.js';

/**
 * The commands Gatehouse sends. Each names at most one key (a Lua script declares its one key in
 * KEYS), so standalone Redis, Sentinel and Cluster all serve them; multi-key calls would fail on
 * a Cluster with CROSSSLOT and must not be added.
 */
const COMMANDS = [
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
type Command = (typeof COMMANDS)[number];

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

export interface RedisNode {
  host: string;
  port: number;
}

/** Exactly one of the three. */
export type RedisTopology =
  /** One Redis: `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). */
  | { url: string }
  /** Sentinel: the sentinels' addresses and the name of the master they monitor. */
  | { sentinel: { name: string; nodes: RedisNode[] } }
  /** Cluster: some of its nodes as `redis://host:port` URLs; the rest is discovered. */
  | { cluster: { nodes: string[] } };

export interface RedisCredentials {
  /** ACL user and password, used for every node (and every sentinel). */
  username?: string;
  password?: string;
}

export type RedisOptions = RedisTopology &
  RedisCredentials & {
    /** Per-command deadline in ms: a frozen Redis must fail requests, not hang them. */
    commandTimeoutMs?: number;
    connectTimeoutMs?: number;
    /** false: one connection attempt, no reconnects (one-shot tools). Default true. */
    reconnect?: boolean;
  };

/** A Redis command did not answer within its deadline. */
export class RedisTimeoutError extends Error {
  readonly code = 'REDIS_TIMEOUT';
}

/** A Redis command was refused at once: the connection is not established (yet). */
export class RedisUnavailableError extends Error {
  readonly code = 'REDIS_UNAVAILABLE';
}

/** connect() on a connection that close() or destroy() ended. */
class RedisClosedError extends Error {}

/** How one command ended, for metrics: `unavailable` means it was refused without being sent. */
export type RedisCommandOutcome = 'ok' | 'error' | 'timeout' | 'unavailable';

/** Told about every command sent through a connection made by `createRedis`, and its errors. */
export interface RedisObserver {
  command?(name: string, seconds: number, outcome: RedisCommandOutcome): void;
  /** An 'error' event of the connection (socket errors, reconnects, timeouts). */
  connectionError?(err: Error): void;
}

const observers = new WeakMap<RedisClient, Set<RedisObserver>>();

/** Watch the commands and errors of a connection made by `createRedis`. Returns the unsubscribe. */
export function observeRedis(client: RedisClient, observer: RedisObserver): () => void {
  let set = observers.get(client);
  if (!set) {
    set = new Set();
    observers.set(client, set);
  }
  set.add(observer);
  return () => set.delete(observer);
}

function outcomeOf(err: unknown): RedisCommandOutcome {
  if (err instanceof RedisTimeoutError) return 'timeout';
  if (
    err instanceof RedisUnavailableError ||
    err instanceof ClientOfflineError ||
    err instanceof ClientClosedError ||
    (err instanceof Error && err.message === 'The queue is full')
  )
    return 'unavailable';
  return 'error';
}

// Retry forever with capped, jittered backoff: Redis coming back is recovered from without a
// restart, and a crash loop never starts.
const backoff = (retries: number) =>
  Math.min(50 * 2 ** Math.min(retries, 6), 2000) + Math.floor(Math.random() * 100);

/**
 * Reject with RedisTimeoutError when `work` has not settled within `ms`. The rejection waits for
 * the event loop's next look at the sockets (setImmediate runs after the poll phase): when the
 * process itself was too busy to read for a while (CPU starvation, a long GC), a reply that
 * arrived in time wins over the deadline that fired first.
 */
function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        setImmediate(() =>
          reject(new RedisTimeoutError(`redis ${what} did not answer within ${ms} ms`)),
        ),
      ms,
    );
  });
  work.catch(() => {}); // it may still fail after the deadline; nobody is waiting then
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** How to reach Redis, for messages: never a password. */
export function describeRedis(topology: RedisTopology): string {
  if ('sentinel' in topology) {
    const nodes = topology.sentinel.nodes.map((n) => `${n.host}:${n.port}`).join(',');
    return `sentinels ${nodes} (master ${topology.sentinel.name})`;
  }
  if ('cluster' in topology) return `cluster ${topology.cluster.nodes.map(redactUrl).join(',')}`;
  return redactUrl(topology.url);
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

/** `host:port` or `[ipv6]:port`; null when it is neither. */
export function parseHostPort(text: string): RedisNode | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host, port };
}

/** A cluster node given as `host:port` or a `redis://` / `rediss://` URL, as a URL; else null. */
export function clusterNodeUrl(text: string): string | null {
  const value = text.trim();
  if (/^rediss?:\/\//.test(value)) {
    try {
      const url = new URL(value);
      return url.hostname && url.port ? value : null;
    } catch {
      return null;
    }
  }
  const node = parseHostPort(value);
  if (!node) return null;
  return `redis://${node.host.includes(':') ? `[${node.host}]` : node.host}:${node.port}`;
}

/** How often every connection PINGs Redis, whatever the traffic. */
const PING_INTERVAL_MS = 1000;

/**
 * A connection that has neither sent nor received a byte for this long is replaced (node-redis
 * `socketTimeout`: it destroys the socket and reconnects with the backoff). Healthy connections
 * are never that quiet (a PING a second), and a stuck one soon is: a Redis that stopped
 * answering gets no more commands (the stall guard below refuses them) and no more PINGs (the
 * next one waits for the last reply). It also bounds a connect whose handshake never completes.
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
function nodeClientOptions(options: RedisOptions) {
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
      reconnectStrategy: options.reconnect === false ? (false as const) : backoff,
    },
  } satisfies RedisClientOptions;
}

/**
 * Commands written to a connection wait for their replies forever in node-redis (its per-command
 * `timeout` only covers commands not yet written), so a Redis that stops answering without closing
 * the connection (SIGSTOP, a hung host, a network partition) would collect every command sent to
 * it. The guard notes when each command went out; once the oldest one has waited longer than the
 * command deadline, Redis is stuck (replies come in order) and further commands are refused at
 * once, until it answers again or the connection is replaced (`socketTimeout`). So requests fail
 * within the deadline, the queue holds about one deadline's worth of commands, and nothing is
 * written to a connection that is not being read.
 *
 * "Stuck" is decided only after the event loop has read the sockets (in a setImmediate, which
 * runs after the poll phase): a process too busy to read Redis's replies for a second (CPU
 * starvation) must not take replies sitting in its socket for missing ones.
 */
function createStallGuard(
  timeoutMs: number,
  forgetAfterMs: number,
  onChange: (stalled: boolean) => void,
) {
  const pending = new Map<number, number>();
  let next = 0;
  let stalled = false;
  /** How long the oldest command still counted has waited (0: none). */
  const oldestWait = (now: number) => {
    for (const [id, sentAt] of pending) {
      // Past this, the connection has been replaced and the command failed: stop counting it.
      if (now - sentAt >= forgetAfterMs) pending.delete(id);
      else return now - sentAt;
    }
    return 0;
  };
  const update = (value: boolean) => {
    if (value === stalled) return;
    stalled = value;
    onChange(value);
  };
  const timer = setInterval(
    () => setImmediate(() => update(oldestWait(Date.now()) >= timeoutMs)),
    Math.max(10, Math.min(100, Math.floor(timeoutMs / 4))),
  );
  timer.unref();
  return {
    get stalled() {
      return stalled;
    },
    track(work: Promise<unknown>): void {
      const id = next++;
      pending.set(id, Date.now());
      const done = () => {
        pending.delete(id);
        // An answer: Redis is back as soon as nothing old is left waiting.
        if (stalled && oldestWait(Date.now()) < timeoutMs) update(false);
      };
      work.then(done, done);
    },
    /** A new connection: nothing is outstanding on it. */
    reset(): void {
      pending.clear();
      update(false);
    },
    stop(): void {
      clearInterval(timer);
    },
  };
}

/** Node-redis standalone clients, Cluster and Sentinel objects, as far as `adapt` uses them. */
interface DistributedConnection extends RedisCommands {
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void | Promise<void>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** How `pingRedis` checks a connection made by `createRedis` (with its command deadline). */
const probes = new WeakMap<RedisClient, () => Promise<boolean>>();

/**
 * A node-redis connection (standalone client, Cluster or Sentinel object) behind one contract:
 * - a deadline on every command: node-redis's per-command timeout only covers commands not yet
 *   written; once written they wait for a reply forever (a frozen standalone Redis), a Sentinel
 *   connection holds commands while its master is down until a failover completes (seconds to
 *   minutes), a Cluster while a node is still connecting;
 * - `connect()` retries with capped backoff like a standalone client (node-redis gives up after
 *   the first round of a Cluster's root nodes, and after 16 rounds of sentinels);
 * - `close()` is bounded: node-redis waits for every reply first, forever if Redis is frozen;
 * - one 'error' event for every node's errors, and observers (metrics) told about each command.
 */
function adapt(
  connection: DistributedConnection,
  settings: {
    isReady: () => boolean;
    /** Null: the command may be sent; else why not (it is refused at once). */
    refusal: () => string | null;
    onReady: () => void;
    timeoutMs: number;
    reconnect: boolean;
    errorEvents: readonly string[];
    /** Makes the connection connectable again after a failed attempt. */
    reset: () => Promise<void> | void;
    /** Told about every command sent (the stall guard). */
    track?: (work: Promise<unknown>) => void;
    /** close() or destroy() was called. */
    onClose?: () => void;
  },
): RedisClient {
  let closed = false;
  let wake: (() => void) | undefined;
  const watchers = new Set<RedisObserver>();
  const report = (name: string, started: number, outcome: RedisCommandOutcome) => {
    if (watchers.size === 0) return;
    const seconds = (performance.now() - started) / 1000;
    for (const watcher of watchers) watcher.command?.(name, seconds, outcome);
  };
  const commands: Partial<Record<Command, unknown>> = {};
  for (const name of COMMANDS) {
    const command = connection[name] as (...args: unknown[]) => Promise<unknown>;
    commands[name] = (...args: unknown[]) => {
      const started = performance.now();
      const refused = closed ? 'closed' : settings.refusal();
      if (refused !== null) {
        report(name, started, 'unavailable');
        return Promise.reject(new RedisUnavailableError(`redis ${name}: ${refused}`));
      }
      let work: Promise<unknown>;
      try {
        work = command.apply(connection, args);
      } catch (err) {
        report(name, started, outcomeOf(err));
        return Promise.reject(err);
      }
      settings.track?.(work);
      return withDeadline(work, settings.timeoutMs, name).then(
        (reply) => {
          report(name, started, 'ok');
          return reply;
        },
        (err: unknown) => {
          report(name, started, outcomeOf(err));
          throw err;
        },
      );
    };
  }
  const client: RedisClient = {
    ...(commands as RedisCommands),
    get isOpen() {
      return connection.isOpen;
    },
    get isReady() {
      return !closed && settings.isReady();
    },
    async connect() {
      for (let attempt = 0; ; attempt++) {
        if (closed) throw new RedisClosedError('the Redis connection was closed');
        try {
          await connection.connect();
          if (closed) throw new RedisClosedError('the Redis connection was closed');
          settings.onReady();
          return client;
        } catch (err) {
          if (err instanceof RedisClosedError) throw err;
          await settings.reset();
          if (!settings.reconnect || closed) throw err;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, backoff(attempt));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    },
    async close() {
      closed = true;
      wake?.();
      settings.onClose?.();
      if (!connection.isOpen) return;
      try {
        // QUIT-like: waits for the replies still due, at most one deadline (and a second).
        await withDeadline(connection.close(), settings.timeoutMs + 1000, 'close');
      } catch {
        try {
          await connection.destroy();
        } catch {
          // already closed
        }
      }
    },
    destroy() {
      closed = true;
      wake?.();
      settings.onClose?.();
      return connection.destroy();
    },
    on(_event: 'error', listener) {
      for (const name of settings.errorEvents) {
        connection.on(name, (err) =>
          listener(err instanceof Error ? err : new Error(`${name}: ${String(err)}`)),
        );
      }
      return client;
    },
  };
  observers.set(client, watchers);
  return client;
}

function createClusterClient(
  options: RedisOptions & { cluster: { nodes: string[] } },
  timeoutMs: number,
  logger: Logger,
) {
  const first = new URL(options.cluster.nodes[0] ?? 'redis://127.0.0.1:6379');
  const defaults = nodeClientOptions({
    ...options,
    // Credentials and TLS of the root URLs do not reach the nodes discovered from them.
    username: options.username ?? (decodeURIComponent(first.username) || undefined),
    password: options.password ?? (decodeURIComponent(first.password) || undefined),
  });
  const cluster = createCluster({
    rootNodes: options.cluster.nodes.map((url) => ({ url })),
    defaults: {
      ...defaults,
      socket: { ...defaults.socket, ...(first.protocol === 'rediss:' ? { tls: true } : {}) },
    },
    commandOptions: { timeout: timeoutMs },
    // A MOVED reply (resharding, failover) makes node-redis rediscover the slots and retry.
    maxCommandRedirections: 16,
  });
  // node-redis re-reads the slot map only on a MOVED or ASK reply. When a master dies and the
  // cluster promotes its replica, commands for its slots still go to the dead address and fail
  // (there is nobody to answer MOVED) until it comes back. So while any node's connection fails,
  // re-read the map, at most once a second: the promoted replica is found within a second.
  let lastRediscover = 0;
  cluster.on('node-error', () => {
    const now = Date.now();
    if (!cluster.isOpen || now - lastRediscover < 1000) return;
    lastRediscover = now;
    const via =
      cluster.masters.find((m) => m.client?.isReady)?.client ?? cluster.masters[0]?.client;
    // A failed rediscovery is reported as an 'error' event; the next node error retries it.
    if (via) cluster._slots.rediscover(via).catch(() => {});
  });
  const client = adapt(cluster, {
    timeoutMs,
    reconnect: options.reconnect !== false,
    errorEvents: ['error', 'node-error'],
    // Before the slot map is known node-redis fails with a TypeError; say what it means.
    refusal: () => (cluster.masters.length > 0 ? null : 'not connected'),
    onReady: () => logger.info({ masters: cluster.masters.length }, 'redis cluster ready'),
    isReady: () =>
      cluster.isOpen &&
      cluster.masters.length > 0 &&
      cluster.masters.every((master) => master.client?.isReady === true),
    reset: () => {},
  });
  // Ready means every master answers: a third of the sessions live on each of three masters.
  probes.set(client, async () => {
    const replies = await Promise.all(
      cluster.masters.map(async (master) => {
        const node = await withDeadline(cluster.nodeClient(master), timeoutMs, 'connect');
        return withDeadline(node.ping(), timeoutMs, 'PING');
      }),
    );
    return replies.length > 0 && replies.every((reply) => reply === 'PONG');
  });
  // Keys live on every master: scan each.
  scanners.set(client, async () =>
    Promise.all(
      cluster.masters.map(async (master): Promise<ScanStep> => {
        const node = await withDeadline(cluster.nodeClient(master), timeoutMs, 'connect');
        return (cursor, match, count) =>
          withDeadline(node.scan(cursor, { MATCH: match, COUNT: count }), timeoutMs, 'SCAN');
      }),
    ),
  );
  return client;
}

/** What every Sentinel connection of ours shares (commands, and the pub/sub subscriber). */
function sentinelOptions(
  options: RedisOptions & { sentinel: { name: string; nodes: RedisNode[] } },
  timeoutMs: number,
) {
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
  };
}

function createSentinelClient(
  options: RedisOptions & { sentinel: { name: string; nodes: RedisNode[] } },
  timeoutMs: number,
  logger: Logger,
) {
  const sentinel = createSentinel({
    ...sentinelOptions(options, timeoutMs),
    commandOptions: { timeout: timeoutMs },
  });
  let master: RedisNode | undefined;
  sentinel.on('topology-change', (event: { type: string; node?: RedisNode }) => {
    if (event.type !== 'MASTER_CHANGE') return;
    // The first one is the initial discovery; later ones are failovers.
    if (master) logger.warn({ from: master, to: event.node }, 'redis master changed (failover)');
    master = event.node;
  });
  const client = adapt(sentinel, {
    timeoutMs,
    reconnect: options.reconnect !== false,
    errorEvents: ['error'],
    // Until the first connect completes, commands would wait for it: refuse them instead.
    refusal: () => (sentinel.isReady ? null : 'not connected'),
    onReady: () => logger.info({ master: sentinel.getMasterNode() }, 'redis ready (sentinel)'),
    isReady: () => sentinel.isReady,
    // A failed connect leaves the Sentinel object "open"; destroy() makes it connectable again.
    reset: () => (sentinel.isOpen ? sentinel.destroy() : undefined),
  });
  probes.set(client, async () => (await client.ping()) === 'PONG'); // the adapter's deadline
  scanners.set(client, async () => [
    (cursor, match, count) =>
      withDeadline(sentinel.scan(cursor, { MATCH: match, COUNT: count }), timeoutMs, 'SCAN'),
  ]);
  return client;
}

function createStandaloneClient(
  options: RedisOptions & { url: string },
  timeoutMs: number,
  logger: Logger,
) {
  const standalone = createClient({
    url: options.url,
    ...nodeClientOptions(options),
    commandOptions: { timeout: timeoutMs },
  });
  const guard = createStallGuard(timeoutMs, socketTimeoutFor(timeoutMs) + timeoutMs, (stalled) => {
    if (stalled)
      logger.warn(
        { deadlineMs: timeoutMs },
        'redis is not answering: refusing commands until it does',
      );
    else logger.info('redis is answering again');
  });
  standalone.on('ready', () => {
    guard.reset();
    logger.info('redis ready');
  });
  const client = adapt(standalone as unknown as DistributedConnection, {
    timeoutMs,
    reconnect: options.reconnect !== false,
    errorEvents: ['error'],
    refusal: () =>
      !standalone.isReady ? 'not connected' : guard.stalled ? 'not answering (stalled)' : null,
    onReady: () => {},
    isReady: () => standalone.isReady && !guard.stalled,
    reset: () => {},
    track: (work) => guard.track(work),
    onClose: () => guard.stop(),
  });
  probes.set(client, async () => (await client.ping()) === 'PONG'); // guard and deadline
  scanners.set(client, async () => [
    (cursor, match, count) =>
      withDeadline(standalone.scan(cursor, { MATCH: match, COUNT: count }), timeoutMs, 'SCAN'),
  ]);
  return client;
}

/**
 * A Redis connection for the topology in `options` (standalone, Sentinel or Cluster) with the same
 * fail-fast behaviour on all three: no offline queue, a per-command deadline, reconnects with
 * capped backoff, and an 'error' listener that logs at most once a second.
 */
export function createRedis(options: RedisOptions, logger: Logger): RedisClient {
  const timeoutMs = options.commandTimeoutMs ?? 1000;
  let client: RedisClient;
  if ('sentinel' in options) {
    client = createSentinelClient(options, timeoutMs, logger);
  } else if ('cluster' in options) {
    client = createClusterClient(options, timeoutMs, logger);
  } else {
    client = createStandaloneClient(options, timeoutMs, logger);
  }
  subscriberFactories.set(client, () => createSubscriber(options, logger));
  let lastErrorLog = 0;
  client.on('error', (err: Error) => {
    for (const watcher of observers.get(client) ?? []) watcher.connectionError?.(err);
    // Without an 'error' listener node-redis errors crash the process. Log at most once a second.
    const now = Date.now();
    if (now - lastErrorLog > 1000) {
      lastErrorLog = now;
      logger.warn({ err: { message: err.message } }, 'redis error');
    }
  });
  return client;
}

/** `text` matched literally in a SCAN/KEYS glob pattern. */
export const escapeGlob = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&');

/** One SCAN step on one node: the next cursor and the keys of this step. */
type ScanStep = (
  cursor: string,
  match: string,
  count: number,
) => Promise<{ cursor: string; keys: string[] }>;

/** How `countKeys` scans a connection made by `createRedis`: one step function per master. */
const scanners = new WeakMap<RedisClient, () => Promise<ScanStep[]>>();

/**
 * How many keys match `pattern`, by SCAN (every master of a Cluster), stopping at `limit` keys
 * (then `complete` is false and `count` a lower bound). For occasional statistics only (the
 * active-sessions gauge): never on a request's path. Null for connections not made by createRedis.
 */
export async function countKeys(
  client: RedisClient,
  pattern: string,
  options: { limit?: number; count?: number } = {},
): Promise<{ count: number; complete: boolean } | null> {
  const scanner = scanners.get(client);
  if (!scanner) return null;
  const limit = options.limit ?? 1_000_000;
  const batch = options.count ?? 1000;
  let count = 0;
  for (const step of await scanner()) {
    let cursor = '0';
    do {
      if (!client.isReady) throw new RedisUnavailableError('redis SCAN: not connected');
      const reply = await step(cursor, pattern, batch);
      cursor = String(reply.cursor);
      count += reply.keys.length;
      if (count >= limit) return { count, complete: false };
    } while (cursor !== '0');
  }
  return { count, complete: true };
}

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

/** How createRedisSubscriber makes a subscriber for a connection made by createRedis. */
const subscriberFactories = new WeakMap<RedisClient, () => RedisSubscriber>();

function createSubscriber(options: RedisOptions, logger: Logger): RedisSubscriber {
  const timeoutMs = options.commandTimeoutMs ?? 1000;
  let connection: PubSubConnection;
  // Events after which messages may have been missed.
  let downEvents: string[];
  if ('sentinel' in options) {
    connection = createSentinel(sentinelOptions(options, timeoutMs)) as unknown as PubSubConnection;
    downEvents = ['error', 'topology-change'];
  } else if ('cluster' in options) {
    const first = new URL(options.cluster.nodes[0] ?? 'redis://127.0.0.1:6379');
    const defaults = nodeClientOptions({
      ...options,
      username: options.username ?? (decodeURIComponent(first.username) || undefined),
      password: options.password ?? (decodeURIComponent(first.password) || undefined),
    });
    connection = createCluster({
      rootNodes: options.cluster.nodes.map((url) => ({ url })),
      defaults: {
        ...defaults,
        socket: { ...defaults.socket, ...(first.protocol === 'rediss:' ? { tls: true } : {}) },
      },
      commandOptions: { timeout: timeoutMs },
    }) as unknown as PubSubConnection;
    downEvents = ['error', 'node-error'];
  } else {
    connection = createClient({
      url: options.url,
      ...nodeClientOptions(options),
    }) as unknown as PubSubConnection;
    downEvents = ['error', 'reconnecting', 'end'];
  }
  return subscriberOf(connection, downEvents, logger);
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
 * (made by createRedis; a plain node-redis client is duplicated).
 */
export function createRedisSubscriber(client: RedisClient, logger: Logger): RedisSubscriber {
  const factory = subscriberFactories.get(client);
  if (factory) return factory();
  const duplicate = (client as Partial<{ duplicate(): unknown }>).duplicate;
  if (typeof duplicate !== 'function')
    throw new Error('this Redis connection cannot make a subscriber connection');
  const copy = duplicate.call(client) as PubSubConnection;
  return subscriberOf(copy, ['error', 'reconnecting', 'end'], logger);
}

/** The original name of `createRedis`, from when only standalone Redis was supported. */
export const createRedisClient = createRedis;

/** Connect in the background: a service starts (and reports not-ready) while Redis is down. */
export function connectInBackground(client: RedisClient, logger: Logger): void {
  client.connect().catch((err: Error) => {
    if (err instanceof RedisClosedError) return; // shutting down
    logger.warn({ err: { message: err.message } }, 'redis connect failed; retrying');
  });
}

/**
 * Readiness: Redis answers PING within the command deadline (a Cluster: every master does).
 * `timeoutMs` applies to clients not made by `createRedis`.
 */
export async function pingRedis(client: RedisClient, timeoutMs = 1000): Promise<boolean> {
  if (!client.isReady) return false;
  try {
    const probe = probes.get(client);
    if (probe) return await probe();
    return (await withDeadline(client.ping(), timeoutMs, 'PING')) === 'PONG';
  } catch {
    return false;
  }
}
