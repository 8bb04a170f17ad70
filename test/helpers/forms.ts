/**
 * A browser's forms against the session-service, with a CookieJar: load a page (it carries the
 * CSRF token in its form), post the form back as a browser does (same-origin, urlencoded).
 */
import type { CookieJar } from './cookie-jar.js';

/** The CSRF token in a page's form ('' when none). */
export const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';

export const FORM_HEADERS = {
  'content-type': 'application/x-www-form-urlencoded',
  accept: 'text/html',
  'sec-fetch-site': 'same-origin',
};

/** GET `url` as a browser navigating (Accept: text/html). */
export const getPage = (jar: CookieJar, url: string) =>
  jar.fetch(url, { headers: { accept: 'text/html' } });

/** POST `fields` to `url` as the form of `page` (its CSRF token added). */
export function postPageForm(
  jar: CookieJar,
  url: string,
  page: string,
  fields: Record<string, string>,
) {
  return jar.fetch(url, {
    method: 'POST',
    headers: FORM_HEADERS,
    body: new URLSearchParams({ ...fields, _csrf: csrfOf(page) }).toString(),
  });
}
