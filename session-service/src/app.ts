/**
 * The session-service's Express app: the route table. Every route is listed here, in one place,
 * with the middleware in front of it; stores.ts builds what lives in Redis, handlers.ts the
 * handlers (routes/*.ts) from it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import cookieParser from 'cookie-parser';
import express, { type Request, type Response } from 'express';
import { NO_STORE, sendError } from '../../common/src/http.js';
import type { Logger } from '../../common/src/logger.js';
import { createRequestObserver } from '../../common/src/observability.js';
import { pingRedis, type RedisClient } from '../../common/src/redis.js';
import { securityHeaders } from '../../common/src/security-headers.js';
import { createTrust } from '../../common/src/trust-proxy.js';
import type { RevocationFeed } from './adapters/revocation-subscription.js';
import type { SessionServiceConfig } from './config.js';
import { fetchMetadataGuard } from './csrf.js';
import type { Directory } from './domain/directory.js';
import type { PasswordVerifier } from './domain/passwords.js';
import type { ThrottleLimits } from './domain/throttle.js';
import type { UsersRepository } from './domain/users.js';
import { errorHandler } from './error-handler.js';
import { createHandlers } from './handlers.js';
import { revocationsHandler } from './routes/revocation-feed.js';
import {
  internalValidateHandler,
  type ValidateOutcome,
  validateHandler,
} from './routes/validate.js';
import { createServerEntry } from './server-entry.js';
import { createStores } from './stores.js';

export interface SessionServiceDeps {
  config: SessionServiceConfig;
  logger: Logger;
  redis: RedisClient;
  users: UsersRepository;
  verifier: PasswordVerifier;
  /** Overrides of the login throttle's limits (tests). */
  throttleLimits?: Partial<ThrottleLimits>;
  /** Overrides of the second-factor code throttle's limits (tests). */
  codeThrottleLimits?: Partial<ThrottleLimits>;
  /** The clock of TOTP codes, pending logins, step-ups and the enrolment grace (tests move it). */
  now?: () => number;
  /** The revocation feed; by default one Redis subscription, opened by the first gateway. */
  revocations?: RevocationFeed;
  /** The LDAP directory (IDENTITY_SOURCES_FILE's ldap:), built by main.ts. */
  directory?: Directory;
}

const STATIC_DIR = fileURLToPath(new URL('../static/', import.meta.url));

/** Builds the session-service. Never listens: main.ts does, tests use supertest. */
export function createApp(deps: SessionServiceDeps) {
  const { config, logger, redis } = deps;
  const env = config.env;
  const stores = createStores(deps);
  const { validateSession, revocations, signer } = stores;
  const {
    metrics,
    validateOutcomes,
    sessionMiddleware,
    allowedOrigins,
    auth,
    steps,
    oidc,
    keys,
    security,
    ownKeys,
    mine,
    tokens,
    services,
  } = createHandlers(deps, stores);

  // TRUST_PROXY compiled once (common/src/trust-proxy.ts): Express's req.ip and req.protocol and
  // the validate handlers read the same function.
  const trust = createTrust(env.TRUST_PROXY);
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', trust.fn);
  app.set('etag', false);
  app.use(createRequestObserver(logger, metrics, (req) => (req as Request).route?.path ?? 'other'));

  // The validate path first and bare: no helmet, no body parser, no session middleware. Every
  // protected request takes it, so `/auth/validate` itself (GET/HEAD, any query) is served before
  // the Express router even starts (see the end of this function); the route below takes the
  // spellings only Express would match (`/auth/validate/`, other letter case).
  const validateDeps = {
    validateSession,
    cookieName: config.cookieName,
    secrets: config.secrets,
    trustProxy: trust.fn,
    logger,
    onOutcome: (outcome: ValidateOutcome) => validateOutcomes.inc({ outcome }),
    validateToken: stores.validateToken,
    clientIp: (req: IncomingMessage) => trust.clientIp(req, trust.peer(req)),
    https: config.https,
  };
  const guarded =
    (handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>) =>
    (req: IncomingMessage, res: ServerResponse) =>
      handler(req, res).catch((err: unknown) => {
        logger.error({ err, requestId: req.id }, 'unhandled error');
        if (!res.headersSent) sendError(req, res, 'INTERNAL_ERROR');
        else res.destroy();
      });
  // Public: never signs (a browser must not get a signed identity for an audience it chose).
  const serveValidate = guarded(validateHandler(validateDeps));
  // Trusted callers only (INTERNAL_TOKEN): validate plus the signed identity for ?aud=.
  const serveInternalValidate = guarded(
    internalValidateHandler({ ...validateDeps, signer, internalToken: env.INTERNAL_TOKEN }),
  );
  app.get('/auth/validate', serveValidate);
  app.get('/internal/validate', serveInternalValidate);

  // Gateways only (not under /auth/: never proxied to browsers). Revocations for their caches.
  app.get(
    '/internal/revocations',
    revocationsHandler({
      feed: revocations,
      cookieName: config.cookieName,
      ...(env.INTERNAL_TOKEN ? { internalToken: env.INTERNAL_TOKEN } : {}),
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
  app.get('/auth/.well-known/jwks.json', async (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300').json(await signer.jwks());
  });

  app.use(
    securityHeaders({
      formAction: env.ALLOWED_REDIRECT_HOSTS.map((h) => (h.startsWith('.') ? `*${h}` : h)),
      hsts: config.https,
      scripts: true,
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
  app.use(['/auth', '/admin'], (_req, res, next) => {
    res.set('Cache-Control', NO_STORE);
    next();
  });
  // Cross-site callers are refused before anything changes state (login, logout, revocations).
  app.use('/auth', fetchMetadataGuard({ allowedOrigins }), cookieParser());
  app.get('/auth/login', auth.showLogin);
  app.post('/auth/login', ...body, sessionMiddleware, auth.login);
  // The login's second step (a pending login, its own cookie), and enrolment when required.
  app.get('/auth/login/second-factor', steps.showSecondStep);
  app.post('/auth/login/second-factor', ...body, sessionMiddleware, steps.submitSecondStep);
  // WebAuthn (routes/webauthn.ts): the second step with a key, and a passkey instead of a password.
  app.post('/auth/login/webauthn/options', ...body, keys.secondStepOptions);
  app.post('/auth/login/webauthn', ...body, sessionMiddleware, keys.secondStep);
  app.post('/auth/login/passkey/options', ...body, keys.passkeyOptions);
  app.post('/auth/login/passkey', ...body, sessionMiddleware, keys.passkey);
  app.get('/auth/login/enrol', steps.showEnrolStep);
  app.post('/auth/login/enrol', ...body, sessionMiddleware, steps.submitEnrolStep);
  // Bodies the parser refuses (broken JSON, too large) count as failed attempts of the address.
  app.use('/auth/login', auth.countUnparsable);
  app.post('/auth/logout', ...body, sessionMiddleware, auth.logout);
  // OpenID Connect providers (routes/oidc.ts): sign in, step up, and the provider's logout.
  app.get('/auth/oidc/:provider/start', oidc.start);
  app.get('/auth/oidc/:provider/reauth', mine.requireSession, oidc.reauth);
  app.get('/auth/oidc/:provider/callback', sessionMiddleware, oidc.callback);
  app.post('/auth/oidc/:provider/backchannel-logout', ...body, oidc.backchannelLogout);

  app.get('/auth/sessions', mine.requireSession, mine.list);
  app.delete('/auth/sessions/:id', mine.requireSession, mine.revokeJson);
  app.post(
    '/auth/sessions/:id/revoke',
    ...body,
    mine.requireSession,
    mine.requireToken,
    mine.revokeForm,
  );
  app.post('/auth/logout-all', ...body, mine.requireSession, mine.requireToken, mine.logoutAll);

  // Personal access tokens (routes/tokens.ts): the session cookie only, never a token.
  app.get('/auth/tokens', mine.requireSession, tokens.list);
  app.post('/auth/tokens', ...body, mine.requireSession, mine.requireToken, tokens.create);
  app.post(
    '/auth/tokens/revoke-all',
    ...body,
    mine.requireSession,
    mine.requireToken,
    tokens.revokeAll,
  );
  app.post(
    '/auth/tokens/:id/revoke',
    ...body,
    mine.requireSession,
    mine.requireToken,
    tokens.revoke,
  );
  app.delete('/auth/tokens/:id', mine.requireSession, tokens.revoke);

  // Step-up (where the gateway sends a session that needs more) and the account's security.
  const signedIn = [mine.requireSession];
  const signedInForm = [...body, mine.requireSession, mine.requireToken];
  app.get('/auth/step-up', ...signedIn, security.showStepUp);
  app.post('/auth/step-up', ...signedInForm, security.submitStepUp);
  app.get('/auth/security', ...signedIn, security.showSecurity);
  app.get('/auth/security/totp', ...signedIn, security.showEnrol);
  app.post('/auth/security/totp', ...signedInForm, security.submitEnrol);
  app.post('/auth/security/recovery-codes', ...signedInForm, security.regenerateRecoveryCodes);
  app.post('/auth/security/totp/remove', ...signedInForm, security.removeTotp);
  app.post('/auth/security/webauthn/options', ...signedInForm, keys.registrationOptions);
  app.post('/auth/security/webauthn', ...signedInForm, keys.register);
  // One key: renamed or removed (a form, or JSON; DELETE as for one session).
  app.post('/auth/security/webauthn/:id/name', ...signedInForm, ownKeys.rename);
  app.post('/auth/security/webauthn/:id/remove', ...signedInForm, ownKeys.remove);
  app.delete('/auth/security/webauthn/:id', ...signedIn, ownKeys.remove);
  app.post('/auth/step-up/webauthn/options', ...signedInForm, keys.stepUpOptions);
  app.post('/auth/step-up/webauthn', ...signedInForm, keys.stepUp);

  // Service-to-service only: the gateway never proxies /admin (it is not under /auth/).
  app.get('/admin/users/:username/sessions', mine.requireAdmin, mine.adminList);
  app.delete('/admin/users/:username/sessions', mine.requireAdmin, mine.adminRevokeAll);
  app.delete('/admin/users/:username/sessions/:id', mine.requireAdmin, mine.adminRevokeOne);
  // Service accounts and their tokens (routes/service-accounts.ts).
  const admin = [mine.requireAdmin, ...body];
  app.post('/admin/service-accounts', ...admin, services.create);
  app.get('/admin/service-accounts', mine.requireAdmin, services.list);
  app.get('/admin/service-accounts/:name', mine.requireAdmin, services.show);
  app.patch('/admin/service-accounts/:name', ...admin, services.update);
  app.delete('/admin/service-accounts/:name', mine.requireAdmin, services.remove);
  app.post('/admin/service-accounts/:name/tokens', ...admin, services.createToken);
  app.get('/admin/service-accounts/:name/tokens', mine.requireAdmin, services.listTokens);
  app.delete('/admin/service-accounts/:name/tokens/:id', mine.requireAdmin, services.revokeToken);

  app.use((req: Request, res: Response) => sendError(req, res, 'NOT_FOUND'));
  app.use(errorHandler(logger));
  return createServerEntry({
    app,
    logger,
    metrics,
    serveValidate,
    serveInternalValidate,
    closeRevocationStreams: () => revocations.close(),
  });
}
