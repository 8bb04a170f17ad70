import { type CookiePolicy, setCookieName } from './cookies.js';
import { connectionTokens, HOP_BY_HOP } from './request-headers.js';

/**
 * What crosses from an upstream to the browser: the response-header policy, as data.
 *
 * | class                                   | from a routed backend      | from the session-service (/auth/) |
 * | --------------------------------------- | -------------------------- | --------------------------------- |
 * | hop-by-hop (+ Connection list)          | removed                    | removed                           |
 * | Set-Cookie of a Gatehouse cookie        | removed (any name spelling, path, domain) | kept: it owns them |
 * | Clear-Site-Data                         | removed (only sign-out may clear the session) | kept          |
 * | X-Auth-Request-Jwt, -Access-Token       | removed: a signed assertion never reaches a browser | removed  |
 * | Cache-Control on a protected HTML page  | `no-store` added when absent (route `cache: upstream` opts out) | as sent |
 * | Cache-Control on other protected answers| `private` added when absent | as sent                          |
 * | X-Request-Id                            | the gateway's when absent  | the gateway's when absent         |
 */
export const NEVER_TO_BROWSER: ReadonlySet<string> = new Set([
  'x-auth-request-jwt',
  'x-auth-request-access-token',
]);

export interface DownstreamOptions {
  requestId?: string;
  /** Set for routed backends: their Set-Cookie lines naming a Gatehouse cookie are removed. */
  cookies?: CookiePolicy;
  /** Backends may not send Clear-Site-Data (it would end the session in the browser). */
  dropClearSiteData?: boolean;
  /** A protected answer: add a cache policy when the backend sent none. */
  addCachePolicy?: boolean;
  /** A 101 answer: Connection and Upgrade stay. */
  upgrade?: boolean;
}

/** The headers for the browser as a raw [name, value, …] list (the policy above). */
export function downstreamHeaders(
  rawHeaders: readonly string[],
  options: DownstreamOptions = {},
): string[] {
  const listed = options.upgrade ? new Set<string>() : connectionTokens(rawHeaders);
  const out: string[] = [];
  let hasRequestId = false;
  let hasCacheControl = false;
  // No Content-Type at all: browsers sniff, and may render HTML.
  let html = true;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    const value = rawHeaders[i + 1] ?? '';
    const lower = name.toLowerCase();
    if (
      options.upgrade
        ? lower === 'transfer-encoding' || lower === 'keep-alive'
        : HOP_BY_HOP.has(lower) || listed.has(lower)
    )
      continue;
    if (NEVER_TO_BROWSER.has(lower)) continue;
    if (lower === 'set-cookie' && options.cookies?.isOwn(setCookieName(value))) continue;
    if (lower === 'clear-site-data' && options.dropClearSiteData) continue;
    if (lower === 'x-request-id') hasRequestId = true;
    else if (lower === 'cache-control') hasCacheControl = true;
    else if (lower === 'content-type')
      html = /^\s*(text\/html|application\/xhtml\+xml)\b/i.test(value);
    out.push(name, value);
  }
  if (options.requestId && !hasRequestId) out.push('X-Request-Id', options.requestId);
  if (options.addCachePolicy && !hasCacheControl && !options.upgrade)
    out.push('Cache-Control', html ? 'no-store' : 'private');
  return out;
}
