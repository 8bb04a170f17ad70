import { escapeHtml, htmlPage } from '../../common/src/http.js';

export interface Viewer {
  username: string;
  groups: string[];
  email: string;
  expiresAt: string;
  /** How the user signed in (RFC 8176 amr, e.g. pwd, otp, mfa); empty when not said. */
  amr: string[];
}

/** The methods of an amr, in words. */
const METHOD_WORDS: Record<string, string> = {
  pwd: 'password',
  otp: 'one-time code',
  hwk: 'security key or passkey',
  user: 'verified on the device',
};

export function signedInWith(amr: readonly string[]): string {
  const words = amr.flatMap((m) => (METHOD_WORDS[m] ? [METHOD_WORDS[m]] : []));
  if (words.length === 0) return '';
  return `${words.join(' + ')}${amr.includes('mfa') ? ' (two factors)' : ''}`;
}

export function homePage(viewer: Viewer): string {
  const groups = viewer.groups.length
    ? `<ul class="tags">${viewer.groups.map((g) => `<li>${escapeHtml(g)}</li>`).join('')}</ul>`
    : '<p class="muted">No groups.</p>';
  const expires = viewer.expiresAt
    ? `<dt>Session ends</dt>
<dd><time datetime="${escapeHtml(viewer.expiresAt)}">${escapeHtml(viewer.expiresAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</time> <span class="muted">unless you keep using it</span></dd>`
    : '';
  const email = viewer.email ? `<dt>Email</dt>\n<dd>${escapeHtml(viewer.email)}</dd>` : '';
  const how = signedInWith(viewer.amr);
  const method = how
    ? `<dt>Signed in with</dt>\n<dd id="signed-in-with">${escapeHtml(how)}</dd>`
    : '';
  return htmlPage(
    'Home · Gatehouse demo',
    `<h1>Welcome, <span id="username">${escapeHtml(viewer.username)}</span></h1>
<p class="lead">This page is served by the demo-app behind the Gatehouse gateway. It knows you only from the identity the gateway attached.</p>
<h2>Your groups</h2>
${groups}
${email || expires || method ? `<h2>Your account</h2>\n<dl class="facts">\n${email}\n${method}\n${expires}\n</dl>` : ''}
<nav class="actions" aria-label="Account">
<a href="/auth/sessions">Your sessions</a>
<a href="/auth/security">Security</a>
<form method="post" action="/auth/logout"><button type="submit">Sign out</button></form>
</nav>`,
  );
}
