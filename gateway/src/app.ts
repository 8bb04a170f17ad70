import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorResponseBytes, requestIdFrom } from '../../common/src/http.js';
import type { Logger } from '../../common/src/logger.js';
import { createTrust } from '../../common/src/trust-proxy.js';
import type { GatewayConfig } from './config.js';
import { createCookiePolicy } from './cookies.js';
import { createGatewayMetrics } from './metrics.js';
import { createAgentPool, createProxy } from './proxy.js';
import { hasBody } from './request-headers.js';
import { createRouteStore, type RouteStore } from './routes-file.js';
import { createServerEntry } from './server.js';
import type { SessionClient } from './session-client.js';
import { createWebSocketProxy } from './websocket.js';

export { RESERVED_PREFIX } from './server.js';

export interface GatewayDeps {
  config: GatewayConfig;
  logger: Logger;
  sessionClient: SessionClient;
  /** The route table; by default read from config.GATEWAY_ROUTES, or the one default route. */
  routes?: RouteStore;
}

/**
 * The gateway, composed: route table, trust, cookie policy, metrics, proxy and WebSocket tunnels
 * around the server entry (server.ts). Never listens by itself (main.ts does, or `listen`).
 */
export function createApp(deps: GatewayDeps) {
  const { config, logger, sessionClient } = deps;
  const routes =
    deps.routes ??
    createRouteStore({
      ...(config.GATEWAY_ROUTES ? { file: config.GATEWAY_ROUTES } : {}),
      defaultUpstream: config.UPSTREAM_URL,
      defaultTimeoutMs: config.UPSTREAM_TIMEOUT_MS,
      logger,
    });
  const metrics = createGatewayMetrics(sessionClient);
  const agents = createAgentPool();
  const proxy = createProxy({
    logger,
    agents,
    onUpstreamError: (code) => metrics.upstreamErrors.inc({ code }),
  });
  const entry = createServerEntry({
    config,
    logger,
    sessionClient,
    routes,
    proxy,
    metrics,
    trust: createTrust(config.TRUST_PROXY),
    cookies: createCookiePolicy(config.COOKIE_NAME),
  });
  const { handle } = entry;

  const websockets = createWebSocketProxy({
    admit: entry.admit,
    logger,
    intervalMs: config.WS_REVALIDATE_MS,
    ...(sessionClient.feed ? { feed: sessionClient.feed } : {}),
    onOutcome: (outcome) => metrics.wsOutcomes.inc({ outcome }),
  });

  /**
   * `server.on('upgrade', app.handleUpgrade)`. WebSocket upgrades are decided like HTTP requests
   * and tunnelled; any other upgrade (h2c) is ignored as RFC 9110 §7.8 allows and the request is
   * served over HTTP/1.1.
   */
  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    req.headers['x-request-id'] = requestIdFrom(req.headers['x-request-id']);
    if (String(req.headers.upgrade).toLowerCase() !== 'websocket') {
      serveWithoutUpgrade(req, socket, head);
      return;
    }
    void websockets.handleUpgrade(req, socket, head);
  }

  function serveWithoutUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    socket.on('error', () => socket.destroy());
    if (hasBody(req) || head.length > 0) {
      socket.end(
        errorResponseBytes('BAD_REQUEST', { message: 'Upgrade requests may not carry a body.' }),
      );
      return;
    }
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as never);
    res.once('finish', () => {
      res.detachSocket(socket as never);
      socket.end();
    });
    res.once('close', () => socket.destroy());
    // the parser let go of this socket: the request has no body left to read
    if (!req.complete) req.push(null);
    handle(req, res);
  }

  /** An http.Server wired as main.ts wires it: requests, upgrades, parser errors. */
  function createServer(): http.Server {
    const server = http.createServer(handle);
    server.on('upgrade', handleUpgrade);
    server.on('clientError', entry.handleClientError);
    return server;
  }

  return Object.assign(handle, {
    /** Like Express's app.listen: an http.Server serving this gateway. */
    listen(port: number, host: string, callback?: () => void): http.Server {
      return createServer().listen(port, host, callback);
    },
    createServer,
    handleUpgrade,
    handleClientError: entry.handleClientError,
    /** The metrics listener's handler (GET /metrics), for GATEWAY_METRICS_PORT. */
    serveMetrics: metrics.serve,
    /** Re-read the routes file now (also on file change and SIGHUP, wired in main.ts). */
    reloadRoutes: () => routes.reload(),
    routes,
    websockets,
    close() {
      websockets.close();
      agents.close();
    },
  });
}

export type { Admission } from './websocket.js';
