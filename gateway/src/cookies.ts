/**
 * Gatehouse's own cookies: the session cookie under every name it may take, the
 * session-service's CSRF cookie and its pending-login cookie (a sign-in waiting for its second
 * factor). Only the session-service writes them (through /auth/); they never
 * reach a backend (request-headers.ts) and no backend may set or clear them (response-headers.ts).
 *
 * Names are compared folded: lowercase, without a `__Host-` or `__Secure-` prefix in any casing,
 * so `GateHouse`, `__HOST-gatehouse` and `__secure-gatehouse` all count as the session cookie
 * (browsers match the prefixes case-insensitively, and some backends read names that way too).
 */
export interface CookiePolicy {
  /** Is `name` (as written in a Cookie or Set-Cookie header) one of Gatehouse's cookies? */
  isOwn(name: string): boolean;
}

const PREFIX = /^__(host|secure)-/;

export const foldCookieName = (name: string): string =>
  name.trim().toLowerCase().replace(PREFIX, '');

/** The CSRF cookie's base name (session-service/src/csrf.ts: `gatehouse-csrf`, `__Host-` on https). */
export const CSRF_COOKIE_BASE = 'gatehouse-csrf';

/**
 * The pending-login cookie's base name (session-service/src/routes/second-factor.ts:
 * `gatehouse-login`, `__Secure-` on https). Its Path keeps browsers from sending it to apps; this
 * keeps backends from setting or clearing it.
 */
export const PENDING_LOGIN_COOKIE_BASE = 'gatehouse-login';

export function createCookiePolicy(sessionCookieName: string): CookiePolicy {
  const base = foldCookieName(sessionCookieName);
  const own = new Set([base, `${base}-csrf`, CSRF_COOKIE_BASE, PENDING_LOGIN_COOKIE_BASE]);
  return { isOwn: (name) => own.has(foldCookieName(name)) };
}

/** A Cookie header without Gatehouse's cookies; other pairs untouched; '' when none is left. */
export function withoutOwnCookies(header: string, policy: CookiePolicy): string {
  const pairs = header.split(';');
  const kept = pairs.filter((pair) => {
    const eq = pair.indexOf('=');
    return !policy.isOwn(eq === -1 ? pair : pair.slice(0, eq));
  });
  if (kept.length === pairs.length) return header;
  return kept
    .map((p) => p.trim())
    .filter(Boolean)
    .join('; ');
}

/**
 * The name a Set-Cookie line sets, as a browser reads it (RFC 6265bis §5.6: the name-value pair
 * is what precedes the first `;`; without `=` the name is empty and the whole pair is the value,
 * which browsers then send back as a bare `Cookie: <value>`, so that value counts as the name).
 */
export function setCookieName(line: string): string {
  const pair = line.split(';', 1)[0] ?? '';
  const eq = pair.indexOf('=');
  return (eq === -1 ? pair : pair.slice(0, eq)).trim();
}
