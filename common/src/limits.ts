/**
 * Request limits shared by the gateway and the session-service, so that what one accepts the
 * other reads in full: a request past a limit gets 431 with a clear message, never a silent
 * truncation (Node drops header lines past its maxHeadersCount without a word) and never a
 * session that looks absent (a redirect loop back to the login page).
 */

/** Header fields in one request (Apache's LimitRequestFields default). */
export const MAX_HEADER_FIELDS = 100;

/**
 * Bytes of the request's Cookie header(s), together. The whole header section is bounded by
 * Node's maxHeaderSize (16 KiB); the cookie gets half, so the headers the gateway adds on its
 * way to the session-service and the upstream always fit.
 */
export const MAX_COOKIE_BYTES = 8192;

export type LimitCheck = { ok: true } | { ok: false; code: string; message: string };

/** Checks a request's raw header list against the limits above. */
export function checkHeaderLimits(rawHeaders: readonly string[]): LimitCheck {
  if (rawHeaders.length / 2 > MAX_HEADER_FIELDS)
    return {
      ok: false,
      code: 'TOO_MANY_HEADERS',
      message: `The request has more than ${MAX_HEADER_FIELDS} header fields.`,
    };
  let cookieBytes = 0;
  for (let i = 0; i < rawHeaders.length; i += 2)
    if (rawHeaders[i]?.toLowerCase() === 'cookie') cookieBytes += (rawHeaders[i + 1] ?? '').length;
  if (cookieBytes > MAX_COOKIE_BYTES)
    return {
      ok: false,
      code: 'COOKIES_TOO_LARGE',
      message:
        'Your browser sent more cookies for this site than it accepts. Clear the cookies for this site and sign in again.',
    };
  return { ok: true };
}
