import { AUTHENTICATION_HEADERS } from './authentication.js';

/**
 * The identity headers of the contract, plus our own extras, plus how the session signed in
 * (AUTHENTICATION_HEADERS: -Amr, -Acr, -Auth-Time): every way in removes clients' copies of all
 * of them, and only validate's answer (or the gateway) sets them.
 */
export const IDENTITY_HEADERS = [
  'x-auth-request-user',
  'x-auth-request-groups',
  'x-auth-request-email',
  'x-auth-request-expires',
  'x-auth-request-jwt',
  'x-auth-request-access-token',
  'x-forwarded-user',
  'x-forwarded-groups',
  'x-forwarded-email',
  'x-forwarded-preferred-username',
  'remote-user',
  'remote-groups',
  'remote-email',
  'remote-name',
  ...AUTHENTICATION_HEADERS,
] as const;

export interface Identity {
  id: string;
  username: string;
  groups: string[];
  email: string;
}

/**
 * A header value for any string: printable ASCII passes as is; anything else (non-ASCII names,
 * control characters) is percent-encoded UTF-8, so no value can break a header or smuggle one.
 */
export function headerValue(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : encodeURIComponent(value);
}

export function identityHeaders(identity: Identity, expiresAt?: string): Record<string, string> {
  const headers: Record<string, string> = {
    'x-auth-request-user': headerValue(identity.username),
    'x-auth-request-groups': identity.groups.map(headerValue).join(','),
    'x-auth-request-email': headerValue(identity.email),
  };
  if (expiresAt) headers['x-auth-request-expires'] = expiresAt;
  return headers;
}
