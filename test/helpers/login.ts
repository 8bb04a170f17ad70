import type { CookieJar } from './cookie-jar.js';

/**
 * Sign in the way a browser does: load the login page (it sets the CSRF cookie and carries the
 * token in the form), then post the form with both. Returns the login answer (303 on success).
 */
export async function browserLogin(
  jar: CookieJar,
  baseUrl: string,
  username: string,
  password: string,
  rd = '/',
): Promise<Response> {
  const page = await jar.fetch(`${baseUrl}/auth/login?rd=${encodeURIComponent(rd)}`, {
    headers: { accept: 'text/html' },
  });
  const html = await page.text();
  const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!token) throw new Error(`no CSRF token on the login page (status ${page.status})`);
  return jar.fetch(`${baseUrl}/auth/login`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'text/html',
      'sec-fetch-site': 'same-origin',
    },
    body: new URLSearchParams({ username, password, rd, _csrf: token }).toString(),
  });
}

export const JSON_HEADERS = {
  accept: 'application/json',
  'content-type': 'application/json',
  'sec-fetch-site': 'same-origin',
};

/** `name=value` of the session cookie an answer sets ('' when none). */
export function sessionCookieOf(res: Response, name = 'gatehouse'): string {
  const line = res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`));
  return line?.split(';')[0] ?? '';
}

/**
 * POST /auth/login with JSON (to a session-service or a gateway at `baseUrl`); answers the
 * session cookie pair, `gatehouse=…`, and throws on any other answer than 200 with that cookie.
 * Retries, as a user would, while the service says 503 BUSY (the password hasher's queue is full:
 * the answer says to try again) or a proxy in front answers 504, up to `timeoutMs`; `onRetry`
 * hears about each. A gateway that gave up waiting for a login stuck in that queue answers 503
 * SESSION_SERVICE_UNAVAILABLE, which is not retried: tests log in at a pace the hashers keep up
 * with.
 */
export async function jsonLogin(
  baseUrl: string,
  username: string,
  password: string,
  options: { timeoutMs?: number; onRetry?: (status: number) => void } = {},
): Promise<string> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    const res = await fetch(`${baseUrl}/auth/login`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ username, password }),
    });
    const body = await res.text();
    if (res.status === 200) {
      const cookie = sessionCookieOf(res);
      if (!cookie) throw new Error(`login of ${username}: 200 without a session cookie`);
      return cookie;
    }
    const busy = (res.status === 503 && body.includes('BUSY')) || res.status === 504;
    if (busy && Date.now() < deadline) {
      options.onRetry?.(res.status);
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
      continue;
    }
    throw new Error(`login of ${username} answered ${res.status}: ${body}`);
  }
}
