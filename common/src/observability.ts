import type { IncomingMessage, ServerResponse } from 'node:http';
import { pinoHttp } from 'pino-http';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import { requestIdFrom } from './http.js';
import type { Logger } from './logger.js';

export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L>;
  histogram<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets?: number[],
  ): Histogram<L>;
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
  return {
    registry,
    httpDuration,
    counter: (name, help, labelNames) =>
      new Counter({ name, help, labelNames, registers: [registry] }),
    histogram: (name, help, labelNames, buckets) =>
      new Histogram({
        name,
        help,
        labelNames,
        registers: [registry],
        ...(buckets ? { buckets } : {}),
      }),
  };
}

/**
 * Request id + one log line per request + the request histogram. The id comes from
 * `x-request-id` when well formed (set by nginx or the gateway), else is generated, and is
 * echoed back and kept on the request for forwarding.
 */
export function createRequestObserver(
  logger: Logger,
  metrics: Metrics,
  routeOf: (req: IncomingMessage) => string,
) {
  const httpLogger = pinoHttp({
    logger: logger as never,
    genReqId: (req: IncomingMessage, res: ServerResponse) => {
      const id = requestIdFrom(req.headers['x-request-id']);
      req.headers['x-request-id'] = id;
      res.setHeader('X-Request-Id', id);
      return id;
    },
    customAttributeKeys: { reqId: 'requestId' },
    // the request id on every line this request logs, not only the summary line
    customProps: (req: IncomingMessage & { id?: unknown }) => ({ requestId: req.id }),
    customLogLevel: (_req, res, err) =>
      err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'info' : 'debug',
    serializers: {
      req: (req: { method: string; url: string; id: unknown }) => ({
        method: req.method,
        url: req.url?.split('?')[0],
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  });
  return (req: IncomingMessage, res: ServerResponse, next: () => void) => {
    const end = metrics.httpDuration.startTimer();
    res.once('finish', () =>
      end({ method: req.method ?? 'GET', route: routeOf(req), status: String(res.statusCode) }),
    );
    httpLogger(req, res, next);
  };
}
