/** Concern: the errors a Redis command ends with, and how each counts in metrics. */
import { ClientClosedError, ClientOfflineError } from 'redis';

/** A Redis command did not answer within its deadline. */
export class RedisTimeoutError extends Error {
  readonly code = 'REDIS_TIMEOUT';
}

/** A Redis command was refused at once: the connection is not established (yet). */
export class RedisUnavailableError extends Error {
  readonly code = 'REDIS_UNAVAILABLE';
}

/** connect() on a connection that close() or destroy() ended. */
export class RedisClosedError extends Error {}

/** How one command ended, for metrics: `unavailable` means it was refused without being sent. */
export type RedisCommandOutcome = 'ok' | 'error' | 'timeout' | 'unavailable';

export function outcomeOf(err: unknown): RedisCommandOutcome {
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

/** An event argument as an Error (node-redis emits Errors, but the type says unknown). */
export const asError = (value: unknown, event: string): Error =>
  value instanceof Error ? value : new Error(`${event}: ${String(value)}`);
