/**
 * Signing in to Gatehouse through the test OpenID Provider (test/helpers/oidc-provider.ts) over
 * HTTP, as a browser would but without one: fetch with a cookie jar, redirects followed by hand,
 * the provider's login form filled (or cancelled) when it appears, stopping at Gatehouse's
 * callback so that a test can decide how (and whether) to open it.
 */
import { CookieJar } from './cookie-jar.js';
import { DEFAULT_OIDC_PASSWORD } from './oidc-provider.js';

export interface ToCallback {
  /** Gatehouse's callback URL as the provider sent the browser there (code, state, iss). */
  callback: URL;
  /** The binding cookie the start set (gatehouse-oidc), as it was. */
  binding: string | undefined;
  /** The provider's authorization URL Gatehouse sent the browser to. */
  authorization: URL;
  loginForms: number;
}

/**
 * GET `startUrl` (…/auth/oidc/<id>/start?rd=…) with `jar`, then through the provider to the
 * callback (not opened). `login` signs in at the form; `cancel: true` presses its Cancel button
 * (the provider answers error=access_denied). Throws on anything unexpected.
 */
export async function toCallback(options: {
  jar: CookieJar;
  startUrl: string;
  login?: string;
  password?: string;
  cancel?: boolean;
  /** Extra request headers for Gatehouse's start (accept…); its start may be …/reauth too. */
  headers?: Record<string, string>;
  bindingCookie?: string;
}): Promise<ToCallback> {
  const { jar } = options;
  const cookieName = options.bindingCookie ?? 'gatehouse-oidc';
  const start = await jar.fetch(options.startUrl, { headers: options.headers ?? {} });
  if (start.status !== 303)
    throw new Error(`start answered ${start.status}: ${await start.text()}`);
  const binding = jar.get(cookieName);
  const authorization = new URL(start.headers.get('location') ?? '');
  const callbackPath = new URL(options.startUrl).pathname.replace(/\/(start|reauth)$/, '/callback');
  let url = authorization;
  let loginForms = 0;
  for (let hop = 0; hop < 20; hop++) {
    if (url.pathname === callbackPath) return { callback: url, binding, authorization, loginForms };
    const res = await jar.fetch(url.href);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location') ?? '', url);
      continue;
    }
    const html = await res.text();
    const autoSubmit = /document\.forms\[0\]\.submit\(\)/.test(html)
      ? /<form method="post" action="([^"]+)"/.exec(html)?.[1]
      : undefined;
    if (res.status === 200 && autoSubmit) {
      // oidc-provider's self-submitting form (another account signs in over a provider session:
      // it ends the old one first), submitted as a browser's script would
      const fields = new URLSearchParams();
      for (const [, name = '', value = ''] of html.matchAll(
        /<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g,
      ))
        fields.set(name, value);
      const submitted = await jar.fetch(new URL(autoSubmit, url).href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: fields.toString(),
      });
      if (submitted.status < 300 || submitted.status >= 400)
        throw new Error(`the self-submitting form answered ${submitted.status}`);
      url = new URL(submitted.headers.get('location') ?? '', url);
      continue;
    }
    const action = /<form id="op-login" method="post" action="([^"]+)"/.exec(html)?.[1];
    if (res.status !== 200 || !action) throw new Error(`unexpected page ${res.status}: ${html}`);
    loginForms++;
    if (loginForms > 1) throw new Error(`the login form again: ${html}`);
    const post = await jar.fetch(
      new URL(options.cancel ? action.replace(/\/login$/, '/abort') : action, url).href,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          login: options.login ?? '',
          password: options.password ?? DEFAULT_OIDC_PASSWORD,
        }).toString(),
      },
    );
    if (post.status !== 303)
      throw new Error(`the provider's form answered ${post.status}: ${await post.text()}`);
    url = new URL(post.headers.get('location') ?? '', url);
  }
  throw new Error('too many redirects');
}

/**
 * A whole sign-in: start, the provider's form, the callback opened. Resolves to the callback's
 * answer (a 303 to `rd` with the session cookie when it worked) and the jar.
 */
export async function signInWithProvider(options: {
  startUrl: string;
  login: string;
  password?: string;
  jar?: CookieJar;
  headers?: Record<string, string>;
}) {
  const jar = options.jar ?? new CookieJar();
  const flow = await toCallback({ ...options, jar });
  const response = await jar.fetch(flow.callback.href, { headers: options.headers ?? {} });
  return { ...flow, jar, response };
}
