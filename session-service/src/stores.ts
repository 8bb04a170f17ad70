import { createRedisSubscriber } from '../../common/src/redis.js';
import { createOidcClient } from './adapters/oidc-client.js';
import { createRevocationFeed } from './adapters/revocation-subscription.js';
import type { SessionServiceDeps } from './app.js';
import { sessionLifetimes } from './config.js';
import { createAccessTokens } from './domain/access-tokens.js';
import { createAssertionSigner } from './domain/assertions.js';
import { composeUsers, createExternalUsers, isExternalUserId } from './domain/external-users.js';
import { createRedisFactorRepository } from './domain/factors-redis.js';
import { createOidcLogins } from './domain/oidc-logins.js';
import { createPendingLogins } from './domain/pending-logins.js';
import { createRecoveryCodes } from './domain/recovery-codes.js';
import { publishRevocations } from './domain/revocation-channel.js';
import { createSealer } from './domain/sealing.js';
import { createSecondFactors } from './domain/second-factor.js';
import { createServiceAccounts } from './domain/service-accounts.js';
import { createSessionHandles } from './domain/session-handles.js';
import { createRedisSessionRepository } from './domain/session-repository-redis.js';
import { CODE_THROTTLE_LIMITS, createLoginThrottle } from './domain/throttle.js';
import { createSessionValidator } from './domain/validate-session.js';
import { createTokenValidator } from './domain/validate-token.js';
import { createWebauthn } from './domain/webauthn.js';
import { createDirectoryLogin, createIdentityRecheck } from './identity-recheck.js';

/**
 * What the session-service keeps in Redis, built once from its configuration: the session
 * repository and its validator, the revocation feed, the identity signer, the login and code
 * throttles, and the second factors (factors, recovery codes, pending logins). Each record kind is
 * sealed with a key of its own derived from SESSION_ENCRYPTION_KEY (domain/sealing.ts). app.ts
 * wires these into handlers.
 */
export function createStores(deps: SessionServiceDeps) {
  const { config, logger, redis } = deps;
  const env = config.env;
  const lifetimes = sessionLifetimes(env);
  // Session records sealed at rest with SESSION_ENCRYPTION_KEY (domain/sealing.ts).
  const records = createSealer(config.encryptionKeys, 'session-record');
  // The one owner of the session record (domain/session-repository.ts).
  const audit = logger.child({ audit: true });
  const handles = createSessionHandles(config.secrets);
  const sessions = createRedisSessionRepository({
    redis,
    lifetimes,
    prefix: env.REDIS_PREFIX,
    records,
    logger,
    maxSessionsPerUser: env.SESSIONS_PER_USER_MAX,
    // Ended by a login over SESSIONS_PER_USER_MAX (published like any revocation): audited by
    // the handles the user's session list shows.
    onCapped: (userId, ids) =>
      audit.info(
        {
          event: 'session.capped',
          userId,
          sessions: ids.map(handles.handleOf),
          limit: env.SESSIONS_PER_USER_MAX,
        },
        'session.capped',
      ),
  });
  // Users of identity sources (OpenID Connect, LDAP) beside the users file's, read by validate
  // alike, and kept true while signed in (identity-recheck.ts).
  const sessionRetentionMs =
    Math.max(lifetimes.absoluteSeconds, lifetimes.rememberAbsoluteSeconds) * 1000;
  const externalUsers = createExternalUsers({
    redis,
    sealer: createSealer(config.encryptionKeys, 'external-user'),
    prefix: env.REDIS_PREFIX,
    retentionMs: sessionRetentionMs + 86_400_000,
  });
  // Service accounts (domain/service-accounts.ts): users with tokens and no password.
  const serviceAccounts = createServiceAccounts({
    redis,
    prefix: env.REDIS_PREFIX,
    now: deps.now ?? Date.now,
  });
  const users = composeUsers(deps.users, externalUsers, serviceAccounts);
  // Access tokens (domain/access-tokens.ts): sealed, revoked on the revocation channel as
  // sessions are, so every gateway drops them from its cache.
  const accessTokens = createAccessTokens({
    redis,
    sealer: createSealer(config.encryptionKeys, 'access-token'),
    prefix: env.REDIS_PREFIX,
    now: deps.now ?? Date.now,
    onRevoked: (ids) => publishRevocations(redis, env.REDIS_PREFIX, ids),
    // A token of an identity-source user keeps that user's record as long as the token lives.
    onCreated: async (record) => {
      if (isExternalUserId(record.ownerId))
        await externalUsers.keepUntil(record.ownerId, record.expiresAt);
    },
  });
  const validateToken = createTokenValidator({
    tokens: accessTokens,
    users,
    redis,
    prefix: env.REDIS_PREFIX,
  });
  const sources = config.identitySources;
  const oidcClients = new Map(
    sources.oidc.map((provider) => [
      provider.id,
      createOidcClient({ config: provider, publicUrl: env.PUBLIC_URL ?? '' }),
    ]),
  );
  const oidcLogins = createOidcLogins({
    redis,
    sealer: createSealer(config.encryptionKeys, 'oidc-login'),
    prefix: env.REDIS_PREFIX,
  });
  const recheck = createIdentityRecheck({
    externalUsers,
    sessions,
    clients: oidcClients,
    ...(deps.directory ? { directory: deps.directory } : {}),
    ...(sources.ldap ? { ldapRecheckSeconds: sources.ldap.recheckSeconds } : {}),
    logger,
    now: deps.now ?? Date.now,
  });
  const validateSession = createSessionValidator({
    sessions,
    users,
    onExternalUser: recheck.onValidated,
  });
  const revocations =
    deps.revocations ??
    createRevocationFeed({
      redis,
      subscriber: () => createRedisSubscriber(redis, logger),
      prefix: env.REDIS_PREFIX,
      logger,
    });
  const signer = createAssertionSigner({
    redis,
    prefix: env.REDIS_PREFIX,
    issuer: env.PUBLIC_URL ?? 'gatehouse',
    // The private key sealed in Redis, with a key of its own derived from the same variable.
    keys: createSealer(config.encryptionKeys, 'signing-key'),
    logger,
  });
  const throttle = createLoginThrottle({
    redis,
    prefix: env.REDIS_PREFIX,
    limits: {
      pairFailures: env.LOGIN_THROTTLE_PAIR_FAILURES,
      accountFailures: env.LOGIN_THROTTLE_ACCOUNT_FAILURES,
      addressAttempts: env.LOGIN_THROTTLE_ADDRESS_ATTEMPTS,
      addressFailures: env.LOGIN_THROTTLE_ADDRESS_FAILURES,
      ...deps.throttleLimits,
    },
  });
  const now = deps.now ?? Date.now;
  // Second factors (domain/factors*.ts, second-factor.ts): in Redis under the prefix, TOTP
  // secrets and pending logins sealed with keys of their own from SESSION_ENCRYPTION_KEY.
  const factors = createRedisFactorRepository({
    redis,
    secrets: createSealer(config.encryptionKeys, 'totp-secret'),
    prefix: env.REDIS_PREFIX,
    logger,
  });
  const secondFactors = createSecondFactors({
    factors,
    recovery: createRecoveryCodes(config.encryptionKeys),
    issuer: env.TOTP_ISSUER,
    now,
  });
  // WebAuthn credentials live with the other factors; the RP name is what authenticators show.
  const webauthn = createWebauthn({ factors, rpName: env.TOTP_ISSUER, now });
  const pendingLogins = createPendingLogins({
    redis,
    sealer: createSealer(config.encryptionKeys, 'pending-login'),
    prefix: env.REDIS_PREFIX,
  });
  // Guesses at codes: the login throttle's shape under keys of its own, with a tighter account
  // ceiling (a 6-digit code is far easier to guess than a password).
  const codeThrottle = createLoginThrottle({
    redis,
    prefix: `${env.REDIS_PREFIX}code:`,
    now,
    limits: { ...CODE_THROTTLE_LIMITS, ...deps.codeThrottleLimits },
  });
  return {
    sessions,
    users,
    serviceAccounts,
    accessTokens,
    validateToken,
    externalUsers,
    oidcClients,
    oidcLogins,
    recheck,
    sessionRetentionMs,
    directoryLogin: deps.directory
      ? createDirectoryLogin({ directory: deps.directory, externalUsers, now })
      : undefined,
    validateSession,
    revocations,
    signer,
    throttle,
    now,
    factors,
    secondFactors,
    webauthn,
    pendingLogins,
    codeThrottle,
  };
}
