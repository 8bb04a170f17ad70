import { parse as parseCookie } from 'cookie';
import signature from 'cookie-signature';
import type { Request, Response } from 'express';
import { NO_STORE, wantsHtml } from '../../../common/src/http.js';
import { identityHeaders } from '../../../common/src/identity.js';
import type { AssertionSigner } from '../domain/assertions.js';
import { isAudience } from '../domain/assertions.js';
import type { Authenticator } from '../domain/authenticate.js';
import type { ValidSession } from '../domain/sessions.js';

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
  if (!cookieHeader || cookieHeader.length > 8192) return null;
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
  };
}

/**
 * The original request URI under the Traefik ForwardAuth convention (X-Forwarded-Uri, beside
 * X-Forwarded-Method/Proto/Host), trusted only from a TRUST_PROXY peer; a client cannot set it.
 */
export function forwardAuthUri(req: Request): string | undefined {
  const trust = req.app.get('trust proxy fn') as (addr: string, i: number) => boolean;
  if (!trust(req.socket.remoteAddress ?? '', 0)) return undefined;
  const uri = req.get('x-forwarded-uri');
  return uri?.startsWith('/') && !uri.startsWith('//') ? uri : undefined;
}

export type ValidateOutcome = 'ok' | 'unauthenticated' | 'unavailable';

/**
 * GET /auth/validate: never creates or saves a session (no express-session here), only reads
 * the cookie, slides the idle timeout and answers. Usable as nginx `auth_request` target.
 * With `?aud=<route>` it also answers a signed identity assertion in `X-Auth-Request-Jwt`.
 */
export function validateHandler(deps: {
  authenticate: Authenticator;
  signer?: AssertionSigner;
  cookieName: string;
  secrets: readonly string[];
  onOutcome?: (outcome: ValidateOutcome) => void;
}) {
  return async (req: Request, res: Response) => {
    res.setHeader('Cache-Control', NO_STORE);
    const sid = readSessionId(req.headers.cookie, deps.cookieName, deps.secrets);
    let session: ValidSession | null = null;
    let jwt: string | undefined;
    const aud = req.query.aud;
    try {
      if (sid) session = await deps.authenticate(sid);
      if (session && deps.signer && isAudience(aud))
        jwt = await deps.signer.sign(session.sid, session.auth, aud);
    } catch (err) {
      deps.onOutcome?.('unavailable');
      req.log?.warn(
        { err: { message: (err as Error).message } },
        'validate: session store unavailable',
      );
      // JSON whatever the Accept header: callers are machines (gateway, nginx auth_request).
      res
        .status(503)
        .json({ error: 'SESSION_STORE_UNAVAILABLE', message: 'The session store is unavailable.' });
      return;
    }
    if (!session) {
      deps.onOutcome?.('unauthenticated');
      // Traefik ForwardAuth hands our answer to the browser as it is: send a browser to the login
      // page, back to the URI it asked for. Only when a trusted proxy says which URI that was.
      const forwardedUri = forwardAuthUri(req);
      if (forwardedUri && wantsHtml(req)) {
        res.redirect(302, `/auth/login?rd=${encodeURIComponent(forwardedUri)}`);
        return;
      }
      res.status(401).json({ error: 'UNAUTHENTICATED', message: 'No valid session.' });
      return;
    }
    deps.onOutcome?.('ok');
    const body = validationBody(session);
    res.set(identityHeaders(body.user, body.session.expiresAt));
    if (jwt) res.set('X-Auth-Request-Jwt', jwt);
    res.status(200).json(body);
  };
}
