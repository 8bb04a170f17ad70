/** Concern: telling watchers (metrics) about every command of a connection and its errors. */
import { isGatehouseRedis, type RedisClient } from './commands.js';
import type { RedisCommandOutcome } from './errors.js';

/** Told about every command sent through a connection made by `createRedis`, and its errors. */
export interface RedisObserver {
  command?(name: string, seconds: number, outcome: RedisCommandOutcome): void;
  /** An 'error' event of the connection (socket errors, reconnects, timeouts). */
  connectionError?(err: Error): void;
}

/** The watchers of one connection. */
export function createObservers() {
  const watchers = new Set<RedisObserver>();
  return {
    add(observer: RedisObserver): () => void {
      watchers.add(observer);
      return () => watchers.delete(observer);
    },
    /** A command that started at `started` (performance.now()) ended with `outcome`. */
    command(name: string, started: number, outcome: RedisCommandOutcome): void {
      if (watchers.size === 0) return;
      const seconds = (performance.now() - started) / 1000;
      for (const watcher of watchers) watcher.command?.(name, seconds, outcome);
    },
    connectionError(err: Error): void {
      for (const watcher of watchers) watcher.connectionError?.(err);
    },
  };
}

/**
 * Watch the commands and errors of a connection made by `createRedis` (its `observe`). A plain
 * node-redis client reports nothing. Returns the unsubscribe.
 */
export function observeRedis(client: RedisClient, observer: RedisObserver): () => void {
  return isGatehouseRedis(client) ? client.observe(observer) : () => {};
}
