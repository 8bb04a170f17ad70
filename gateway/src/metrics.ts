import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge } from 'prom-client';
import { NO_STORE, sendError } from '../../common/src/http.js';
import { createMetrics } from '../../common/src/observability.js';
import type { SessionClient } from './session-client.js';

/**
 * The gateway's Prometheus metrics. They are served on a listener of their own
 * (GATEWAY_METRICS_PORT, 127.0.0.1 by default), never on the public port: counts of decisions,
 * upstream errors and cache use tell an outsider more than they should.
 */
export function createGatewayMetrics(sessionClient: SessionClient) {
  const metrics = createMetrics('gateway');
  const { authOutcomes, upstreamErrors, wsOutcomes, refused } = metrics.counters({
    authOutcomes: [
      'gatehouse_gateway_auth_total',
      'Gateway auth decisions by outcome',
      ['outcome'],
    ],
    upstreamErrors: ['gatehouse_upstream_errors_total', 'Upstream errors by code', ['code']],
    wsOutcomes: [
      'gatehouse_gateway_websocket_total',
      'WebSocket upgrades and closes by outcome',
      ['outcome'],
    ],
    refused: [
      'gatehouse_gateway_refused_total',
      'Requests refused before any route decision (bad path, bad host, too many headers …)',
      ['reason'],
    ],
  });
  if (sessionClient.cacheStats) {
    const stats = sessionClient.cacheStats.bind(sessionClient);
    new Counter({
      name: 'gatehouse_gateway_validate_cache_lookups_total',
      help: 'Validation cache lookups: hit, miss, or bypass (cache off or no session cookie)',
      labelNames: ['outcome'] as const,
      registers: [metrics.registry],
      collect() {
        const now = stats();
        this.reset();
        this.inc({ outcome: 'hit' }, now.hits);
        this.inc({ outcome: 'miss' }, now.misses);
        this.inc({ outcome: 'bypass' }, now.bypasses);
      },
    });
    new Gauge({
      name: 'gatehouse_gateway_validate_cache_entries',
      help: 'Validate answers held in the cache',
      registers: [metrics.registry],
      collect() {
        this.set(stats().entries);
      },
    });
    new Gauge({
      name: 'gatehouse_gateway_validate_cache_enabled',
      help: '1 while the revocation stream is connected and the cache serves answers',
      registers: [metrics.registry],
      collect() {
        this.set(stats().enabled ? 1 : 0);
      },
    });
  }

  /** The metrics listener's handler: `GET /metrics` exactly, 404 for anything else. */
  async function serve(req: IncomingMessage, res: ServerResponse) {
    if (req.url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      sendError(req, res, 'NOT_FOUND');
      return;
    }
    const text = await metrics.registry.metrics();
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.setHeader('Cache-Control', NO_STORE);
    res.end(text);
  }

  return { metrics, authOutcomes, upstreamErrors, wsOutcomes, refused, serve };
}
export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
