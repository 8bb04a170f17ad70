import express, { type NextFunction, type Request, type Response } from 'express';
import { NO_STORE, sendError } from '../../common/src/http.js';
import type { Logger } from '../../common/src/logger.js';
import { createMetrics, createRequestObserver } from '../../common/src/observability.js';
import { securityHeaders } from '../../common/src/security-headers.js';
import { type AssertionVerifier, identityMiddleware } from '../../common/src/verify-identity.js';
import { homePage, type Viewer } from './views.js';

export interface DemoAppDeps {
  logger: Logger;
  /** Verifies X-Auth-Request-Jwt; without it the plain headers are trusted (development only). */
  verifyIdentity?: AssertionVerifier;
}

const decode = (value: string) => {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
};

/** The signed identity when verification is on; else the plain headers (values outside printable ASCII arrive percent-encoded). */
function viewerOf(req: Request): Viewer | null {
  if (req.identity) {
    return {
      username: req.identity.name,
      groups: req.identity.groups,
      email: req.identity.email,
      expiresAt: req.get('x-auth-request-expires') ?? '',
      amr: req.identity.amr,
    };
  }
  const user = req.get('x-auth-request-user');
  if (!user) return null;
  const groups = req.get('x-auth-request-groups') ?? '';
  return {
    username: decode(user),
    groups: groups ? groups.split(',').map(decode) : [],
    email: decode(req.get('x-auth-request-email') ?? ''),
    expiresAt: req.get('x-auth-request-expires') ?? '',
    amr: (req.get('x-auth-request-amr') ?? '').split(',').filter(Boolean),
  };
}

export function createApp(deps: DemoAppDeps) {
  const metrics = createMetrics('demo-app');
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // What every answer gets, in one middleware (each router layer costs on every request): the
  // request id, log line and histogram; security headers; and no caching, since these are
  // private pages (Back after logout shows nothing).
  const observe = createRequestObserver(
    deps.logger,
    metrics,
    (req) => (req as Request).route?.path ?? 'other',
  );
  const headers = securityHeaders();
  app.use((req: Request, res: Response, next: NextFunction) => {
    observe(req, res, () => {
      headers(req, res, () => {
        res.setHeader('Cache-Control', NO_STORE);
        next();
      });
    });
  });

  // Every page needs an identity; with verification on, only a signed one counts.
  const requireIdentity = deps.verifyIdentity
    ? identityMiddleware(deps.verifyIdentity, {
        onRefused: (req, res) =>
          sendError(req, res, 'UNAUTHENTICATED', {
            message: 'This app only trusts identities signed by the Gatehouse session-service.',
          }),
      })
    : (_req: Request, _res: Response, next: NextFunction) => next();

  // The pages first: the router tries routes in order, and these are what users ask for.
  app.get('/', requireIdentity, (req: Request, res: Response) => {
    const viewer = viewerOf(req);
    if (!viewer)
      return sendError(req, res, 'UNAUTHENTICATED', {
        message: 'This app is served behind the Gatehouse gateway.',
      });
    res.type('html').send(homePage(viewer));
  });

  /** What this backend received: the identity and the request id (used by tests and by curious users). */
  app.get('/api/whoami', requireIdentity, (req: Request, res: Response) => {
    const viewer = viewerOf(req);
    if (!viewer) return sendError(req, res, 'UNAUTHENTICATED');
    res.json({
      user: viewer,
      signed: Boolean(req.identity),
      requestId: req.get('x-request-id') ?? null,
    });
  });

  // No identity needed for these.
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  // Browsers ask for it on every JSON page they show.
  app.get('/favicon.ico', (_req, res) => {
    res.status(204).end();
  });

  // Anything else: verified like a page (a 401 without a signed identity), then 404.
  app.use(requireIdentity, (req: Request, res: Response) => sendError(req, res, 'NOT_FOUND'));
  return app;
}
