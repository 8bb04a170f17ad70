import { escapeHtml, htmlPage } from '../../common/src/http.js';

/** The pages of second factors: the login's second step, enrolment, recovery codes, step-up. */

const csrfField = (token: string) =>
  `<input type="hidden" name="_csrf" value="${escapeHtml(token)}">`;
const hidden = (name: string, value: string) =>
  `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;
const errorLine = (error?: string) =>
  error ? `<p class="error" role="alert" id="form-error">${escapeHtml(error)}</p>` : '';
const described = (error?: string) => (error ? ' aria-describedby="form-error"' : '');

const codeField = (autofocus: boolean) => `<div class="field">
<label for="totp">Code from your authenticator app</label>
<input id="totp" name="totp" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="8"${autofocus ? ' autofocus' : ''}>
</div>`;

const recoveryField = `<details>
<summary>Use a recovery code instead</summary>
<div class="field">
<label for="recovery_code">Recovery code</label>
<input id="recovery_code" name="recovery_code" type="text" autocomplete="off" autocapitalize="none" spellcheck="false" maxlength="24">
</div>
</details>`;

/** The first-party script of the WebAuthn buttons (static/webauthn.js: the CSP allows no inline script). */
export const WEBAUTHN_SCRIPT = '<script src="/auth/static/webauthn.js" defer></script>';

/**
 * A button that runs a WebAuthn ceremony (static/webauthn.js): it asks `options` for options,
 * calls the browser, posts the answer to `verify` and follows the `location` it answers.
 */
export const webauthnButton = (view: {
  id: string;
  label: string;
  ceremony: 'create' | 'get';
  options: string;
  verify: string;
  csrfToken: string;
  fields?: Record<string, string>;
}) =>
  `<div class="webauthn" data-webauthn="${view.ceremony}" data-options="${escapeHtml(view.options)}" data-verify="${escapeHtml(view.verify)}" data-csrf="${escapeHtml(view.csrfToken)}"${Object.entries(
    view.fields ?? {},
  )
    .map(([k, v]) => ` data-field-${k}="${escapeHtml(v)}"`)
    .join('')}>
<button type="button" class="block" id="${view.id}">${escapeHtml(view.label)}</button>
<p class="error" role="alert" hidden></p>
</div>`;

/** The login's second step: a TOTP code, or a recovery code, or a security key. */
export function secondStepPage(view: {
  csrfToken: string;
  totp: boolean;
  webauthn: boolean;
  error?: string;
}): string {
  const key = view.webauthn
    ? webauthnButton({
        id: 'use-key',
        label: 'Use your security key or passkey',
        ceremony: 'get',
        options: '/auth/login/webauthn/options',
        verify: '/auth/login/webauthn',
        csrfToken: view.csrfToken,
      })
    : '';
  const codes = view.totp
    ? `<form method="post" action="/auth/login/second-factor"${described(view.error)}>
${csrfField(view.csrfToken)}
${codeField(!view.webauthn)}
${recoveryField}
<button class="block" type="submit">Verify</button>
</form>`
    : '';
  return htmlPage(
    'Two-factor authentication · Gatehouse',
    `<h1>Two-factor authentication</h1>
<p class="lead">${view.totp ? 'Enter the 6-digit code your authenticator app shows for Gatehouse' : 'Confirm with your security key or passkey'}${view.totp && view.webauthn ? ', or use your security key' : ''}.</p>
${errorLine(view.error)}
${key}
${codes}
<p class="muted"><a href="/auth/login">Start over</a></p>${view.webauthn ? WEBAUTHN_SCRIPT : ''}`,
  );
}

export interface EnrolView {
  /** Where the form posts (the login's enrolment step, or the account's). */
  action: string;
  csrfToken: string;
  uri: string;
  secret: string;
  /** The QR code of `uri`, an SVG made here (no external service). */
  qrSvg: string;
  rd?: string;
  error?: string;
  /** Shown with a "Skip for now" link to rd while the grace period lasts. */
  enrolBy?: number;
  required?: boolean;
}

export function enrolPage(view: EnrolView): string {
  const why = view.required
    ? '<p class="notice" role="status">Your organisation requires a second factor. Set one up to finish signing in.</p>'
    : view.enrolBy !== undefined
      ? `<p class="notice" role="status">Your organisation requires a second factor from ${escapeHtml(new Date(view.enrolBy).toISOString().slice(0, 10))}.</p>`
      : '';
  const skip =
    view.enrolBy !== undefined && view.rd
      ? `<a href="${escapeHtml(view.rd)}">Skip for now</a>`
      : '';
  return htmlPage(
    'Set up two-factor authentication · Gatehouse',
    `<h1>Set up an authenticator app</h1>
${why}
<p class="lead">Scan this QR code with an authenticator app (any app for TOTP codes), then enter the code it shows.</p>
<figure class="qr">${view.qrSvg}<figcaption class="visually-hidden">QR code of the setup link</figcaption></figure>
<details>
<summary>Can't scan it?</summary>
<p>Enter this key in the app: <code id="totp-secret">${escapeHtml(view.secret.replace(/(.{4})/g, '$1 ').trim())}</code></p>
<p>Or open the setup link: <a id="totp-uri" href="${escapeHtml(view.uri)}">${escapeHtml(view.uri)}</a></p>
</details>
${errorLine(view.error)}
<form method="post" action="${escapeHtml(view.action)}"${described(view.error)}>
${csrfField(view.csrfToken)}
${view.rd ? hidden('rd', view.rd) : ''}
${codeField(true)}
<div class="actions">
<button type="submit">Turn on</button>
${skip}
</div>
</form>`,
  );
}

/** Shown once: the new recovery codes, and where to go on. */
export function recoveryCodesPage(view: { codes: string[]; next: string }): string {
  return htmlPage(
    'Your recovery codes · Gatehouse',
    `<h1>Save your recovery codes</h1>
<p class="lead">Each code signs you in once if you lose your authenticator app. Keep them somewhere safe: they are not shown again.</p>
<ul class="codes" id="recovery-codes">
${view.codes.map((c) => `<li><code>${escapeHtml(c)}</code></li>`).join('\n')}
</ul>
<div class="actions"><a href="${escapeHtml(view.next)}">Continue</a></div>`,
  );
}

/** After a sign-in or step-up with a recovery code: how many are left. */
export function recoveryCodeUsedPage(view: { left: number; next: string }): string {
  const advice =
    view.left <= 3 ? ' <a href="/auth/security">Generate new codes</a> before you run out.' : '';
  return htmlPage(
    'Recovery code used · Gatehouse',
    `<h1>Recovery code used</h1>
<p class="lead" role="status">You have <strong id="codes-left">${view.left}</strong> recovery code${view.left === 1 ? '' : 's'} left.${advice}</p>
<div class="actions"><a href="${escapeHtml(view.next)}">Continue</a></div>`,
  );
}

export type StepUpNeed = 'second-factor' | 'webauthn' | 'recent-authentication';

/** Step-up: a code (second-factor), or the password again, plus a code when the user has one. */
export function stepUpPage(view: {
  need: StepUpNeed;
  rd: string;
  csrfToken: string;
  username: string;
  withCode: boolean;
  /** The user has a WebAuthn credential: offer it (second-factor, webauthn). */
  withKey?: boolean;
  error?: string;
}): string {
  const key =
    view.withKey && view.need !== 'recent-authentication'
      ? webauthnButton({
          id: 'use-key',
          label: 'Use your security key or passkey',
          ceremony: 'get',
          options: '/auth/step-up/webauthn/options',
          verify: '/auth/step-up/webauthn',
          csrfToken: view.csrfToken,
          fields: { rd: view.rd, need: view.need },
        })
      : '';
  const password =
    view.need === 'recent-authentication'
      ? `<input type="hidden" name="username" value="${escapeHtml(view.username)}" autocomplete="username">
<div class="field">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024" autofocus>
</div>`
      : '';
  const lead =
    view.need === 'recent-authentication'
      ? 'This page needs a recent sign-in. Enter your password again to continue.'
      : view.need === 'webauthn'
        ? 'This page needs your security key or passkey.'
        : 'This page needs a second factor. Enter a code to continue.';
  const form =
    view.need === 'webauthn'
      ? ''
      : `<form method="post" action="/auth/step-up"${described(view.error)}>
${csrfField(view.csrfToken)}
${hidden('rd', view.rd)}
${hidden('need', view.need)}
${password}
${view.withCode ? `${codeField(view.need === 'second-factor' && !key)}\n${recoveryField}` : ''}
<button class="block" type="submit">Continue</button>
</form>`;
  return htmlPage(
    'Confirm it is you · Gatehouse',
    `<h1>Confirm it is you</h1>
<p class="lead">${lead}</p>
${errorLine(view.error)}
${key}
${form}${key ? WEBAUTHN_SCRIPT : ''}`,
  );
}

/** A route needs a security key and the user has none yet: add one first. */
export function webauthnRequiredPage(rd: string): string {
  return htmlPage(
    'Security key required · Gatehouse',
    `<h1>Security key required</h1>
<p class="lead">This page requires a security key or passkey, and your account has none yet.</p>
<p class="muted">Code: WEBAUTHN_REQUIRED</p>
<div class="actions"><a href="/auth/security">Add a security key or passkey</a> <a href="${escapeHtml(rd)}">Back</a></div>`,
  );
}

/** The account's security page: factors, recovery codes, links. */
export function securityPage(view: {
  username: string;
  totp: boolean;
  recoveryCodesLeft: number;
  /** The user's WebAuthn credentials. */
  keys: readonly {
    id: string;
    name: string;
    createdAt: number;
    lastUsedAt: number | null;
    backedUp: boolean;
  }[];
  csrfToken: string;
  notice?: string;
  error?: string;
}): string {
  const token = csrfField(view.csrfToken);
  const day = (ms: number | null) =>
    ms === null ? 'never' : new Date(ms).toISOString().slice(0, 10);
  const keys = `<h2>Security keys and passkeys</h2>
${
  view.keys.length === 0
    ? '<p>None yet.</p>'
    : `<ul id="webauthn-keys">
${view.keys
  .map(
    (k, i) =>
      `<li><strong>${escapeHtml(k.name)}</strong> · added ${day(k.createdAt)} · last used ${day(k.lastUsedAt)}${k.backedUp ? ' · synced passkey' : ''}
<form method="post" action="/auth/security/webauthn/${encodeURIComponent(k.id)}/name">
${token}
<div class="field"><label for="rename-key-${i}">New name for ${escapeHtml(k.name)}</label>
<input id="rename-key-${i}" name="name" type="text" maxlength="64" required autocomplete="off" value="${escapeHtml(k.name)}"></div>
<button class="secondary" type="submit">Rename</button>
</form>
<form method="post" action="/auth/security/webauthn/${encodeURIComponent(k.id)}/remove">
${token}
<button class="secondary" type="submit">Remove ${escapeHtml(k.name)}</button>
</form></li>`,
  )
  .join('\n')}
</ul>
<p class="muted">Removing a key signs out your other sessions.</p>`
}
<div class="field"><label for="key-name">Name for the new key</label>
<input id="key-name" name="name" type="text" maxlength="64" autocomplete="off" placeholder="e.g. YubiKey, Laptop"></div>
${webauthnButton({
  id: 'add-key',
  label: 'Add a security key or passkey',
  ceremony: 'create',
  options: '/auth/security/webauthn/options',
  verify: '/auth/security/webauthn',
  csrfToken: view.csrfToken,
})}${WEBAUTHN_SCRIPT}`;
  const manage = view.totp
    ? `<p>Authenticator app: <strong>on</strong>. Recovery codes left: <strong id="codes-left">${view.recoveryCodesLeft}</strong>.</p>
<form method="post" action="/auth/security/recovery-codes">
${token}
<div class="field"><label for="regen-totp">Code from your app</label>
<input id="regen-totp" name="totp" type="text" inputmode="numeric" autocomplete="one-time-code" maxlength="8" required></div>
<button class="secondary" type="submit">Generate new recovery codes</button>
</form>
<form method="post" action="/auth/security/totp/remove">
${token}
<div class="field"><label for="remove-totp">Code from your app (or a recovery code)</label>
<input id="remove-totp" name="code" type="text" autocomplete="one-time-code" maxlength="24" required></div>
<button class="secondary" type="submit">Turn off two-factor authentication</button>
<p class="muted">Turning it off signs out your other sessions.</p>
</form>`
    : `<p>Authenticator app: <strong>off</strong>.</p>
<div class="actions"><a href="/auth/security/totp">Set up an authenticator app</a></div>`;
  return htmlPage(
    'Security · Gatehouse',
    `<h1>Security</h1>
<p class="lead">Two-factor authentication for <strong>${escapeHtml(view.username)}</strong>.</p>
${view.notice ? `<p class="notice" role="status">${escapeHtml(view.notice)}</p>` : ''}
${errorLine(view.error)}
${manage}
${keys}
<div class="actions"><a href="/auth/sessions">Your sessions</a> <a href="/auth/tokens">Your tokens</a> <a href="/">Back to the app</a></div>`,
  );
}

/**
 * A page that moves on to `to` (same origin) at once: after an identity provider's redirect, so
 * that the next request is a same-site navigation and carries SameSite=Strict cookies. A meta
 * refresh (no script: the page's CSP allows none inline) and a link for when it does not fire.
 */
export function continuePage(to: string): string {
  return htmlPage(
    'Continue · Gatehouse',
    `<h1>One more step</h1>
<p>Continue to <a id="continue" href="${escapeHtml(to)}">the second sign-in step</a>.</p>`,
  ).replace('<head>', `<head>\n<meta http-equiv="refresh" content="0;url=${escapeHtml(to)}">`);
}
