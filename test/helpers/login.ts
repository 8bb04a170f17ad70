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
