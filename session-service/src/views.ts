import { escapeHtml, htmlPage } from '../../common/src/http.js';

export interface LoginView {
  rd: string;
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
  return htmlPage(
    'Sign in · Gatehouse',
    `<h1>Sign in</h1>
${error}
<form method="post" action="/auth/login" ${view.error ? 'aria-describedby="login-error"' : ''}>
${csrf}
<input type="hidden" name="rd" value="${escapeHtml(view.rd)}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required maxlength="64" value="${escapeHtml(view.username ?? '')}"${view.username ? '' : ' autofocus'}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"${view.username ? ' autofocus' : ''}>
${remember}
<button type="submit">Sign in</button>
</form>`,
  );
}

export function loggedOutPage(): string {
  return htmlPage(
    'Signed out · Gatehouse',
    '<h1>You are signed out</h1><p><a href="/auth/login">Sign in again</a></p>',
  );
}
