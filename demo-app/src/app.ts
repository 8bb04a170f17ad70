import express, { type Request, type Response } from 'express';
import helmet from 'helmet';
import { NO_STORE, sendError } from '../../common/src/http.js';
import type { Logger } from '../../common/src/logger.js';
import { createMetrics, createRequestObserver } from '../../common/src/observability.js';
import type { VerifiedIdentity } from '../../common/src/verify-identity.js';
import { homePage, type Viewer } from './views.js';

export interface DemoAppDeps {
  logger: Logger;
  /** Verifies X-Auth-Request-Jwt; without it the plain headers are trusted (development only). */
  verifyIdentity?: (token: string | undefined) => Promise<VerifiedIdentity>;
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
  };
}

export function createApp(deps: DemoAppDeps) {
  const metrics = createMetrics('demo-app');
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(
    createRequestObserver(deps.logger, metrics, (req) => (req as Request).route?.path ?? 'other'),
  );
  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'none'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          baseUri: ["'none'"],
        },
      },
      strictTransportSecurity: false,
      referrerPolicy: { policy: 'no-referrer' },
    }),
  );
  // Private pages: never cached, so Back after logout shows nothing.
  app.use((_req, res, next) => {
    res.set('Cache-Control', NO_STORE);
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  // Browsers ask for it on every JSON page they show; no identity needed for nothing.
  app.get('/favicon.ico', (_req, res) => {
    res.status(204).end();
  });

  // Everything below needs an identity; with verification on, only a signed one counts.
  const verify = deps.verifyIdentity;
  if (verify) {
    app.use((req: Request, res: Response, next) => {
      verify(req.get('x-auth-request-jwt')).then(
        (identity) => {
          req.identity = identity;
          next();
        },
        () =>
          sendError(
            req,
            res,
            401,
            'UNAUTHENTICATED',
            'This app only trusts identities signed by the Gatehouse session-service.',
          ),
      );
    });
  }

  app.get('/', (req: Request, res: Response) => {
    const viewer = viewerOf(req);
    if (!viewer)
      return sendError(
        req,
        res,
        401,
        'UNAUTHENTICATED',
        'This app is served behind the Gatehouse gateway.',
      );
    res.type('html').send(homePage(viewer));
  });

  /** What this backend received: the identity and the request id (used by tests and by curious users). */
  app.get('/api/whoami', (req: Request, res: Response) => {
    const viewer = viewerOf(req);
    if (!viewer) return sendError(req, res, 401, 'UNAUTHENTICATED');
    res.json({
      user: viewer,
      signed: Boolean(req.identity),
      requestId: req.get('x-request-id') ?? null,
    });
  });

  app.use((req: Request, res: Response) => sendError(req, res, 404, 'NOT_FOUND'));
  return app;
}
