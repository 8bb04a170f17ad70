/**
 * The session-service's route handlers, built once: each routes/*.ts module gets the stores
 * (stores.ts) and settings it needs, and shares the session middleware, CSRF, the cookie, the
 * audit log and the login's steps. app.ts puts them behind its route table.
 */
import type { Request } from 'express';
import type { SessionServiceDeps } from './app.js';
import { createServiceMetrics } from './app-metrics.js';
import { createCsrf } from './csrf.js';
import type { PasswordVerifier } from './domain/passwords.js';
import { publishChanges } from './domain/revocation-channel.js';
import type { ValidSession } from './domain/session-repository.js';
import { createAuthHandlers, type LoginOutcome } from './routes/auth.js';
import { createOidcHandlers } from './routes/oidc.js';
import { createLoginSteps } from './routes/second-factor.js';
import { createSecurityHandlers } from './routes/security.js';
import { createSecurityKeyHandlers } from './routes/security-keys.js';
import { createServiceAccountHandlers } from './routes/service-accounts.js';
import { createSessionsHandlers } from './routes/sessions.js';
import { createTokensHandlers } from './routes/tokens.js';
import { createWebauthnHandlers } from './routes/webauthn.js';
import { createSessionMiddleware, SessionRepositoryStore } from './session-middleware.js';
import type { createStores } from './stores.js';

/** The session a request was validated with, for CSRF tokens and the handlers (requireSession). */
const currentSessions = new WeakMap<Request, ValidSession>();

export function createHandlers(deps: SessionServiceDeps, stores: ReturnType<typeof createStores>) {
  const { config, logger, redis } = deps;
  const env = config.env;
  const { sessions, validateSession, throttle, now } = stores;
  const store = new SessionRepositoryStore(sessions, (userId) => stores.users.findById(userId));
  const cookie = {
    name: config.cookieName,
    secure: config.https ? true : ('auto' as const),
    ...(env.COOKIE_DOMAIN ? { domain: env.COOKIE_DOMAIN } : {}),
  };
  const sessionMiddleware = createSessionMiddleware({ store, secrets: config.secrets, cookie });
  const csrf = createCsrf({
    secrets: config.secrets,
    https: config.https,
    identify: (req) => currentSessions.get(req)?.sid ?? '',
  });
  const allowedOrigins = env.PUBLIC_URL ? [new URL(env.PUBLIC_URL).origin] : [];
  const audit = logger.child({ audit: true });

  const { metrics, validateOutcomes, loginOutcomes, passwordChecks } = createServiceMetrics({
    redis,
    sessions,
    logger,
  });

  // Counted as they run, so a refusal "before any password check" is observable in /metrics.
  const verifier: PasswordVerifier = {
    verify: (hash, password) => {
      passwordChecks.inc();
      return deps.verifier.verify(hash, password);
    },
  };
  const onLogin = (outcome: LoginOutcome) => loginOutcomes.inc({ outcome });
  const policy = {
    required: env.REQUIRE_SECOND_FACTOR,
    graceDays: env.SECOND_FACTOR_GRACE_DAYS,
  };
  const users = stores.users;
  const oidc = createOidcHandlers({
    clients: stores.oidcClients,
    logins: stores.oidcLogins,
    externalUsers: stores.externalUsers,
    fileUsers: deps.users,
    sessions,
    steps: { afterPassword: (...args) => steps.afterPassword(...args) },
    https: config.https,
    allowedRedirectHosts: env.ALLOWED_REDIRECT_HOSTS,
    sessionRetentionMs: stores.sessionRetentionMs,
    audit,
    now,
    current: currentSessions,
    onLogin,
  });
  const steps = createLoginSteps({
    users,
    onSessionStarted: (sid, started) => oidc.indexSession(sid, started),
    sessions,
    secondFactors: stores.secondFactors,
    factors: stores.factors,
    pendingLogins: stores.pendingLogins,
    codeThrottle: stores.codeThrottle,
    csrf,
    cookie,
    https: config.https,
    policy,
    rememberMaxAgeMs: env.REMEMBER_ME_TIMEOUT * 1000,
    audit,
    now,
    onLogin,
  });
  const auth = createAuthHandlers({
    users,
    ...(stores.directoryLogin ? { directoryLogin: stores.directoryLogin } : {}),
    passwordForm: config.identitySources.passwordForm,
    providers: config.identitySources.oidc.map(({ id, name }) => ({ id, name })),
    providerLogoutUrl: (session) => oidc.providerLogoutUrl(session, env.PUBLIC_URL ?? ''),
    verifier,
    sessions,
    throttle,
    csrf,
    cookie,
    allowedRedirectHosts: env.ALLOWED_REDIRECT_HOSTS,
    allowedOrigins,
    rememberMe: env.REMEMBER_ME_TIMEOUT > 0,
    steps,
    audit,
    onLogin,
  });
  const securityDeps = {
    users,
    directoryLogin: stores.directoryLogin,
    verifier,
    sessions,
    secondFactors: stores.secondFactors,
    webauthn: stores.webauthn,
    steps,
    throttle,
    csrf,
    policy,
    allowedRedirectHosts: env.ALLOWED_REDIRECT_HOSTS,
    audit,
    now,
    current: currentSessions,
  };
  const security = createSecurityHandlers(securityDeps);
  const ownKeys = createSecurityKeyHandlers(securityDeps);
  const keys = createWebauthnHandlers({
    webauthn: stores.webauthn,
    steps,
    users,
    sessions,
    throttle,
    csrf,
    publicUrl: env.PUBLIC_URL,
    https: config.https,
    allowedRedirectHosts: env.ALLOWED_REDIRECT_HOSTS,
    now,
    current: currentSessions,
  });
  const mine = createSessionsHandlers({
    validateSession,
    sessions,
    users,
    csrf,
    cookie,
    secrets: config.secrets,
    ...(env.ADMIN_TOKEN ? { adminToken: env.ADMIN_TOKEN } : {}),
    audit,
    current: currentSessions,
  });

  // Access tokens: a user's own ("Your tokens"), and service accounts' through the admin API.
  const tokens = createTokensHandlers({
    accessTokens: stores.accessTokens,
    users,
    csrf,
    maxDays: env.TOKEN_MAX_DAYS,
    audit,
    now,
    current: currentSessions,
  });
  const services = createServiceAccountHandlers({
    serviceAccounts: stores.serviceAccounts,
    accessTokens: stores.accessTokens,
    fileUsers: deps.users,
    externalUsers: stores.externalUsers,
    maxDays: env.TOKEN_MAX_DAYS,
    publishChanged: (ids) => publishChanges(redis, env.REDIS_PREFIX, ids),
    audit,
    now,
  });

  return {
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
  };
}
