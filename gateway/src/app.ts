import type { IncomingMessage } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { NO_STORE, sendError, wantsHtml } from '../../common/src/http.js';
import { IDENTITY_HEADERS, identityHeaders } from '../../common/src/identity.js';
import type { Logger } from '../../common/src/logger.js';
import { createMetrics, createRequestObserver } from '../../common/src/observability.js';
import type { GatewayConfig } from './config.js';
import { createUpstreamProxy } from './proxy.js';
import { type SessionClient, SessionServiceUnavailableError } from './session-client.js';

export interface GatewayDeps {
  config: GatewayConfig;
  logger: Logger;
  sessionClient: SessionClient;
}

/** The gateway's own endpoints live here; no route can send this prefix upstream. */
export const RESERVED_PREFIX = '/_gatehouse';

const isAuthPath = (path: string) => path === '/auth' || path.startsWith('/auth/');

/**
 * Remove every client-sent copy of the identity headers (any casing, any number of copies: Node
 * lowercases and joins them into req.headers, which is what the proxy forwards), and forwarded
 * headers unless the peer is a trusted proxy.
 */
export function sanitizeHeaders(req: Request, _res: Response, next: NextFunction) {
  for (const name of IDENTITY_HEADERS) delete req.headers[name];
  const trust = req.app.get('trust proxy fn') as (addr: string, i: number) => boolean;
  const peer = req.socket.remoteAddress ?? '';
  if (!trust(peer, 0)) {
    for (const name of [
      'x-forwarded-for',
      'x-forwarded-proto',
      'x-forwarded-host',
      'x-forwarded-port',
      'x-real-ip',
      'forwarded',
    ]) {
      delete req.headers[name];
    }
  }
  // What the upstream learns about the client: from the real connection, or from a trusted proxy.
  const chain = req.headers['x-forwarded-for'];
  req.headers['x-forwarded-for'] = chain ? `${chain}, ${peer}` : peer;
  req.headers['x-forwarded-proto'] = req.protocol;
  req.headers['x-forwarded-host'] = req.get('host') ?? '';
  next();
}

export function createApp(deps: GatewayDeps) {
  const { config, logger, sessionClient } = deps;
  const metrics = createMetrics('gateway');
  const validateOutcomes = metrics.counter(
    'gatehouse_gateway_auth_total',
    'Gateway auth decisions by outcome',
    ['outcome'] as const,
  );
  const upstreamErrors = metrics.counter(
    'gatehouse_upstream_errors_total',
    'Upstream errors by code',
    ['code'] as const,
  );

  const authProxy = createUpstreamProxy({
    target: config.SESSION_SERVICE_URL,
    timeoutMs: config.VALIDATE_TIMEOUT_MS * 4,
    logger,
    pathFilter: isAuthPath,
    onUpstreamError: (code) => upstreamErrors.inc({ code }),
  });
  const upstream = createUpstreamProxy({
    target: config.UPSTREAM_URL,
    timeoutMs: config.UPSTREAM_TIMEOUT_MS,
    logger,
    onUpstreamError: (code) => upstreamErrors.inc({ code }),
  });

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.TRUST_PROXY);
  app.set('etag', false);
  app.use(
    createRequestObserver(logger, metrics, (req: IncomingMessage) => {
      const path = (req as Request).path ?? '';
      return path.startsWith(RESERVED_PREFIX) ? path : isAuthPath(path) ? '/auth' : 'upstream';
    }),
  );

  app.get(`${RESERVED_PREFIX}/healthz`, (_req, res) => {
    res.set('Cache-Control', NO_STORE).json({ status: 'ok' });
  });
  app.get(`${RESERVED_PREFIX}/metrics`, async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.use(RESERVED_PREFIX, (req, res) => sendError(req, res, 404, 'NOT_FOUND'));

  app.use(sanitizeHeaders);
  // /auth/* goes to the session-service as is (login page, login, logout, validate).
  app.use(authProxy.middleware);

  app.use(async (req: Request, res: Response, next: NextFunction) => {
    let validation: Awaited<ReturnType<SessionClient['validate']>>;
    try {
      validation = await sessionClient.validate({
        ...(req.headers.cookie ? { cookie: req.headers.cookie } : {}),
        requestId: String(req.headers['x-request-id']),
        clientIp: req.ip ?? '',
        userAgent: String(req.headers['user-agent'] ?? ''),
      });
    } catch (err) {
      validateOutcomes.inc({ outcome: 'unavailable' });
      const message = err instanceof SessionServiceUnavailableError ? err.message : String(err);
      req.log?.warn({ reason: message }, 'session service unavailable: failing closed');
      return sendError(
        req,
        res,
        503,
        'SESSION_SERVICE_UNAVAILABLE',
        'Sign-in is unavailable right now. Try again shortly.',
        { 'Retry-After': '1' },
      );
    }
    if (!validation) {
      validateOutcomes.inc({ outcome: 'unauthenticated' });
      res.set('Cache-Control', NO_STORE);
      if (wantsHtml(req)) {
        return res.redirect(302, `/auth/login?rd=${encodeURIComponent(req.originalUrl)}`);
      }
      return sendError(req, res, 401, 'UNAUTHENTICATED');
    }
    validateOutcomes.inc({ outcome: 'ok' });
    Object.assign(req.headers, identityHeaders(validation.user, validation.session.expiresAt));
    next();
  });
  app.use(upstream.middleware);

  return Object.assign(app, {
    close() {
      authProxy.close();
      upstream.close();
    },
  });
}
