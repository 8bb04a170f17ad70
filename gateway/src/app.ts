import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import { NO_STORE, requestIdFrom, sendError, wantsHtml } from '../../common/src/http.js';
import { identityHeaders } from '../../common/src/identity.js';
import type { Logger } from '../../common/src/logger.js';
import { createMetrics, createRequestObserver } from '../../common/src/observability.js';
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
  const trusted = (req: IncomingMessage) => trust(req.socket.remoteAddress ?? '', 0);

  /** Per request: the checked target and the route it went to (for logs and metrics). */
  const targets = new WeakMap<IncomingMessage, RequestTarget>();
  const routeIds = new WeakMap<IncomingMessage, string>();
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
    audience: string | undefined,
    cache?: Map<string, Promise<unknown>>,
  ): Promise<Validation | null> {
    const cookie = req.headers.cookie;
    const key = `${audience ?? ''}\n${cookie ?? ''}`;
    const cached = cache?.get(key) as Promise<Validation | null> | undefined;
    if (cached) return cached;
    const forwarded = forwardedFor(req, trusted(req));
    const pending = sessionClient.validate({
      ...(cookie ? { cookie } : {}),
      requestId: String(req.headers['x-request-id']),
      clientIp: (req as Partial<Request>).ip ?? forwarded.for.split(',')[0]?.trim() ?? '',
      userAgent: String(req.headers['user-agent'] ?? ''),
      ...(audience ? { audience } : {}),
    });
    cache?.set(key, pending);
    return pending;
  }

  /** The one decision, for HTTP requests and WebSocket upgrades alike. */
  const admit: Admit = async (req, options) => {
    const counted = !options.cache;
    const check = targetOf(req);
    if (!check.ok) return { ok: false, status: 400, code: 'BAD_PATH', message: BAD_PATH_MESSAGE };
    const target = check.target;
    if (isReserved(target) || isAuth(target)) return { ok: false, status: 404, code: 'NOT_FOUND' };
    const route = routes.current().match(hostnameOf(req), target.segments);
    if (!route)
      return {
        ok: false,
        status: 404,
        code: 'NOT_FOUND',
        message: 'No application is served at this address.',
      };
    let identity: Record<string, string> | undefined;
    if (route.public) {
      if (counted) authOutcomes.inc({ outcome: 'public' });
    } else {
      let validation: Validation | null;
      try {
        validation = await validate(req, config.JWT_ENABLED ? route.id : undefined, options.cache);
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
      identity = identityHeaders(validation.user, validation.session.expiresAt);
      if (validation.jwt) identity['x-auth-request-jwt'] = validation.jwt;
    }
    const isTrusted = trusted(req);
    const proxyTarget: ProxyTarget = {
      upstream: route.upstream,
      path: upstreamPath(route, target),
      timeoutMs: route.timeoutMs,
      headers: upstreamHeaders(req, {
        host: route.preserveHost ? (req.headers.host ?? route.upstream.host) : route.upstream.host,
        cookieNames,
        trusted: isTrusted,
        forwarded: forwardedFor(req, isTrusted),
        requestId: String(req.headers['x-request-id']),
        ...(identity ? { identity } : {}),
        ...(options.upgrade ? { upgrade: options.upgrade } : {}),
      }),
    };
    return { ok: true, target: proxyTarget, routeId: route.id };
  };

  function proxyToSessionService(req: IncomingMessage, res: ServerResponse, target: RequestTarget) {
    const isTrusted = trusted(req);
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

  app.use(
    createRequestObserver(logger, metrics, (req: IncomingMessage) => {
      const routeId = routeIds.get(req);
      if (routeId) return `upstream:${routeId}`;
      const target = targets.get(req);
      if (!target) return 'bad_path';
      if (isReserved(target)) return target.rawPath;
      return isAuth(target) ? '/auth' : 'unrouted';
    }),
  );

  // Before anything else decides on the path: refuse what another parser could read differently.
  app.use((req: Request, res: Response, next: NextFunction) => {
    const check = targetOf(req);
    if (!check.ok) {
      req.log?.info({ reason: check.reason }, 'refused request-target');
      return sendError(req, res, 400, 'BAD_PATH', BAD_PATH_MESSAGE);
    }
    next();
  });

  app.get(`${RESERVED_PREFIX}/healthz`, (_req, res) => {
    res.set('Cache-Control', NO_STORE).json({ status: 'ok' });
  });
  app.get(`${RESERVED_PREFIX}/metrics`, async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.use((req: Request, res: Response, next: NextFunction) => {
    const target = targets.get(req);
    if (!target) return next();
    if (isReserved(target)) return sendError(req, res, 404, 'NOT_FOUND');
    // /auth/* goes to the session-service as is (login page, login, logout, validate).
    if (isAuth(target)) return proxyToSessionService(req, res, target);
    next();
  });

  app.use(async (req: Request, res: Response) => {
    const admission = await admit(req, {});
    if (!admission.ok) {
      if (admission.status === 401) {
        res.set('Cache-Control', NO_STORE);
        if (wantsHtml(req))
          return res.redirect(302, `/auth/login?rd=${encodeURIComponent(req.originalUrl)}`);
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
    routeIds.set(req, admission.routeId);
    proxy.web(req, res, admission.target);
  });

  // The one error handler: nothing above should throw, but if it does, never a stack trace.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    logger.error({ err, requestId: req.headers['x-request-id'] }, 'unhandled error');
    sendError(req, res, 500, 'INTERNAL_ERROR');
  });

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
    app(req as Request, res as Response);
  }

  return Object.assign(app, {
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
