import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import { AppError } from '../../common/src/errors.js';
import { NO_STORE, sendError } from '../../common/src/http.js';
import type { Logger } from '../../common/src/logger.js';
import { createMetrics, createRequestObserver } from '../../common/src/observability.js';
import { pingRedis, type RedisClient } from '../../common/src/redis.js';
import type { SessionServiceConfig } from './config.js';
import { HasherBusyError, type PasswordVerifier } from './domain/passwords.js';
import { createSessionStore, type Lifetimes } from './domain/sessions.js';
import type { UsersRepository } from './domain/users.js';
import { createAuthHandlers } from './routes/auth.js';
import { validateHandler } from './routes/validate.js';
import { createSessionMiddleware, GatehouseRedisStore } from './session-middleware.js';

export interface SessionServiceDeps {
  config: SessionServiceConfig;
  logger: Logger;
  redis: RedisClient;
  users: UsersRepository;
  verifier: PasswordVerifier;
}

const STATIC_DIR = fileURLToPath(new URL('../static/', import.meta.url));

/** Builds the session-service. Never listens: main.ts does, tests use supertest. */
export function createApp(deps: SessionServiceDeps) {
  const { config, logger, redis } = deps;
  const env = config.env;
  const lifetimes: Lifetimes = {
    idleSeconds: env.SESSION_IDLE_TIMEOUT,
    absoluteSeconds: env.SESSION_ABSOLUTE_TIMEOUT,
    rememberIdleSeconds:
      env.REMEMBER_ME_TIMEOUT > 0
        ? Math.min(env.REMEMBER_ME_IDLE_TIMEOUT, env.REMEMBER_ME_TIMEOUT)
        : env.SESSION_IDLE_TIMEOUT,
    rememberAbsoluteSeconds:
      env.REMEMBER_ME_TIMEOUT > 0 ? env.REMEMBER_ME_TIMEOUT : env.SESSION_ABSOLUTE_TIMEOUT,
  };
  const sessions = createSessionStore({ redis, lifetimes, prefix: env.REDIS_PREFIX });
  const store = new GatehouseRedisStore(redis, env.REDIS_PREFIX, lifetimes);
  const cookie = {
    name: config.cookieName,
    secure: config.https ? true : ('auto' as const),
    ...(env.COOKIE_DOMAIN ? { domain: env.COOKIE_DOMAIN } : {}),
  };
  const sessionMiddleware = createSessionMiddleware({ store, secrets: config.secrets, cookie });
  const audit = logger.child({ audit: true });

  const metrics = createMetrics('session-service');
  const validateOutcomes = metrics.counter(
    'gatehouse_validate_total',
    'Validate requests by outcome',
    ['outcome'] as const,
  );
  const loginOutcomes = metrics.counter(
    'gatehouse_login_attempts_total',
    'Login attempts by outcome',
    ['outcome'] as const,
  );

  const auth = createAuthHandlers({
    users: deps.users,
    verifier: deps.verifier,
    sessions,
    store,
    cookie,
    allowedRedirectHosts: env.ALLOWED_REDIRECT_HOSTS,
    rememberMe: env.REMEMBER_ME_TIMEOUT > 0,
    rememberMaxAgeMs: env.REMEMBER_ME_TIMEOUT * 1000,
    audit,
    onLogin: (outcome) => loginOutcomes.inc({ outcome }),
  });

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', env.TRUST_PROXY);
  app.set('etag', false);
  app.use(createRequestObserver(logger, metrics, (req) => (req as Request).route?.path ?? 'other'));

  // The validate path first and bare: no helmet, no body parser, no session middleware.
  app.get(
    '/auth/validate',
    validateHandler({
      sessions,
      cookieName: config.cookieName,
      secrets: config.secrets,
      onOutcome: (outcome) => validateOutcomes.inc({ outcome }),
    }),
  );

  app.get('/healthz', (_req, res) => {
    res.set('Cache-Control', NO_STORE).json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const ready = await pingRedis(redis);
    res
      .set('Cache-Control', NO_STORE)
      .status(ready ? 200 : 503)
      .json(ready ? { status: 'ready' } : { status: 'not ready', redis: 'unreachable' });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'none'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'"],
          formAction: [
            "'self'",
            ...env.ALLOWED_REDIRECT_HOSTS.map((h) => (h.startsWith('.') ? `*${h}` : h)),
          ],
          frameAncestors: ["'none'"],
          baseUri: ["'none'"],
        },
      },
      strictTransportSecurity: config.https
        ? { maxAge: 31_536_000, includeSubDomains: true }
        : false,
      referrerPolicy: { policy: 'no-referrer' },
    }),
  );
  app.use(
    '/auth/static',
    express.static(STATIC_DIR, { maxAge: '1h', fallthrough: false, index: false }),
  );

  const body = [
    express.urlencoded({ extended: false, limit: env.LOGIN_BODY_LIMIT, parameterLimit: 20 }),
    express.json({ limit: env.LOGIN_BODY_LIMIT, strict: true }),
  ];
  app.use('/auth', (_req, res, next) => {
    res.set('Cache-Control', NO_STORE);
    next();
  });
  app.get('/auth/login', auth.showLogin);
  app.post('/auth/login', ...body, sessionMiddleware, auth.login);
  app.post('/auth/logout', ...body, sessionMiddleware, auth.logout);

  app.use((req: Request, res: Response) => sendError(req, res, 404, 'NOT_FOUND'));
  app.use(errorHandler(logger));
  return app;
}

/** The one error handler: stable codes, JSON or a short page, never a stack trace. */
export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof AppError) {
      if (err.status >= 500)
        req.log?.warn({ err: { code: err.code, message: err.message } }, 'request failed');
      return sendError(req, res, err.status, err.code, err.message, err.headers);
    }
    if (err instanceof HasherBusyError) {
      return sendError(req, res, 503, 'BUSY', 'Too many sign-ins right now. Try again shortly.', {
        'Retry-After': '1',
      });
    }
    const e = err as { type?: string; status?: number; message?: string };
    switch (e.type) {
      case 'entity.parse.failed':
        return sendError(req, res, 400, 'INVALID_JSON');
      case 'entity.too.large':
        return sendError(req, res, 413, 'PAYLOAD_TOO_LARGE');
      case 'encoding.unsupported':
      case 'charset.unsupported':
        return sendError(req, res, 415, 'UNSUPPORTED_MEDIA_TYPE');
      case 'parameters.too.many':
        return sendError(req, res, 413, 'PAYLOAD_TOO_LARGE', 'Too many form fields.');
    }
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      return sendError(req, res, e.status, e.status === 404 ? 'NOT_FOUND' : 'BAD_REQUEST');
    }
    logger.error({ err, requestId: req.id }, 'unhandled error');
    sendError(req, res, 500, 'INTERNAL_ERROR');
  };
}
