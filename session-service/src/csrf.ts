import { doubleCsrf } from 'csrf-csrf';
import type { NextFunction, Request, Response } from 'express';
import { GatehouseError } from '../../common/src/errors.js';

/**
 * Cross-site request forgery defences, in layers (OWASP CSRF Prevention Cheat Sheet):
 * 1. Where a request comes from (Fetch Metadata, else Origin): a state-changing request that a
 *    browser marks as coming from anywhere but our own origin is refused before anything runs.
 *    Same-site is not enough: a sibling subdomain or another port on our host is someone else.
 * 2. A signed double-submit token (csrf-csrf) on every HTML form Gatehouse serves, bound to the
 *    session once there is one.
 * 3. SameSite=Lax session cookies.
 *
 * The policy, for every method but GET, HEAD and OPTIONS (docs/security.md):
 * - `Sec-Fetch-Site` present: `same-origin` is ours; `none` (typed, bookmarked) is no forgery
 *   but no proof either; anything else (`same-site`, `cross-site`, unknown spellings, two values)
 *   is refused. Browsers send it only to potentially trustworthy origins (HTTPS, localhost).
 * - else `Origin` present: ours when it is exactly our own origin (the request's scheme and
 *   host, from X-Forwarded-Proto/-Host when a TRUST_PROXY peer sent them, else the connection
 *   and `Host`) or PUBLIC_URL's. Anything else is refused, `Origin: null` included: browsers send
 *   it from sandboxed frames and `data:` documents, which an attacker controls, and our own pages
 *   (Referrer-Policy: same-origin) never cause it. This is what a plain-HTTP intranet host
 *   (no Fetch Metadata) relies on.
 * - neither: not from a modern browser (they send Origin on every POST); not proof, so HTML
 *   forms still need the token, while JSON API clients are not subject to CSRF.
 */
export type Provenance = 'same-origin' | 'unproven' | 'foreign';

export function provenance(req: Request, allowedOrigins: readonly string[]): Provenance {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined) {
    if (site === 'same-origin') return 'same-origin';
    return site === 'none' ? 'unproven' : 'foreign';
  }
  const origin = req.headers.origin;
  if (origin === undefined) return 'unproven';
  return isOwnOrigin(req, origin, allowedOrigins) ? 'same-origin' : 'foreign';
}

/** `origin` exactly as a browser serializes ours (scheme://host[:port], lower case, no path). */
function isOwnOrigin(req: Request, origin: string, allowedOrigins: readonly string[]): boolean {
  if (allowedOrigins.includes(origin)) return true;
  const own = ownOrigin(req);
  return own !== null && origin === own;
}

/** Our origin as the browser saw it: scheme and host from a trusted proxy, else our own. */
export function ownOrigin(req: Request): string | null {
  const host = req.host; // Express 5: X-Forwarded-Host from a TRUST_PROXY peer, else Host (with port)
  if (!host) return null;
  try {
    const url = new URL(`${req.protocol}://${host}`);
    // `Host: evil.test/x@intranet` or with a path would parse; only a bare authority counts.
    if (url.pathname !== '/' || url.username || url.password || url.search || url.hash) return null;
    return url.origin;
  } catch {
    return null;
  }
}

/** Refuses a state-changing request that a browser says comes from another origin. */
export function fetchMetadataGuard(options: { allowedOrigins: readonly string[] }) {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next();
    if (provenance(req, options.allowedOrigins) === 'foreign') {
      return next(new GatehouseError('CROSS_SITE_REQUEST'));
    }
    next();
  };
}

/** Did the browser positively tell us this request comes from our own origin? */
export function provenSameOrigin(req: Request, allowedOrigins: readonly string[]): boolean {
  return provenance(req, allowedOrigins) === 'same-origin';
}

export function createCsrf(options: {
  secrets: readonly string[];
  https: boolean;
  /** The session a request belongs to ('' before login): tokens are bound to it. */
  identify: (req: Request) => string;
}) {
  const name = options.https ? '__Host-gatehouse-csrf' : 'gatehouse-csrf';
  const { generateCsrfToken, validateRequest } = doubleCsrf({
    getSecret: () => [...options.secrets],
    // Bound to the session once logged in; before login, to the browser's CSRF cookie alone.
    getSessionIdentifier: options.identify,
    cookieName: name,
    cookieOptions: { sameSite: 'strict', path: '/', secure: options.https, httpOnly: true },
    getCsrfTokenFromRequest: (req) => {
      const body = req.body as Record<string, unknown> | undefined;
      return typeof body?._csrf === 'string' ? body._csrf : req.get('x-csrf-token');
    },
  });
  return {
    cookieName: name,
    /** A token for a form we render (sets or reuses the CSRF cookie). */
    token(req: Request, res: Response): string {
      return generateCsrfToken(req, res, { overwrite: false, validateOnReuse: false });
    },
    /** Fresh token after the session changed (login): the old binding no longer verifies. */
    freshToken(req: Request, res: Response): string {
      return generateCsrfToken(req, res, { overwrite: true });
    },
    valid(req: Request): boolean {
      try {
        return validateRequest(req);
      } catch {
        return false;
      }
    },
  };
}

export type Csrf = ReturnType<typeof createCsrf>;
