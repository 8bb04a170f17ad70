import { doubleCsrf } from 'csrf-csrf';
import type { NextFunction, Request, Response } from 'express';
import { AppError } from '../../common/src/errors.js';

/**
 * Cross-site request forgery defences, in layers (OWASP CSRF Prevention Cheat Sheet):
 * 1. Fetch Metadata / Origin: a state-changing request that a browser marks cross-site (or
 *    same-site: a sibling subdomain is not us) is refused before anything else runs.
 * 2. A signed double-submit token (csrf-csrf) on every HTML form Gatehouse serves, bound to the
 *    session once there is one.
 * 3. SameSite=Lax session cookies.
 * Non-browser clients send neither Sec-Fetch-Site nor Origin and are not subject to CSRF.
 */
export function fetchMetadataGuard(options: { allowedOrigins: readonly string[] }) {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next();
    if (!isSameOrigin(req, options.allowedOrigins)) {
      return next(new AppError('CROSS_SITE_REQUEST', 403, 'Cross-site requests are not allowed.'));
    }
    next();
  };
}

/** true when the browser says same-origin (or typed/bookmarked), or sent no browser headers at all. */
export function isSameOrigin(req: Request, allowedOrigins: readonly string[]): boolean {
  const site = req.get('sec-fetch-site');
  if (site) return site === 'same-origin' || site === 'none';
  const origin = req.get('origin');
  if (!origin) return true;
  if (origin === 'null') return false;
  const own = `${req.protocol}://${req.get('host') ?? ''}`;
  return origin === own || allowedOrigins.includes(origin);
}

/** Did the browser positively tell us this request comes from our own origin? */
export function provenSameOrigin(req: Request, allowedOrigins: readonly string[]): boolean {
  const site = req.get('sec-fetch-site');
  if (site) return site === 'same-origin';
  const origin = req.get('origin');
  return !!origin && origin !== 'null' && isSameOrigin(req, allowedOrigins);
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
