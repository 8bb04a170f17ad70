import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseCookie } from 'cookie';
import signature from 'cookie-signature';
import { isLoopback, presentedToken } from '../../../common/src/access-token.js';
import { authenticationBody, authenticationHeaders } from '../../../common/src/authentication.js';
import { escapeHtml, NO_STORE, sendError, wantsHtml } from '../../../common/src/http.js';
import { identityHeaders } from '../../../common/src/identity.js';
import { MAX_COOKIE_BYTES } from '../../../common/src/limits.js';
import type { Logger } from '../../../common/src/logger.js';
import type { TrustFn } from '../../../common/src/trust-proxy.js';
import type { AssertionSigner } from '../domain/assertions.js';
import { isAudience } from '../domain/assertions.js';
import { authenticationOfSession, type ValidSession } from '../domain/sessions.js';
import type { SessionValidator } from '../domain/validate-session.js';
import type { TokenValidator } from '../domain/validate-token.js';
import { hasInternalToken } from './internal-token.js';

/**
 * The session id from an express-session cookie (`s:<id>.<hmac>`), checked against each secret
 * (newest first, for rotation). Only the cookie carries a session: query strings, bodies and other
 * headers are never read.
 */
export function readSessionId(
  cookieHeader: string | undefined,
  name: string,
  secrets: readonly string[],
): string | null {
  // Past the limit the gateway and the nginx template answer 431 before anyone asks (limits.ts).
  if (!cookieHeader || cookieHeader.length > MAX_COOKIE_BYTES) return null;
  let value: string | undefined;
  try {
    value = parseCookie(cookieHeader)[name];
  } catch {
    return null;
  }
  if (!value?.startsWith('s:')) return null;
  for (const secret of secrets) {
    const sid = signature.unsign(value.slice(2), secret);
    if (sid !== false) return sid;
  }
  return null;
}

export function validationBody(session: ValidSession) {
  const { auth } = session;
  return {
    user: { id: auth.userId, username: auth.username, groups: auth.groups, email: auth.email },
    session: {
      createdAt: new Date(auth.createdAt).toISOString(),
      expiresAt: new Date(session.expiresAt).toISOString(),
    },
    authentication: authenticationBody(authenticationOfSession(auth)),
  };
}

/** TRUST_PROXY compiled (common/src/trust-proxy.ts): is the peer at `addr` (hop `i`) trusted? */
export type TrustProxy = TrustFn;

/**
 * The original request URI under the Traefik ForwardAuth convention (X-Forwarded-Uri, beside
 * X-Forwarded-Method/Proto/Host), trusted only from a TRUST_PROXY peer; a client cannot set it.
 */
export function forwardAuthUri(req: IncomingMessage, trust: TrustProxy): string | undefined {
  if (!trust(req.socket.remoteAddress ?? '', 0)) return undefined;
  const uri = req.headers['x-forwarded-uri'];
  return typeof uri === 'string' && uri.startsWith('/') && !uri.startsWith('//') ? uri : undefined;
}

/** `?aud=<route>` when given exactly once (a repeated parameter is no audience). */
function audienceOf(url: string | undefined): string | undefined {
  const q = url?.indexOf('?') ?? -1;
  if (!url || q < 0) return undefined;
  const values = new URLSearchParams(url.slice(q + 1)).getAll('aud');
  return values.length === 1 ? values[0] : undefined;
}

function answer(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const json = JSON.stringify(body);
  res.statusCode = status;
  for (const name in headers) res.setHeader(name, headers[name] as string);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  res.end(json); // (no body on HEAD: node:http drops it)
}

export type ValidateOutcome = 'ok' | 'unauthenticated' | 'unavailable';

interface ValidateDeps {
  validateSession: SessionValidator;
  cookieName: string;
  secrets: readonly string[];
  trustProxy: TrustProxy;
  logger: Logger;
  onOutcome?: (outcome: ValidateOutcome) => void;
  /** Access tokens (`Authorization: Bearer gatehouse_…`): domain/validate-token.ts. */
  validateToken?: TokenValidator;
  /** The client's address (TRUST_PROXY applied): tokens' failures are counted per address. */
  clientIp?: (req: IncomingMessage) => string;
  /** PUBLIC_URL is https: a token that came over plain HTTP from off this machine is refused. */
  https?: boolean;
}

/**
 * Where a request's access token is: `Authorization` on the public validate (nginx auth_request,
 * Caddy forward_auth, Traefik, HAProxy pass the client's headers on); on /internal/validate the
 * caller's own Authorization is the internal token, so the gateway (and the nginx template) hand
 * the client's Authorization over in X-Gatehouse-Authorization.
 */
const TOKEN_HEADER = { public: 'authorization', internal: 'x-gatehouse-authorization' } as const;

/** Did this request (as the client sent it) travel over plain HTTP from another machine? */
function plainHttpFromAfar(req: IncomingMessage, trust: TrustProxy, clientIp: string): boolean {
  const trusted = trust(req.socket.remoteAddress ?? '', 0);
  const proto = trusted
    ? String(req.headers['x-forwarded-proto'] ?? '')
        .split(',')[0]
        ?.trim()
    : '';
  const secure = proto ? proto === 'https' : 'encrypted' in req.socket;
  return !secure && !isLoopback(clientIp);
}

/**
 * GET /auth/validate: never creates or saves a session (no express-session here), only reads
 * the cookie, slides the idle timeout and answers. Usable as nginx `auth_request` target.
 * It never signs: `?aud=` is ignored, no X-Auth-Request-Jwt ever comes back, because this path
 * is public (the gateway and the nginx template proxy /auth/ to browsers) and a signed identity
 * for a caller-chosen audience would let any signed-in user mint one for any route.
 *
 * Written against node:http, not Express: app.ts serves `/auth/validate` before the Express
 * router (the path every protected request takes; docs/performance.md), and also mounts it as
 * an Express route for the spellings Express alone would match (`/auth/validate/`).
 */
export function validateHandler(deps: ValidateDeps) {
  const serve = serveValidation(deps, undefined, TOKEN_HEADER.public);
  return (req: IncomingMessage, res: ServerResponse) => serve(req, res, undefined);
}

/**
 * GET /internal/validate?aud=<route>: the same answer as /auth/validate plus the signed identity
 * for `aud` in X-Auth-Request-Jwt, for trusted callers only: the gateway, or the nginx template's
 * auth subrequest, presenting `Authorization: Bearer <INTERNAL_TOKEN>`. Not under /auth/, so
 * neither the gateway nor the nginx templates proxy it to browsers. Without the token (or when
 * the service has none): 401 INVALID_INTERNAL_TOKEN, distinct from UNAUTHENTICATED so that a
 * gateway with the wrong token fails closed with 503 instead of taking everyone for logged out.
 * `aud` missing, repeated or not a route id: 400 INVALID_AUDIENCE.
 */
export function internalValidateHandler(
  deps: ValidateDeps & { signer: AssertionSigner; internalToken: string | undefined },
) {
  const serve = serveValidation(deps, deps.signer, TOKEN_HEADER.internal);
  return async (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('Cache-Control', NO_STORE);
    if (!hasInternalToken(req, deps.internalToken)) {
      deps.logger.warn(
        { requestId: req.id, peer: req.socket.remoteAddress },
        'internal validate: missing or wrong internal token',
      );
      sendError(req, res, 'INVALID_INTERNAL_TOKEN', {
        json: true,
        headers: { 'WWW-Authenticate': 'Bearer realm="gatehouse-internal"' },
      });
      return;
    }
    const aud = audienceOf(req.url);
    if (!isAudience(aud)) {
      sendError(req, res, 'INVALID_AUDIENCE', { json: true });
      return;
    }
    await serve(req, res, aud);
  };
}

/** Redis failed under a validate (session or token): 503, never "no session". */
function storeUnavailable(
  deps: ValidateDeps,
  req: IncomingMessage,
  res: ServerResponse,
  err: unknown,
): void {
  deps.onOutcome?.('unavailable');
  deps.logger.warn(
    { requestId: req.id, err: { message: (err as Error).message } },
    'validate: session store unavailable',
  );
  // JSON whatever the Accept header: callers are machines (gateway, nginx auth_request).
  sendError(req, res, 'SESSION_STORE_UNAVAILABLE', {
    json: true,
    message: 'The session store is unavailable.',
  });
}

/** The validate answer; with `signer` and `aud`, plus the signed identity for `aud`. */
function serveValidation(
  deps: ValidateDeps,
  signer: AssertionSigner | undefined,
  tokenHeader: (typeof TOKEN_HEADER)[keyof typeof TOKEN_HEADER],
) {
  const serveToken = serveTokenValidation(deps, signer);
  return async (req: IncomingMessage, res: ServerResponse, aud: string | undefined) => {
    res.setHeader('Cache-Control', NO_STORE);
    // An access token, when the request carries one of ours: never the cookie then. One that
    // is malformed (null) is an invalid token, as the gateway reads it: '' never validates.
    const token = deps.validateToken ? presentedToken(req.headers[tokenHeader]) : undefined;
    if (token !== undefined) return serveToken(req, res, token ?? '', aud);
    const sid = readSessionId(req.headers.cookie, deps.cookieName, deps.secrets);
    let session: ValidSession | null = null;
    let jwt: string | undefined;
    try {
      if (sid) session = await deps.validateSession(sid);
      if (session && signer && aud !== undefined)
        jwt = await signer.sign(session.sid, session.auth, aud);
    } catch (err) {
      return storeUnavailable(deps, req, res, err);
    }
    if (!session) {
      deps.onOutcome?.('unauthenticated');
      // Traefik ForwardAuth hands our answer to the browser as it is: send a browser to the login
      // page, back to the URI it asked for. Only when a trusted proxy says which URI that was.
      const forwardedUri = forwardAuthUri(req, deps.trustProxy);
      if (forwardedUri && wantsHtml(req)) {
        const location = `/auth/login?rd=${encodeURIComponent(forwardedUri)}`;
        const html = `<p>Found. Redirecting to <a href="${escapeHtml(location)}">${escapeHtml(location)}</a></p>`;
        res.statusCode = 302;
        res.setHeader('Location', location);
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.setHeader('Content-Length', Buffer.byteLength(html));
        res.end(html);
        return;
      }
      sendError(req, res, 'UNAUTHENTICATED', { json: true, message: 'No valid session.' });
      return;
    }
    deps.onOutcome?.('ok');
    const body = validationBody(session);
    const headers = {
      ...identityHeaders(body.user, body.session.expiresAt),
      ...authenticationHeaders(authenticationOfSession(session.auth)),
    };
    if (jwt) headers['X-Auth-Request-Jwt'] = jwt;
    answer(res, 200, body, headers);
  };
}

/**
 * The validate answer for an access token: the owner's identity (the token's scope applied),
 * the token's id, name, kind, expiry and scope (the gateway applies `routes` and `readOnly`),
 * no `authentication` (a token proves no sign-in: routes that `require` a second factor or a
 * recent sign-in refuse it). 401 with `WWW-Authenticate: Bearer error="invalid_token"` for a
 * token that is unknown, expired, revoked or its owner's no longer; 429 TOO_MANY_ATTEMPTS after
 * too many of those from one address; 403 HTTPS_REQUIRED over plain HTTP from another machine
 * when PUBLIC_URL is https. The token itself is never logged.
 */
function serveTokenValidation(deps: ValidateDeps, signer: AssertionSigner | undefined) {
  return async (
    req: IncomingMessage,
    res: ServerResponse,
    token: string,
    aud: string | undefined,
  ) => {
    const from = deps.clientIp?.(req) ?? req.socket.remoteAddress ?? '';
    // The internal validate's caller (the gateway) checked the transport itself.
    if (deps.https && aud === undefined && plainHttpFromAfar(req, deps.trustProxy, from)) {
      deps.onOutcome?.('unauthenticated');
      sendError(req, res, 'HTTPS_REQUIRED', { json: true });
      return;
    }
    let result: Awaited<ReturnType<TokenValidator>>;
    let jwt: string | undefined;
    try {
      result = await (deps.validateToken as TokenValidator)(token, from);
      if (result.ok && signer && aud !== undefined)
        jwt = await signer.signToken(result.valid.token, result.valid.identity, aud);
    } catch (err) {
      return storeUnavailable(deps, req, res, err);
    }
    if (!result.ok) {
      deps.onOutcome?.('unauthenticated');
      if (result.reason === 'throttled') {
        sendError(req, res, 'TOO_MANY_ATTEMPTS', {
          json: true,
          headers: { 'Retry-After': String(result.retryAfterSeconds ?? 1) },
        });
        return;
      }
      deps.logger.info(
        { requestId: req.id, ip: from, audit: true, event: 'token.refused' },
        'token.refused',
      );
      sendError(req, res, 'UNAUTHENTICATED', {
        json: true,
        message: 'The token is not valid.',
        headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
      });
      return;
    }
    deps.onOutcome?.('ok');
    const { token: record, identity } = result.valid;
    const expiresAt = new Date(record.expiresAt).toISOString();
    const body = {
      user: identity,
      token: {
        id: record.id,
        name: record.name,
        kind: record.kind,
        expiresAt,
        scope: record.scope,
      },
    };
    const headers: Record<string, string> = identityHeaders(identity, expiresAt);
    if (jwt) headers['X-Auth-Request-Jwt'] = jwt;
    answer(res, 200, body, headers);
  };
}
