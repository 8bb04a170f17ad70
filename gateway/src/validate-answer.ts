/**
 * What the session-service's validate answer means to the gateway (the gateway → session-service
 * boundary): the validation of a session or an access token, "nobody" (401), a token refused for
 * a reason the client is told (429, 403), or anything else, which fails closed as "unavailable"
 * (503): a refused internal token, another status, a body that does not parse or lacks what a
 * route's requirement checks. session-client.ts asks; this reads.
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  type Authentication,
  authenticationOf,
  parseAuthenticationBody,
} from '../../common/src/authentication.js';
import type { Identity } from '../../common/src/identity.js';

/** What validate says of an access token (its id is the token's SHA-256, never the token). */
export interface TokenUse {
  id: string;
  name: string;
  kind: 'personal' | 'service';
  expiresAt: string;
  /** Route ids it may reach (absent: any) and whether it is read-only; its groups are applied. */
  scope: { routes?: string[]; readOnly?: boolean };
}

export interface Validation {
  user: Identity;
  /** When the credential ends: the session's expiry, or the access token's (no createdAt then). */
  session: { createdAt?: string; expiresAt: string };
  /**
   * How the session was authenticated (methods, level, when): what route requirements check.
   * Absent for an access token, which proves no sign-in.
   */
  authentication?: Authentication;
  /** Set when the credential was an access token. */
  token?: TokenUse;
  /** The signed identity (compact JWT, aud = the route id) when asked for and the service signs. */
  jwt?: string;
}

/**
 * validate refused an access token for a reason other than "not valid": too many failed tokens
 * from this address (429 TOO_MANY_ATTEMPTS, with its Retry-After), or sent over plain HTTP
 * (403 HTTPS_REQUIRED). The gateway answers the client the same, never 503.
 */
export class TokenRefused extends Error {
  constructor(
    readonly code: 'TOO_MANY_ATTEMPTS' | 'HTTPS_REQUIRED',
    readonly retryAfter?: string,
  ) {
    super(`validate refused the token: ${code}`);
    this.name = 'TokenRefused';
  }
}

/** A compact JWS (header.payload.signature, base64url): nothing else goes into a header. */
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * A session-service from before issue 14 says nothing of how a session signed in: a password, at
 * an unknown time. Fail safe: `authTime` 0 is older than any `maxAge`, so such routes always ask
 * again, and no route that needs a second factor lets it through.
 */
export const UNKNOWN_AUTHENTICATION: Authentication = Object.freeze(authenticationOf(['pwd'], 0));

/** The validate body's `authentication`: absent is UNKNOWN_AUTHENTICATION, malformed is undefined. */
function authenticationIn(body: { authentication?: unknown }): Authentication | undefined {
  if (body.authentication === undefined) return UNKNOWN_AUTHENTICATION;
  return parseAuthenticationBody(body.authentication);
}

const strings = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((v) => typeof v === 'string');

/**
 * validate's answer for an access token: the owner, and the token's id, name, kind, expiry and
 * scope. Undefined when any of it does not parse (the gateway then fails closed), or when it
 * carries `authentication` (a token never does: an answer for a session cannot pass as one).
 */
function tokenAnswer(body: unknown): Omit<Validation, 'jwt'> | undefined {
  const b = body as {
    user?: Identity;
    token?: Record<string, unknown>;
    authentication?: unknown;
  } | null;
  const user = b?.user;
  const t = b?.token;
  if (!user || typeof user.username !== 'string' || !strings(user.groups) || !t) return undefined;
  if (b.authentication !== undefined) return undefined;
  const scope = (t.scope ?? {}) as Record<string, unknown>;
  if (
    typeof t.id !== 'string' ||
    typeof t.name !== 'string' ||
    (t.kind !== 'personal' && t.kind !== 'service') ||
    typeof t.expiresAt !== 'string' ||
    !Number.isFinite(Date.parse(t.expiresAt)) ||
    typeof scope !== 'object' ||
    (scope.routes !== undefined && !strings(scope.routes)) ||
    (scope.readOnly !== undefined && typeof scope.readOnly !== 'boolean')
  )
    return undefined;
  return {
    user,
    session: { expiresAt: t.expiresAt },
    token: {
      id: t.id,
      name: t.name,
      kind: t.kind,
      expiresAt: t.expiresAt,
      scope: {
        ...(scope.routes !== undefined ? { routes: scope.routes as string[] } : {}),
        ...(scope.readOnly !== undefined ? { readOnly: scope.readOnly as boolean } : {}),
      },
    },
  };
}

/** The `error` of a JSON error answer, if it is one. */
function errorCodeOf(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { error?: unknown } | null)?.error;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

export type ValidateAnswer =
  | { kind: 'none' }
  | { kind: 'valid'; validation: Validation }
  | { kind: 'refused'; error: TokenRefused }
  | { kind: 'unavailable'; why: string };

/**
 * Read one validate answer. `token`: an access token was presented (its answer has another
 * shape); `signed`: the internal validate was asked, whose X-Auth-Request-JWT is the signed
 * identity.
 */
export function readValidateAnswer(
  answer: { status: number | undefined; headers: IncomingHttpHeaders; text: string },
  asked: { token: boolean; signed: boolean },
): ValidateAnswer {
  const { status, headers, text } = answer;
  const unavailable = (why: string): ValidateAnswer => ({ kind: 'unavailable', why });
  if (status === 401) {
    // "No session" is UNAUTHENTICATED; a refused internal token is a misconfiguration
    // (INTERNAL_TOKEN differs): fail closed with 503 and say why, not "logged out".
    if (errorCodeOf(text) !== 'INVALID_INTERNAL_TOKEN') return { kind: 'none' };
    return unavailable('the session-service refused the internal token (INTERNAL_TOKEN differs)');
  }
  if (asked.token && (status === 429 || status === 403)) {
    const code = errorCodeOf(text);
    if (status === 429 && code === 'TOO_MANY_ATTEMPTS') {
      const retryAfter = headers['retry-after'];
      return {
        kind: 'refused',
        error: new TokenRefused(
          code,
          typeof retryAfter === 'string' && /^\d{1,6}$/.test(retryAfter) ? retryAfter : '60',
        ),
      };
    }
    if (status === 403 && code === 'HTTPS_REQUIRED')
      return { kind: 'refused', error: new TokenRefused(code) };
  }
  if (status !== 200) return unavailable(`validate answered ${status}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return unavailable('validate answer not JSON');
  }
  try {
    return validationIn(body, asked, headers);
  } catch {
    return unavailable('validate answer malformed');
  }
}

/** A 200 answer's body as a validation, or why not. */
function validationIn(
  body: unknown,
  asked: { token: boolean; signed: boolean },
  headers: IncomingHttpHeaders,
): ValidateAnswer {
  const unavailable = (why: string): ValidateAnswer => ({ kind: 'unavailable', why });
  const jwt = asked.signed ? headers['x-auth-request-jwt'] : undefined;
  const signedIdentity = typeof jwt === 'string' && COMPACT_JWT.test(jwt) ? { jwt } : {};
  if (asked.token) {
    const use = tokenAnswer(body);
    if (!use) return unavailable('validate answer malformed: token');
    return { kind: 'valid', validation: { ...use, ...signedIdentity } };
  }
  const b = body as (Omit<Validation, 'authentication'> & { authentication?: unknown }) | null;
  if (!b?.user || typeof b.user.username !== 'string')
    return unavailable('validate answer malformed');
  // Fail closed: a route's requirement cannot be checked against what does not parse.
  const authentication = authenticationIn(b);
  if (!authentication) return unavailable('validate answer malformed: authentication');
  return {
    kind: 'valid',
    validation: { user: b.user, session: b.session, authentication, ...signedIdentity },
  };
}
