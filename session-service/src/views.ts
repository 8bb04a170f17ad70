import { escapeHtml, htmlPage } from '../../common/src/http.js';
import { WEBAUTHN_SCRIPT, webauthnButton } from './views-second-factor.js';

export interface LoginProvider {
  id: string;
  name: string;
}

export interface LoginView {
  rd: string;
  /** false: providers only (IDENTITY_SOURCES_FILE passwordForm: false). */
  passwordForm?: boolean;
  providers?: readonly LoginProvider[];
  username?: string;
  error?: string;
  csrfToken?: string;
  rememberMe?: boolean;
}

export function loginPage(view: LoginView): string {
  const error = view.error
    ? `<p class="error" role="alert" id="login-error">${escapeHtml(view.error)}</p>`
    : '';
  const remember = view.rememberMe
    ? `<div class="check"><input type="checkbox" id="remember" name="remember" value="1"><label for="remember">Keep me signed in on this device</label></div>`
    : '';
  const csrf = view.csrfToken
    ? `<input type="hidden" name="_csrf" value="${escapeHtml(view.csrfToken)}">`
    : '';
  const invalid = view.error ? ' aria-invalid="true"' : '';
  const providers = (view.providers ?? [])
    .map(
      (p) =>
        `<a class="button block secondary" id="oidc-${escapeHtml(p.id)}" href="/auth/oidc/${encodeURIComponent(p.id)}/start?rd=${encodeURIComponent(view.rd)}">Sign in with ${escapeHtml(p.name)}</a>`,
    )
    .join('\n');
  const offerPassword = view.passwordForm !== false;
  const passwordForm = `<form method="post" action="/auth/login"${view.error ? ' aria-describedby="login-error"' : ''}>
${csrf}
<input type="hidden" name="rd" value="${escapeHtml(view.rd)}">
<div class="field">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required maxlength="64" value="${escapeHtml(view.username ?? '')}"${view.username ? '' : ' autofocus'}>
</div>
<div class="field">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"${invalid}${view.username ? ' autofocus' : ''}>
</div>
${remember}
<button class="block" type="submit">Sign in</button>
</form>
${
  view.csrfToken
    ? `${webauthnButton({
        id: 'passkey',
        label: 'Sign in with a passkey',
        ceremony: 'get',
        options: '/auth/login/passkey/options',
        verify: '/auth/login/passkey',
        csrfToken: view.csrfToken,
        fields: { rd: view.rd },
      })}${WEBAUTHN_SCRIPT}`
    : ''
}`;
  return htmlPage(
    'Sign in · Gatehouse',
    `<h1>Sign in</h1>
<p class="lead">Sign in to continue to your app.</p>
${error}
${providers ? `<div class="providers">\n${providers}\n</div>` : ''}
${offerPassword ? passwordForm : ''}`,
  );
}

export function confirmLogoutPage(csrfToken: string): string {
  return htmlPage(
    'Sign out · Gatehouse',
    `<h1>Sign out?</h1>
<p>Confirm that you want to sign out of this browser.</p>
<form method="post" action="/auth/logout">
<input type="hidden" name="_csrf" value="${escapeHtml(csrfToken)}">
<div class="actions">
<button type="submit">Sign out</button>
<a href="/">Stay signed in</a>
</div>
</form>`,
  );
}

export interface SessionRow {
  id: string;
  createdAt: number;
  lastSeenAt: number;
  ip: string;
  userAgent: string;
  current: boolean;
}

const when = (ms: number) => {
  const iso = new Date(ms).toISOString();
  return `<time datetime="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>`;
};

export function sessionsPage(view: {
  username: string;
  sessions: SessionRow[];
  /** The next page's address, when there are more sessions than this page shows. */
  next?: string;
  csrfToken: string;
  notice?: string;
}): string {
  const token = `<input type="hidden" name="_csrf" value="${escapeHtml(view.csrfToken)}">`;
  const rows = view.sessions
    .map((s) => {
      const browser = escapeHtml(s.userAgent || 'Unknown browser');
      const label = `${escapeHtml(s.userAgent || 'unknown browser')} from ${escapeHtml(s.ip || 'unknown address')}`;
      return `<tr${s.current ? ' class="current"' : ''}>
<td class="ua" data-label="Browser">${s.current ? '<span class="badge">This browser</span> ' : ''}<span class="agent">${browser}</span></td>
<td data-label="Address">${escapeHtml(s.ip || '-')}</td>
<td data-label="Signed in">${when(s.createdAt)}</td>
<td data-label="Last seen">${when(s.lastSeenAt)}</td>
<td class="action"><form method="post" action="/auth/sessions/${encodeURIComponent(s.id)}/revoke">${token}<button class="secondary" type="submit" aria-label="${s.current ? 'Sign out this browser' : `Revoke the session of ${label}`}">${s.current ? 'Sign out' : 'Revoke'}</button></form></td>
</tr>`;
    })
    .join('\n');
  const others = view.sessions.filter((s) => !s.current).length + (view.next ? 1 : 0);
  const count = view.sessions.length;
  const lead = view.next
    ? `These are the ${count} most recently active of the browsers signed in to your account.`
    : `${count === 1 ? 'This browser is' : `These ${count} browsers are`} signed in to your account.`;
  return htmlPage(
    'Your sessions · Gatehouse',
    `<h1>Your sessions</h1>
<p class="lead">Signed in as <strong>${escapeHtml(view.username)}</strong>. ${lead} Revoke any you do not recognise.</p>
${view.notice ? `<p class="notice" role="status">${escapeHtml(view.notice)}</p>` : ''}
<table class="sessions">
<caption class="visually-hidden">Signed-in browsers</caption>
<thead><tr><th scope="col">Browser</th><th scope="col">Address</th><th scope="col">Signed in</th><th scope="col">Last seen</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
${view.next ? `<p><a href="${escapeHtml(view.next)}">More sessions</a></p>` : ''}
<div class="actions">
<a href="/">Back to the app</a>
<a href="/auth/security">Security (two-factor authentication)</a>
<a href="/auth/tokens">Your tokens</a>
${others > 0 ? `<form method="post" action="/auth/logout-all">${token}<button class="secondary" type="submit">Sign out everywhere else</button></form>` : ''}
</div>`,
    { wide: true },
  );
}
