/** Concern: one contract over every topology: deadlines, refusals, reconnects, bounded close. */
import { COMMANDS, type Command, type GatehouseRedis, type RedisCommands } from './commands.js';
import { backoff, closeWithin, withDeadline } from './deadline.js';
import { outcomeOf, RedisClosedError, RedisUnavailableError } from './errors.js';
import { createObservers } from './observers.js';
import type { ScanStep } from './scan.js';
import { scanAll } from './scan.js';
import type { RedisSubscriber } from './subscriber.js';

/** What a topology builder (standalone.ts, sentinel.ts, cluster.ts) hands the client. */
export interface Backend {
  /** Where commands go now (a Cluster's may change: cluster.ts). */
  readonly commands: RedisCommands;
  readonly isOpen: boolean;
  /** Able to take commands (for a Cluster: every master is). */
  isReady(): boolean;
  /** Null: a command may be sent; else why not (it is refused at once). */
  refusal(): string | null;
  /** One connection attempt (logs when ready). */
  connect(): Promise<void>;
  /** Makes the connection connectable again after a failed attempt. */
  reset(): void | Promise<void>;
  close(): Promise<void>;
  destroy(): void | Promise<void>;
  /** Every error of every node, as one stream. */
  onError(listener: (err: Error) => void): void;
  /** Told about every command sent (the stall guard). */
  track?(work: Promise<unknown>): void;
  /** close() or destroy() was called. */
  stop?(): void;
  /** Readiness when PING through the commands is not enough (a Cluster: every master). */
  probe?(): Promise<boolean>;
  /** SCAN steps, one per node holding keys. */
  scanSteps(): Promise<ScanStep[]>;
}

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
export function createGatehouseRedis(
  backend: Backend,
  settings: { timeoutMs: number; reconnect: boolean; subscriber: () => RedisSubscriber },
): GatehouseRedis {
  const { timeoutMs } = settings;
  let closed = false;
  let wake: (() => void) | undefined;
  const observers = createObservers();
  backend.onError((err) => observers.connectionError(err));

  const send = (name: Command, args: unknown[]): Promise<unknown> => {
    const started = performance.now();
    const refused = closed ? 'closed' : backend.refusal();
    if (refused !== null) {
      observers.command(name, started, 'unavailable');
      return Promise.reject(new RedisUnavailableError(`redis ${name}: ${refused}`));
    }
    let work: Promise<unknown>;
    try {
      const connection = backend.commands;
      work = (connection[name] as (...args: unknown[]) => Promise<unknown>).apply(connection, args);
    } catch (err) {
      observers.command(name, started, outcomeOf(err));
      return Promise.reject(err);
    }
    backend.track?.(work);
    return withDeadline(work, timeoutMs, name).then(
      (reply) => {
        observers.command(name, started, 'ok');
        return reply;
      },
      (err: unknown) => {
        observers.command(name, started, outcomeOf(err));
        throw err;
      },
    );
  };
  const commands = Object.fromEntries(
    COMMANDS.map((name) => [name, (...args: unknown[]) => send(name, args)]),
  ) as unknown as RedisCommands;
  const end = () => {
    closed = true;
    wake?.();
    backend.stop?.();
  };

  const client: GatehouseRedis = {
    ...commands,
    get isOpen() {
      return backend.isOpen;
    },
    get isReady() {
      return !closed && backend.isReady();
    },
    async connect() {
      for (let attempt = 0; ; attempt++) {
        if (closed) throw new RedisClosedError('the Redis connection was closed');
        try {
          await backend.connect();
          if (closed) throw new RedisClosedError('the Redis connection was closed');
          return client;
        } catch (err) {
          if (err instanceof RedisClosedError) throw err;
          await backend.reset();
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
      end();
      // QUIT-like: waits for the replies still due, at most one deadline (and a second).
      if (backend.isOpen) await closeWithin(backend, timeoutMs + 1000);
    },
    destroy() {
      end();
      return backend.destroy();
    },
    on(_event: 'error', listener) {
      backend.onError(listener);
      return client;
    },
    observe: (observer) => observers.add(observer),
    async *scan(match, options = {}) {
      const stillReady = () => {
        if (!client.isReady) throw new RedisUnavailableError('redis SCAN: not connected');
      };
      stillReady();
      yield* scanAll(await backend.scanSteps(), match, options.count ?? 1000, stillReady);
    },
    subscriber: () => settings.subscriber(),
    async probe() {
      if (!client.isReady) return false;
      try {
        if (backend.probe) return await backend.probe();
        return (await client.ping()) === 'PONG'; // the stall guard and the deadline
      } catch {
        return false;
      }
    },
  };
  return client;
}
