import { escapeHtml, htmlPage } from '../../common/src/http.js';
import type { TokenRecord, TokenScope } from './domain/access-tokens.js';

/** The pages of personal access tokens: "Your tokens" (list, create, revoke) and the new token. */

const when = (ms: number | undefined) => {
  if (ms === undefined) return 'never';
  const iso = new Date(ms).toISOString();
  return `<time datetime="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>`;
};

/** The scope as one line a person reads: "routes api, reports · groups dev · read-only". */
export function scopeLine(scope: TokenScope): string {
  const parts: string[] = [];
  if (scope.routes) parts.push(`routes ${scope.routes.join(', ')}`);
  if (scope.groups)
    parts.push(scope.groups.length > 0 ? `groups ${scope.groups.join(', ')}` : 'no groups');
  if (scope.readOnly) parts.push('read-only');
  return parts.length > 0 ? parts.join(' · ') : 'everything you can reach';
}

export interface TokensView {
  username: string;
  tokens: TokenRecord[];
  csrfToken: string;
  /** TOKEN_MAX_DAYS. */
  maxDays: number;
  /** The user's groups: those a token may carry. */
  groups: readonly string[];
  notice?: string;
  error?: string;
  /** The form's values after a refusal. */
  values?: Record<string, string>;
}

export function tokensPage(view: TokensView): string {
  const csrf = `<input type="hidden" name="_csrf" value="${escapeHtml(view.csrfToken)}">`;
  const value = (name: string, fallback = '') => escapeHtml(view.values?.[name] ?? fallback);
  const rows = view.tokens
    .map(
      (t) => `<tr>
<td class="ua" data-label="Name"><strong>${escapeHtml(t.name)}</strong><span class="agent">${escapeHtml(scopeLine(t.scope))}</span></td>
<td data-label="Created">${when(t.createdAt)}</td>
<td data-label="Last used">${when(t.lastUsedAt)}${t.lastUsedFrom ? ` from ${escapeHtml(t.lastUsedFrom)}` : ''}</td>
<td data-label="Expires">${when(t.expiresAt)}</td>
<td class="action"><form method="post" action="/auth/tokens/${encodeURIComponent(t.id)}/revoke">${csrf}<button class="secondary" type="submit" aria-label="Revoke the token ${escapeHtml(t.name)}">Revoke</button></form></td>
</tr>`,
    )
    .join('\n');
  const list =
    view.tokens.length > 0
      ? `<table class="sessions tokens">
<caption class="visually-hidden">Your access tokens</caption>
<thead><tr><th scope="col">Name and scope</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Expires</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
<form method="post" action="/auth/tokens/revoke-all">${csrf}<button class="secondary" type="submit">Revoke all tokens</button></form>`
      : '<p class="muted">You have no access tokens.</p>';
  const error = view.error
    ? `<p class="error" role="alert" id="form-error">${escapeHtml(view.error)}</p>`
    : '';
  const groups =
    view.groups.length > 0
      ? `Your groups: ${escapeHtml(view.groups.join(', '))}. Empty: all of them.`
      : 'You are in no group.';
  return htmlPage(
    'Your tokens · Gatehouse',
    `<h1>Your tokens</h1>
<p class="lead">Access tokens of <strong>${escapeHtml(view.username)}</strong> for scripts, CLIs and CI jobs: each is sent as <code>Authorization: Bearer &lt;token&gt;</code> and acts as you. Revoke any you no longer use.</p>
${view.notice ? `<p class="notice" role="status">${escapeHtml(view.notice)}</p>` : ''}
${list}
<h2>New token</h2>
${error}
<form method="post" action="/auth/tokens"${view.error ? ' aria-describedby="form-error"' : ''}>
${csrf}
<div class="field"><label for="token-name">Name</label>
<input id="token-name" name="name" type="text" required maxlength="64" autocomplete="off" value="${value('name')}"></div>
<div class="field"><label for="token-days">Expires in (days, at most ${view.maxDays})</label>
<input id="token-days" name="expiresInDays" type="number" required min="1" max="${view.maxDays}" value="${value('expiresInDays', String(Math.min(30, view.maxDays)))}"></div>
<div class="field"><label for="token-routes">Only these routes (route ids, comma-separated; empty: any)</label>
<input id="token-routes" name="routes" type="text" autocomplete="off" value="${value('routes')}"></div>
<div class="field"><label for="token-groups">Only these groups (comma-separated)</label>
<input id="token-groups" name="groups" type="text" autocomplete="off" value="${value('groups')}" aria-describedby="token-groups-hint">
<p class="muted" id="token-groups-hint">${groups}</p></div>
<div class="check"><input type="checkbox" id="token-read-only" name="readOnly" value="1"${view.values?.readOnly ? ' checked' : ''}><label for="token-read-only">Read-only (GET, HEAD and OPTIONS only)</label></div>
<button type="submit">Create token</button>
<p class="muted">Creating a token asks for your password again when you signed in more than 10 minutes ago.</p>
</form>
<div class="actions">
<a href="/">Back to the app</a>
<a href="/auth/sessions">Your sessions</a>
<a href="/auth/security">Security (two-factor authentication)</a>
</div>`,
    { wide: true },
  );
}

/** The new token, shown this once. */
export function tokenCreatedPage(view: { token: string; record: TokenRecord }): string {
  const { record } = view;
  return htmlPage(
    'Your new token · Gatehouse',
    `<h1>Your new token</h1>
<p class="lead" role="status">Copy the token <strong>${escapeHtml(record.name)}</strong> now and keep it somewhere safe (a secret store, your CI's secrets): it is shown only this once. Gatehouse keeps only its hash.</p>
<div class="field"><label for="new-token">Token</label>
<input id="new-token" class="token" type="text" readonly value="${escapeHtml(view.token)}" autocomplete="off" spellcheck="false"></div>
<p class="muted">Select the field and copy it. Expires ${when(record.expiresAt)}; scope: ${escapeHtml(scopeLine(record.scope))}.</p>
<p>Use it as <code>Authorization: Bearer &lt;token&gt;</code>, over HTTPS.</p>
<div class="actions"><a href="/auth/tokens">Done</a></div>`,
  );
}
