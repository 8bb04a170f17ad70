/**
 * Sign in with an OpenID Connect provider (Gatehouse as relying party), and sign out when it says:
 *
 * - GET  /auth/oidc/:provider/start?rd=…   the browser leaves for the provider (code flow, PKCE);
 * - GET  /auth/oidc/:provider/reauth?rd=…  the same, for a signed-in user, with prompt=login:
 *                                          a step-up by signing in at the provider again;
 * - GET  /auth/oidc/:provider/callback     it comes back: state bound to this browser, code
 *                                          exchanged, ID token checked, claims mapped, then the
 *                                          login's second step or a session, as for a password;
 * - POST /auth/oidc/:provider/backchannel-logout   the provider's logout token (OIDC Back-Channel
 *                                          Logout 1.0): the matching sessions end on every gateway.
 */
import type { Request, Response } from 'express';
import { GatehouseError } from '../../../common/src/errors.js';
import { NO_STORE } from '../../../common/src/http.js';
import type { Logger } from '../../../common/src/logger.js';
import { storedSessionId } from '../../../common/src/session-id.js';
import type { OidcClient } from '../adapters/oidc-client.js';
import { asUser, type ExternalUsers, externalUserId } from '../domain/external-users.js';
import { mapClaims } from '../domain/oidc-claims.js';
import { OIDC_LOGIN_TTL_MS, type OidcLogins } from '../domain/oidc-logins.js';
import { safeRedirect } from '../domain/redirects.js';
import type { SessionAuth, SessionRepository, ValidSession } from '../domain/session-repository.js';
import { storeCall } from '../domain/store-call.js';
import type { UsersRepository } from '../domain/users.js';
import { seeOther } from './auth.js';
import type { LoginSteps } from './second-factor.js';

/**
 * The innermost Error of a cause chain: openid-client wraps oauth4webapi's errors in generic ones
 * ("unexpected JWT claim value encountered"); the inner one names the claim, for the audit log.
 */
function innermost(err: unknown): Error | undefined {
  let found = err instanceof Error ? err : undefined;
  while (found?.cause instanceof Error) found = found.cause;
  return found;
}

/** How long a logout token's jti is remembered, and how far its iat may be from now. */
const LOGOUT_TOKEN_WINDOW_MS = 10 * 60_000;

export interface OidcDeps {
  clients: ReadonlyMap<string, OidcClient>;
  logins: OidcLogins;
  externalUsers: ExternalUsers;
  /** The users file alone: a provider may not sign someone in under a local user's name. */
  fileUsers: UsersRepository;
  sessions: SessionRepository;
  steps: Pick<LoginSteps, 'afterPassword'>;
  https: boolean;
  allowedRedirectHosts: readonly string[];
  /** How long the longest session lives: the back-channel index of a session lasts as long. */
  sessionRetentionMs: number;
  audit: Logger;
  now: () => number;
  current: WeakMap<Request, ValidSession>;
  onLogin?: (outcome: 'success' | 'failure' | 'throttled' | 'unavailable') => void;
}

export function createOidcHandlers(deps: OidcDeps) {
  const cookieName = deps.https ? '__Secure-gatehouse-oidc' : 'gatehouse-oidc';
  // Lax, not Strict: it must come back on the provider's redirect (a cross-site navigation).
  const cookieAttrs = (req: Request) => ({
    httpOnly: true,
    sameSite: 'lax' as const,
    path: '/auth/oidc',
    secure: deps.https || req.secure,
  });
  const audit = (event: string, req: Request, extra: Record<string, unknown> = {}) =>
    deps.audit.info({ event, ip: req.ip, requestId: req.id, ...extra }, event);

  function clientOf(req: Request): OidcClient {
    const client = deps.clients.get(String(req.params.provider));
    if (!client) throw new GatehouseError('NOT_FOUND');
    return client;
  }

  async function leave(req: Request, res: Response, reauthenticate?: ValidSession) {
    const client = clientOf(req);
    const rd = safeRedirect(req.query.rd, deps.allowedRedirectHosts);
    // Ask the provider first: when it is down, nothing is stored and the page says so.
    await client.ping();
    const { login, binding } = await deps.logins.start({
      provider: client.config.id,
      rd,
      ...(reauthenticate
        ? {
            reauthenticate: {
              sessionId: reauthenticate.id,
              userId: reauthenticate.auth.userId,
            },
          }
        : {}),
    });
    const url = await client.authorizationUrl({
      state: login.state,
      nonce: login.nonce,
      codeVerifier: login.codeVerifier,
      reauthenticate: reauthenticate !== undefined,
    });
    res.cookie(cookieName, binding, { ...cookieAttrs(req), maxAge: OIDC_LOGIN_TTL_MS });
    res.set('Cache-Control', NO_STORE);
    seeOther(res, url.href);
  }

  return {
    /** GET /auth/oidc/:provider/start */
    start: (req: Request, res: Response) => leave(req, res),

    /** GET /auth/oidc/:provider/reauth (signed in, a user of this provider) */
    async reauth(req: Request, res: Response) {
      const session = deps.current.get(req);
      const client = clientOf(req);
      if (!session || session.auth.idp?.provider !== client.config.id)
        throw new GatehouseError('FORBIDDEN');
      await leave(req, res, session);
    },

    /** GET /auth/oidc/:provider/callback */
    async callback(req: Request, res: Response) {
      const client = clientOf(req);
      const provider = client.config.id;
      const binding = (req.cookies as Record<string, unknown> | undefined)?.[cookieName];
      const login = await deps.logins.take(req.query.state, binding);
      const fail = (
        code: 'SIGN_IN_INVALID' | 'SIGN_IN_NOT_ALLOWED',
        reason: string,
        message?: string,
      ) => {
        audit('login.failure', req, { provider, reason });
        deps.onLogin?.('failure');
        return new GatehouseError(code, message ? { message } : {});
      };
      if (!login || login.provider !== provider) throw fail('SIGN_IN_INVALID', 'oidc_state');
      // Cleared only now it matched: a stale or foreign callback (an older tab's, another
      // browser's) must not take away the binding of the sign-in this browser has in flight.
      res.clearCookie(cookieName, cookieAttrs(req));
      if (typeof req.query.error === 'string')
        throw req.query.error === 'access_denied'
          ? // Most often the user's own Cancel: "your account is not allowed" would mislead.
            fail(
              'SIGN_IN_NOT_ALLOWED',
              'provider_error:access_denied',
              'The sign-in was cancelled or refused at the provider. You are not signed in.',
            )
          : fail('SIGN_IN_INVALID', `provider_error:${req.query.error.slice(0, 64)}`);
      // The callback as the provider sent it: our redirect_uri and the query the browser brought.
      const query = req.originalUrl.includes('?')
        ? req.originalUrl.slice(req.originalUrl.indexOf('?'))
        : '';
      const callbackUrl = new URL(client.redirectUri + query);
      let tokens: Awaited<ReturnType<OidcClient['exchange']>>;
      try {
        tokens = await client.exchange(callbackUrl, {
          state: login.state,
          nonce: login.nonce,
          codeVerifier: login.codeVerifier,
          reauthenticate: login.reauthenticate !== undefined,
        });
      } catch (err) {
        if (err instanceof GatehouseError && err.code === 'SIGN_IN_INVALID') {
          audit('login.failure', req, {
            provider,
            reason: 'oidc_token',
            detail: String(innermost(err.cause)?.message ?? '').slice(0, 200),
          });
          deps.onLogin?.('failure');
        } else deps.onLogin?.('unavailable');
        throw err;
      }
      const { claims } = tokens;
      const sub = typeof claims.sub === 'string' ? claims.sub : '';
      if (!sub) throw fail('SIGN_IN_INVALID', 'oidc_no_sub');
      const mapped = mapClaims(client.config, claims);
      if (!mapped.ok) throw fail('SIGN_IN_NOT_ALLOWED', `oidc_claims: ${mapped.reason}`);
      const { identity } = mapped;
      if (identity.dropped.length > 0)
        deps.audit.warn(
          { event: 'oidc.claims_dropped', provider, dropped: identity.dropped },
          'claims a backend could misread were not passed on',
        );
      const id = externalUserId('oidc', provider, sub);
      const sid = typeof claims.sid === 'string' ? claims.sid : undefined;

      if (login.reauthenticate) return reauthenticated(req, res, login, id, identity.methods);

      // A users-file entry keeps its name: a provider cannot sign anyone in as a local user.
      if (await deps.fileUsers.findByUsername(identity.username)) {
        audit('login.failure', req, {
          provider,
          reason: 'username_taken',
          username: identity.username,
        });
        deps.onLogin?.('failure');
        throw new GatehouseError('USERNAME_TAKEN');
      }
      const previous = await deps.externalUsers.get(id);
      const record = await deps.externalUsers
        .save({
          id,
          source: 'oidc',
          provider,
          subject: sub,
          username: identity.username,
          email: identity.email,
          name: identity.name,
          groups: identity.groups,
          checkedAt: deps.now(),
          ...(tokens.refreshToken
            ? { refreshToken: tokens.refreshToken }
            : previous?.refreshToken
              ? { refreshToken: previous.refreshToken }
              : {}),
        })
        .catch((err: unknown) => {
          if (err instanceof GatehouseError && err.code !== 'SESSION_STORE_UNAVAILABLE') {
            audit('login.failure', req, {
              provider,
              reason: err.code.toLowerCase(),
              username: identity.username,
            });
            deps.onLogin?.('failure');
          }
          throw err;
        });
      await deps.steps.afterPassword(req, res, {
        user: asUser(record),
        remember: false,
        rd: login.rd,
        fields: {},
        methods: identity.methods,
        browser: true,
        idp: { provider, ...(sid ? { sid } : {}) },
      });
    },

    /** POST /auth/oidc/:provider/backchannel-logout (application/x-www-form-urlencoded) */
    async backchannelLogout(req: Request, res: Response) {
      res.set('Cache-Control', NO_STORE);
      const client = clientOf(req);
      const provider = client.config.id;
      const refuse = (description: string) => {
        audit('logout.backchannel_refused', req, { provider, reason: description });
        res.status(400).json({ error: 'invalid_request', error_description: description });
      };
      const token = (req.body as Record<string, unknown> | undefined)?.logout_token;
      if (typeof token !== 'string' || token.length === 0 || token.length > 8192)
        return refuse('logout_token is required');
      let claims: Awaited<ReturnType<OidcClient['verifyLogoutToken']>>;
      try {
        claims = await client.verifyLogoutToken(token);
      } catch (err) {
        if (err instanceof GatehouseError && err.code === 'SIGN_IN_INVALID')
          return refuse('the logout token is not valid');
        throw err;
      }
      if (Math.abs(deps.now() - claims.iat * 1000) > LOGOUT_TOKEN_WINDOW_MS)
        return refuse('the logout token is too old');
      if (!(await deps.logins.firstUse(provider, claims.jti, 2 * LOGOUT_TOKEN_WINDOW_MS)))
        return refuse('the logout token was used already');
      let ended = 0;
      if (claims.sid) {
        // That provider session's sessions here (any user: the sid is the provider's).
        for (const id of await deps.logins.sessionsOf(provider, claims.sid))
          if (await storeCall(() => deps.sessions.deleteSessionById(id))) ended++;
        await deps.logins.forgetSid(provider, claims.sid);
      } else if (claims.sub) {
        ended = await storeCall(() =>
          deps.sessions.deleteUserSessions(externalUserId('oidc', provider, claims.sub as string)),
        );
      }
      audit('logout.backchannel', req, { provider, ended, bySid: claims.sid !== undefined });
      res.status(200).end();
    },

    /** After a session of a provider's user starts: index it by the provider's sid. */
    async indexSession(sid: string, auth: SessionAuth) {
      if (!auth.idp?.sid) return;
      await deps.logins.indexSession(
        auth.idp.provider,
        auth.idp.sid,
        storedSessionId(sid),
        deps.sessionRetentionMs,
      );
    },

    /** Where a logout sends the browser next: the provider's end-session page, or null. */
    async providerLogoutUrl(auth: SessionAuth, publicUrl: string): Promise<string | null> {
      const client = auth.idp ? deps.clients.get(auth.idp.provider) : undefined;
      if (!client?.config.providerLogout) return null;
      try {
        // Asked now (discovery is cached): a provider that went down since would be a browser
        // error page after the sign-out; the login page instead.
        await client.ping();
        return (
          (await client.endSessionUrl(`${publicUrl.replace(/\/+$/, '')}/auth/login`))?.href ?? null
        );
      } catch {
        return null; // The provider is down: signed out here, which is what matters most.
      }
    },
  };

  /** The callback of a re-authentication: the same user, just now, steps up this session. */
  async function reauthenticated(
    req: Request,
    res: Response,
    login: NonNullable<Awaited<ReturnType<OidcLogins['take']>>>,
    id: string,
    methods: Parameters<SessionRepository['stepUp']>[1],
  ) {
    const sid = req.sessionID;
    const current = req.session?.auth;
    const target = login.reauthenticate;
    if (!target || !current || !sid || storedSessionId(sid) !== target.sessionId) {
      audit('stepup.failure', req, { reason: 'oidc_session_changed' });
      throw new GatehouseError('SIGN_IN_INVALID');
    }
    if (id !== target.userId || current.userId !== id) {
      audit('stepup.failure', req, { userId: current.userId, reason: 'oidc_other_user' });
      throw new GatehouseError('FORBIDDEN');
    }
    const auth = await storeCall(() => deps.sessions.stepUp(sid, methods, deps.now()));
    if (!auth) throw new GatehouseError('UNAUTHENTICATED');
    audit('stepup.success', req, {
      userId: id,
      username: current.username,
      amr: auth.amr,
      via: 'oidc',
    });
    seeOther(res, login.rd);
  }
}

export type OidcHandlers = ReturnType<typeof createOidcHandlers>;
