import { escapeHtml, htmlPage } from '../../common/src/http.js';

export interface Viewer {
  username: string;
  groups: string[];
  email: string;
  expiresAt: string;
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
  return htmlPage(
    'Home · Gatehouse demo',
    `<h1>Welcome, <span id="username">${escapeHtml(viewer.username)}</span></h1>
<p class="lead">This page is served by the demo-app behind the Gatehouse gateway. It knows you only from the identity the gateway attached.</p>
<h2>Your groups</h2>
${groups}
${email || expires ? `<h2>Your account</h2>\n<dl class="facts">\n${email}\n${expires}\n</dl>` : ''}
<nav class="actions" aria-label="Account">
<a href="/auth/sessions">Your sessions</a>
<form method="post" action="/auth/logout"><button type="submit">Sign out</button></form>
</nav>`,
  );
}
