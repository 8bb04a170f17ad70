import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import { Counter, Gauge } from 'prom-client';
import { NO_STORE, requestIdFrom, sendError, wantsHtml } from '../../common/src/http.js';
import { identityHeaders } from '../../common/src/identity.js';
import type { Logger } from '../../common/src/logger.js';
import { createMetrics, observeRequest } from '../../common/src/observability.js';
import type { GatewayConfig } from './config.js';
import {
  forwardedFor,
  hasBody,
  sessionCookieNames,
  type TrustFn,
  upstreamHeaders,
} from './headers.js';
import { createAgentPool, createProxy, type ProxyTarget } from './proxy.js';
import { checkRequestTarget, type RequestTarget, stripSegments } from './request-target.js';
import { createRouteStore, isAllowed, type Route, type RouteStore } from './routes.js';
import {
  type SessionClient,
  SessionServiceUnavailableError,
  type Validation,
} from './session-client.js';
import { type Admission, type Admit, createWebSocketProxy } from './websocket.js';

export interface GatewayDeps {
  config: GatewayConfig;
  logger: Logger;
  sessionClient: SessionClient;
  /** The route table; by default read from config.GATEWAY_ROUTES, or the one default route. */
  routes?: RouteStore;
}

/** The gateway's own endpoints live here; no route can send this prefix upstream. */
export const RESERVED_PREFIX = '/_gatehouse';

const BAD_PATH_MESSAGE = 'The request path is not allowed.';

/** The Host header's name, lowercase, without port or trailing dot. */
export function hostnameOf(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  if (!host) return undefined;
  const name = /^(\[[^\]]*\]|[^:]*)(?::\d*)?$/.exec(host)?.[1];
  return name ? name.toLowerCase().replace(/\.$/, '') : undefined;
}

const isReserved = (t: RequestTarget) => t.segments[0] === '_gatehouse';
const isAuth = (t: RequestTarget) => t.segments[0] === 'auth';

/** A request the gateway answers itself or proxies: what its log line and metrics need. */
interface Observed {
  target?: RequestTarget;
  routeId?: string;
}

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
  const metrics = createMetrics('gateway');
  const authOutcomes = metrics.counter(
    'gatehouse_gateway_auth_total',
    'Gateway auth decisions by outcome',
    ['outcome'] as const,
  );
  const upstreamErrors = metrics.counter(
    'gatehouse_upstream_errors_total',
    'Upstream errors by code',
    ['code'] as const,
  );
  const wsOutcomes = metrics.counter(
    'gatehouse_gateway_websocket_total',
    'WebSocket upgrades and closes by outcome',
    ['outcome'] as const,
  );
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
  const agents = createAgentPool();
  const proxy = createProxy({
    logger,
    agents,
    onUpstreamError: (code) => upstreamErrors.inc({ code }),
  });
  const sessionService = new URL(config.SESSION_SERVICE_URL);
  const cookieNames = sessionCookieNames(config.COOKIE_NAME);
  const noCookies = new Set<string>();

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.TRUST_PROXY);
  app.set('etag', false);
  const trust = app.get('trust proxy fn') as TrustFn;
  // Whether the peer is a trusted proxy, once per connection (it is the same peer throughout).
  const trustedPeers = new WeakMap<Socket, boolean>();
  const trusted = (req: IncomingMessage) => {
    const known = trustedPeers.get(req.socket);
    if (known !== undefined) return known;
    const verdict = trust(req.socket.remoteAddress ?? '', 0);
    trustedPeers.set(req.socket, verdict);
    return verdict;
  };
  /** The client's address as Express computes `req.ip`: the X-Forwarded-For chain, right to left, up to the first untrusted hop. */
  const clientIp = (req: IncomingMessage, isTrusted: boolean): string => {
    const peer = req.socket.remoteAddress ?? '';
    const header = req.headers['x-forwarded-for'];
    if (!isTrusted || !header) return peer;
    const chain = (Array.isArray(header) ? header.join(',') : header)
      .split(',')
      .map((a) => a.trim())
      .reverse();
    const addrs = [peer, ...chain];
    for (let i = 0; i < addrs.length - 1; i++) {
      if (!trust(addrs[i] ?? '', i)) return addrs[i] ?? '';
    }
    return addrs[addrs.length - 1] ?? '';
  };

  /** Identity headers per validate answer (the cache hands out the same object until it expires). */
  const identities = new WeakMap<Validation, Record<string, string>>();
  const identityOf = (validation: Validation) => {
    let identity = identities.get(validation);
    if (!identity) {
      identity = identityHeaders(validation.user, validation.session.expiresAt);
      if (validation.jwt) identity['x-auth-request-jwt'] = validation.jwt;
      identities.set(validation, identity);
    }
    return identity;
  };

  /** The checked target of requests Express serves (reserved paths, /auth/, upgrades). */
  const targets = new WeakMap<IncomingMessage, RequestTarget>();
  const targetOf = (req: IncomingMessage) => {
    const known = targets.get(req);
    if (known) return { ok: true as const, target: known };
    const check = checkRequestTarget(req.url);
    if (check.ok) targets.set(req, check.target);
    return check;
  };

  function upstreamPath(route: Route, target: RequestTarget): string {
    const base = route.upstream.pathname.replace(/\/$/, '');
    const path = route.stripPrefix ? stripSegments(target, route.segments.length) : target.rawPath;
    return `${base}${path}${target.search}`;
  }

  function validate(
    req: IncomingMessage,
    isTrusted: boolean,
    audience: string | undefined,
    cache?: Map<string, Promise<unknown>>,
  ): Promise<Validation | null> {
    const cookie = req.headers.cookie;
    const key = cache ? `${audience ?? ''}\n${cookie ?? ''}` : '';
    const cached = cache?.get(key) as Promise<Validation | null> | undefined;
    if (cached) return cached;
    const pending = sessionClient.validate({
      ...(cookie ? { cookie } : {}),
      ...(audience ? { audience } : {}),
      // Read only when the session-service is asked (a cache miss), not on every request: the
      // client address walks X-Forwarded-For.
      get requestId() {
        return String(req.headers['x-request-id']);
      },
      get clientIp() {
        return clientIp(req, isTrusted);
      },
      get userAgent() {
        return String(req.headers['user-agent'] ?? '');
      },
    });
    cache?.set(key, pending);
    return pending;
  }

  /** The one decision, for HTTP requests and WebSocket upgrades alike. */
  async function decide(
    req: IncomingMessage,
    target: RequestTarget,
    options: Parameters<Admit>[1],
  ): Promise<Admission> {
    const counted = !options.cache;
    if (isReserved(target) || isAuth(target)) return { ok: false, status: 404, code: 'NOT_FOUND' };
    const route = routes.current().match(hostnameOf(req), target.segments);
    if (!route)
      return {
        ok: false,
        status: 404,
        code: 'NOT_FOUND',
        message: 'No application is served at this address.',
      };
    const isTrusted = trusted(req);
    let identity: Record<string, string> | undefined;
    if (route.public) {
      if (counted) authOutcomes.inc({ outcome: 'public' });
    } else {
      let validation: Validation | null;
      try {
        const audience = config.JWT_ENABLED ? route.id : undefined;
        validation = await validate(req, isTrusted, audience, options.cache);
      } catch (err) {
        if (counted) {
          // (re-checks of open WebSockets stay quiet: the tunnel logs when it closes)
          authOutcomes.inc({ outcome: 'unavailable' });
          const reason = err instanceof SessionServiceUnavailableError ? err.message : String(err);
          logger.warn(
            { reason, requestId: req.headers['x-request-id'] },
            'session service unavailable: failing closed',
          );
        }
        return {
          ok: false,
          status: 503,
          code: 'SESSION_SERVICE_UNAVAILABLE',
          message: 'Sign-in is unavailable right now. Try again shortly.',
          headers: { 'Retry-After': '1' },
        };
      }
      if (!validation) {
        if (counted) authOutcomes.inc({ outcome: 'unauthenticated' });
        return { ok: false, status: 401, code: 'UNAUTHENTICATED' };
      }
      if (!isAllowed(route, validation.user)) {
        if (counted) {
          authOutcomes.inc({ outcome: 'forbidden' });
          logger.info(
            {
              route: route.id,
              user: validation.user.username,
              requestId: req.headers['x-request-id'],
            },
            'not allowed on this route',
          );
        }
        return { ok: false, status: 403, code: 'FORBIDDEN' };
      }
      if (counted) authOutcomes.inc({ outcome: 'ok' });
      identity = identityOf(validation);
    }
    const requestId = String(req.headers['x-request-id']);
    const proxyTarget: ProxyTarget = {
      upstream: route.upstream,
      path: upstreamPath(route, target),
      timeoutMs: route.timeoutMs,
      requestId,
      headers: upstreamHeaders(req, {
        host: route.preserveHost ? (req.headers.host ?? route.upstream.host) : route.upstream.host,
        cookieNames,
        trusted: isTrusted,
        forwarded: forwardedFor(req, isTrusted),
        requestId,
        ...(identity ? { identity } : {}),
        ...(options.upgrade ? { upgrade: options.upgrade } : {}),
      }),
    };
    return { ok: true, target: proxyTarget, routeId: route.id };
  }

  const admit: Admit = async (req, options) => {
    const check = targetOf(req);
    if (!check.ok) return { ok: false, status: 400, code: 'BAD_PATH', message: BAD_PATH_MESSAGE };
    return decide(req, check.target, options);
  };

  function proxyToSessionService(req: IncomingMessage, res: ServerResponse, target: RequestTarget) {
    const isTrusted = trusted(req);
    // A logout or a revocation may end this cookie's session: stop serving it from this
    // gateway's cache now (the session-service's revocation event reaches every gateway).
    if (req.method !== 'GET' && req.method !== 'HEAD') sessionClient.forget?.(req.headers.cookie);
    proxy.web(req, res, {
      upstream: sessionService,
      path: `${target.rawPath}${target.search}`,
      timeoutMs: config.VALIDATE_TIMEOUT_MS * 4,
      headers: upstreamHeaders(req, {
        host: req.headers.host ?? sessionService.host,
        cookieNames: noCookies, // logout needs the session cookie
        trusted: isTrusted,
        forwarded: forwardedFor(req, isTrusted),
        requestId: String(req.headers['x-request-id']),
      }),
    });
  }

  // Express serves only the gateway's own endpoints and /auth/; proxied requests take the
  // shorter path in `handle` below (no router, no per-request logger child: docs/performance.md).
  app.get(`${RESERVED_PREFIX}/healthz`, (_req, res) => {
    res.set('Cache-Control', NO_STORE).json({ status: 'ok' });
  });
  app.get(`${RESERVED_PREFIX}/metrics`, async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.use((req: Request, res: Response) => {
    const target = targets.get(req);
    // /auth/* goes to the session-service as is (login page, login, logout, validate).
    if (target && isAuth(target)) return proxyToSessionService(req, res, target);
    sendError(req, res, 404, 'NOT_FOUND');
  });

  // The one error handler: nothing above should throw, but if it does, never a stack trace.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    logger.error({ err, requestId: req.headers['x-request-id'] }, 'unhandled error');
    sendError(req, res, 500, 'INTERNAL_ERROR');
  });

  /** The histogram's route label: filled in as the request is understood. */
  function routeLabel(observed: Observed): string {
    if (observed.routeId) return `upstream:${observed.routeId}`;
    const target = observed.target;
    if (!target) return 'bad_path';
    if (isReserved(target)) return target.rawPath;
    return isAuth(target) ? '/auth' : 'unrouted';
  }

  async function serve(req: IncomingMessage, res: ServerResponse, observed: Observed) {
    const target = observed.target as RequestTarget;
    const admission = await decide(req, target, {});
    if (!admission.ok) {
      res.setHeader('X-Request-Id', String(req.headers['x-request-id']));
      if (admission.status === 401) {
        res.setHeader('Cache-Control', NO_STORE);
        if (wantsHtml(req)) {
          const location = `/auth/login?rd=${encodeURIComponent(req.url ?? '/')}`;
          res.statusCode = 302;
          res.setHeader('Location', location);
          res.setHeader('Content-Type', 'text/html; charset=utf-8');
          res.end(`<p>Found. Redirecting to <a href="${location}">${location}</a></p>`);
          return;
        }
      }
      return sendError(
        req,
        res,
        admission.status,
        admission.code,
        admission.message,
        admission.headers,
      );
    }
    observed.routeId = admission.routeId;
    proxy.web(req, res, admission.target);
  }

  /** Every HTTP request starts here. */
  function handle(req: IncomingMessage, res: ServerResponse) {
    const observed: Observed = {};
    // Request id, log line and histogram, without a per-request child logger. The X-Request-Id
    // answer header is set by whoever answers (a proxied answer carries it in its raw headers).
    observeRequest(logger, metrics, req, res, () => routeLabel(observed));
    // Before anything else decides on the path: refuse what another parser could read differently.
    const check = checkRequestTarget(req.url);
    if (!check.ok || isReserved(check.target) || isAuth(check.target))
      res.setHeader('X-Request-Id', String(req.headers['x-request-id']));
    if (!check.ok) {
      logger.info(
        { reason: check.reason, requestId: req.headers['x-request-id'] },
        'refused request-target',
      );
      return sendError(req, res, 400, 'BAD_PATH', BAD_PATH_MESSAGE);
    }
    const target = check.target;
    observed.target = target;
    if (isReserved(target) || isAuth(target)) {
      targets.set(req, target);
      app(req as Request, res as Response);
      return;
    }
    serve(req, res, observed).catch((err: unknown) => {
      logger.error({ err, requestId: req.headers['x-request-id'] }, 'unhandled error');
      if (!res.headersSent) res.setHeader('X-Request-Id', String(req.headers['x-request-id']));
      sendError(req, res, 500, 'INTERNAL_ERROR');
    });
  }

  const websockets = createWebSocketProxy({
    admit,
    logger,
    intervalMs: config.WS_REVALIDATE_MS,
    onOutcome: (outcome) => wsOutcomes.inc({ outcome }),
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
      const res = `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${JSON.stringify({ error: 'BAD_REQUEST', message: 'Upgrade requests may not carry a body.' })}`;
      socket.end(res);
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

  return Object.assign(handle, {
    /** Like Express's app.listen: an http.Server serving this gateway. */
    listen(port: number, host: string, callback?: () => void): http.Server {
      return http.createServer(handle).listen(port, host, callback);
    },
    handleUpgrade,
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

export type { Admission };
