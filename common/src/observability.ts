import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { requestIdFrom } from './http.js';
import type { Logger } from './logger.js';
import { observeRedis, type RedisClient } from './redis.js';

/** One counter's declaration: name, help, label names. */
export type CounterSpec = readonly [name: string, help: string, labelNames: readonly string[]];

export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L>;
  /** Counters declared as a table, `{ key: [name, help, labels] }`, returned by the same keys. */
  counters<const T extends Record<string, CounterSpec>>(
    specs: T,
  ): { [K in keyof T]: Counter<T[K][2][number]> };
  histogram<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets?: number[],
  ): Histogram<L>;
  gauge<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    collect?: (gauge: Gauge<L>) => void | Promise<void>,
  ): Gauge<L>;
}

/** One registry per app (tests build many apps in one process). Names follow Prometheus conventions. */
export function createMetrics(
  service: string,
  options: { defaultMetrics?: boolean } = {},
): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  if (options.defaultMetrics !== false)
    collectDefaultMetrics({ register: registry, prefix: 'gatehouse_' });
  const httpDuration = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'HTTP requests served, by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter<L>({ name, help, labelNames, registers: [registry] });
  return {
    registry,
    httpDuration,
    counter,
    counters: <const T extends Record<string, CounterSpec>>(specs: T) =>
      Object.fromEntries(
        Object.entries(specs).map(([key, [name, help, labels]]) => [
          key,
          counter(name, help, labels),
        ]),
      ) as { [K in keyof T]: Counter<T[K][2][number]> },
    histogram: (name, help, labelNames, buckets) =>
      new Histogram({
        name,
        help,
        labelNames,
        registers: [registry],
        ...(buckets ? { buckets } : {}),
      }),
    gauge: (name, help, labelNames, collect) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [registry],
        ...(collect
          ? {
              collect(this: Gauge<(typeof labelNames)[number]>) {
                return collect(this);
              },
            }
          : {}),
      }),
  };
}

/** Buckets of Redis command latency: a healthy Redis answers in well under a millisecond. */
const REDIS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Redis metrics of a connection made by createRedis:
 * - `gatehouse_redis_command_duration_seconds{command,outcome}`: every command, outcome `ok`,
 *   `error` (an error reply or the connection failed), `timeout` (the command deadline passed),
 *   `unavailable` (refused at once: not connected, or Redis is not answering);
 * - `gatehouse_redis_errors_total{kind}`: the same failures by kind, plus `connection` for errors
 *   of the connection itself (lost, reconnect failed, socket timeout);
 * - `gatehouse_redis_up`: 1 while the connection is ready to take commands.
 */
export function instrumentRedis(metrics: Metrics, redis: RedisClient): void {
  const duration = metrics.histogram(
    'gatehouse_redis_command_duration_seconds',
    'Redis commands by command and outcome (ok, error, timeout, unavailable)',
    ['command', 'outcome'] as const,
    REDIS_BUCKETS,
  );
  const errors = metrics.counter(
    'gatehouse_redis_errors_total',
    'Redis failures by kind (error, timeout, unavailable, connection)',
    ['kind'] as const,
  );
  metrics.gauge('gatehouse_redis_up', '1 while the Redis connection takes commands', [], (g) => {
    g.set(redis.isReady ? 1 : 0);
  });
  observeRedis(redis, {
    command(name, seconds, outcome) {
      duration.observe({ command: name, outcome }, seconds);
      if (outcome !== 'ok') errors.inc({ kind: outcome });
    },
    connectionError() {
      errors.inc({ kind: 'connection' });
    },
  });
}

declare module 'node:http' {
  interface IncomingMessage {
    /** The request id (createRequestObserver / observeRequest): on every log line about it. */
    id?: string;
  }
}

type RequestLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Is this level on? (A Logger without isLevelEnabled, as in some tests, logs everything.) */
export function levelEnabled(logger: Logger, level: RequestLogLevel): boolean {
  return (
    (logger as Partial<{ isLevelEnabled(level: string): boolean }>).isLevelEnabled?.(level) ?? true
  );
}

/**
 * error: something broke (a 500); warn: failing closed while a dependency is down or slow (502,
 * 503, 504: expected during an outage, counted by the metrics); info: the client's mistakes
 * (4xx); successes at debug.
 */
export function requestLogLevel(status: number): RequestLogLevel {
  return status === 500 ? 'error' : status >= 500 ? 'warn' : status >= 400 ? 'info' : 'debug';
}

/**
 * Observe one request: take its id from `x-request-id` when well formed (set by nginx or the
 * gateway), else make one, and keep it on the request (`req.id`, and the header for forwarding);
 * when it finishes, observe the request histogram and write one log line (`request completed`,
 * at requestLogLevel) built only when that level is on. No child logger per request: this runs
 * on every request of every service (docs/performance.md measured pino-http's at 16 % of a
 * backend's CPU). Returns the id.
 */
export function observeRequest(
  logger: Logger,
  metrics: Metrics,
  req: IncomingMessage,
  res: ServerResponse,
  routeOf: (req: IncomingMessage) => string,
): string {
  const id = requestIdFrom(req.headers['x-request-id']);
  req.headers['x-request-id'] = id;
  req.id = id;
  const started = process.hrtime.bigint();
  // 'close' comes once per response: right after 'finish' when it was sent, or when the
  // connection ended before that.
  res.once('close', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    // A client that went away before the answer was sent: 499, as nginx logs it.
    const status = res.writableFinished ? res.statusCode : 499;
    metrics.httpDuration.observe(
      { method: req.method ?? 'GET', route: routeOf(req), status: String(status) },
      seconds,
    );
    const level = requestLogLevel(status);
    if (levelEnabled(logger, level))
      logger[level](
        {
          requestId: id,
          req: { method: req.method, url: req.url?.split('?')[0] },
          res: { statusCode: status },
          responseTime: Math.round(seconds * 1000),
        },
        status === 499 ? 'request aborted' : 'request completed',
      );
  });
  return id;
}

/**
 * Express middleware around observeRequest: also answers the id in `X-Request-Id`.
 */
export function createRequestObserver(
  logger: Logger,
  metrics: Metrics,
  routeOf: (req: IncomingMessage) => string,
) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void) => {
    res.setHeader('X-Request-Id', observeRequest(logger, metrics, req, res, routeOf));
    next();
  };
}
