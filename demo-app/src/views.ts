import { escapeHtml, htmlPage } from '../../common/src/http.js';

export interface Viewer {
  username: string;
  groups: string[];
  email: string;
  expiresAt: string;
}

export function homePage(viewer: Viewer): string {
  const groups = viewer.groups.length
    ? `<ul class="groups">${viewer.groups.map((g) => `<li>${escapeHtml(g)}</li>`).join('')}</ul>`
    : '<p class="muted">No groups.</p>';
  const expires = viewer.expiresAt
    ? `<p class="muted">Your session ends <time datetime="${escapeHtml(viewer.expiresAt)}">${escapeHtml(viewer.expiresAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</time> unless you keep using it.</p>`
    : '';
  return htmlPage(
    'Home · Gatehouse demo',
    `<h1>Welcome, <span id="username">${escapeHtml(viewer.username)}</span></h1>
<p>This page is served by the demo-app behind the Gatehouse gateway. It knows you only from the identity the gateway attached.</p>
<h2>Your groups</h2>
${groups}
${viewer.email ? `<p>Email: ${escapeHtml(viewer.email)}</p>` : ''}
${expires}
<nav>
<a href="/auth/sessions">Your sessions</a>
<form method="post" action="/auth/logout"><button type="submit">Sign out</button></form>
</nav>`,
  );
}
