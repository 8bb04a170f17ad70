import { type Missing, missingFor } from '../../common/src/authentication.js';
import { ERRORS, type ErrorCode } from '../../common/src/errors.js';
import type { ParsedHost } from './host.js';
import { checkUpgradeOrigin } from './origin.js';
import type { RequestTarget } from './request-target.js';
import { isAllowed, type Route, type RouteTable } from './route-table.js';
import { TokenRefused, type Validation } from './validate-answer.js';

/**
 * The one decision, for HTTP requests and WebSocket upgrades alike, on facts only (no sockets, no
 * headers lists): route, origin (upgrades), session, allow. Everything the upstream then receives
 * follows from the decision (request-headers.ts); nothing here talks HTTP.
 */
export interface RequestFacts {
  host: ParsedHost | undefined;
  target: RequestTarget;
  /** Set for a WebSocket upgrade. */
  upgrade?: { origin: string | undefined; secFetchSite: string | undefined; ownOrigin: string };
  /**
   * An open WebSocket checked again: the route's `maxAge` was met when it opened and is not asked
   * again as the sign-in ages (a socket cannot step up); the kind of factor still is.
   */
  recheck?: boolean;
  /** The request's method: a read-only token takes GET, HEAD and OPTIONS only. */
  method?: string;
  /**
   * The access token the request presents (common/src/access-token.ts `presentedToken`): the token, `null`
   * for one that starts like ours but cannot be, absent for none (the session cookie counts).
   */
  token?: string | null;
  /** A Gatehouse session cookie came along (a route for tokens only refuses it by name). */
  sessionCookie?: boolean;
  /** It came over plain HTTP from another machine while PUBLIC_URL is https. */
  plainHttpFromAfar?: boolean;
}

export type Outcome =
  | 'public'
  | 'ok'
  | 'not_found'
  | 'origin_refused'
  | 'unauthenticated'
  | 'forbidden'
  | 'step_up'
  | 'unavailable'
  /** The route takes the other kind of credential (`credentials`), or a token cannot meet it. */
  | 'credential_refused'
  /** The token's scope leaves this route or method out. */
  | 'scope_refused'
  /** Too many failed tokens from this address (validate's 429). */
  | 'throttled'
  /** A token over plain HTTP from another machine. */
  | 'https_required';

export type Decision =
  | { ok: true; outcome: 'public' | 'ok'; route: Route; validation?: Validation }
  | {
      ok: false;
      outcome: Exclude<Outcome, 'public' | 'ok'>;
      status: number;
      code: ErrorCode;
      message?: string;
      headers?: Record<string, string>;
      route?: Route;
      validation?: Validation;
      /** What the session lacks for this route (`step_up`): the step-up page's `need`. */
      need?: Missing;
      /** Why, for the log line (never shown to the client). */
      reason?: string;
      /**
       * Answer as to an API client whatever its Accept header: JSON, never a login redirect (the
       * request presented an access token, or the route takes tokens only).
       */
      bearer?: true;
    };

/** Asks the session-service; `null` for "no valid session"; throws when it cannot answer. */
export type Validate = (audience: string | undefined) => Promise<Validation | null>;

/** What an API client is told it lacks (browsers are sent to the step-up page instead). */
const STEP_UP_MESSAGES: Record<Missing, string> = {
  'second-factor': ERRORS.STEP_UP_REQUIRED.message,
  webauthn: 'This page needs a sign-in with a security key or passkey. Confirm it is you with one.',
  'recent-authentication': ERRORS.REAUTHENTICATION_REQUIRED.message,
};

/** What a read-only token may do. */
const READ_ONLY_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

const INVALID_TOKEN = {
  status: 401,
  code: 'UNAUTHENTICATED',
  message: 'The token is not valid.',
  headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
  bearer: true,
} as const;

export async function decide(
  facts: RequestFacts,
  table: RouteTable,
  validate: Validate,
  /** `now`: epoch milliseconds, for the route's `maxAge`. */
  options: { signedIdentity: boolean; now: number },
): Promise<Decision> {
  const route = table.match(facts.host?.name, facts.target.segments);
  if (!route)
    return {
      ok: false,
      outcome: 'not_found',
      status: 404,
      code: 'NOT_FOUND',
      message: 'No application is served at this address.',
    };
  const bearer = facts.token !== undefined;
  // An upgrade that presents a token carries no ambient credential: a page cannot set
  // Authorization on a WebSocket, so there is no cross-site hijacking to refuse.
  if (facts.upgrade && !bearer) {
    const origin = checkUpgradeOrigin({ ...facts.upgrade, allowed: route.websocketOrigins });
    if (!origin.ok)
      return {
        ok: false,
        outcome: 'origin_refused',
        status: 403,
        code: 'ORIGIN_NOT_ALLOWED',
        message: 'This page may not open a WebSocket here.',
        route,
        reason: origin.reason,
      };
  }
  if (route.public) return { ok: true, outcome: 'public', route };
  const api = bearer || route.credentials === 'token' ? { bearer: true as const } : {};
  if (bearer && route.credentials === 'session')
    return {
      ok: false,
      outcome: 'credential_refused',
      status: 403,
      code: 'CREDENTIAL_NOT_ACCEPTED',
      message: 'This route is for browsers: it does not accept access tokens.',
      route,
      reason: 'token on a sessions-only route',
      ...api,
    };
  if (!bearer && route.credentials === 'token')
    return facts.sessionCookie
      ? {
          ok: false,
          outcome: 'credential_refused',
          status: 403,
          code: 'CREDENTIAL_NOT_ACCEPTED',
          message:
            'This route accepts access tokens only (Authorization: Bearer <token>), not a session.',
          route,
          reason: 'session on a tokens-only route',
          ...api,
        }
      : {
          ok: false,
          outcome: 'unauthenticated',
          status: 401,
          code: 'UNAUTHENTICATED',
          message: 'This route needs an access token (Authorization: Bearer <token>).',
          headers: { 'WWW-Authenticate': 'Bearer realm="gatehouse"' },
          route,
          ...api,
        };
  if (facts.token === null)
    return { ok: false, outcome: 'unauthenticated', ...INVALID_TOKEN, route, reason: 'malformed' };
  if (bearer && facts.plainHttpFromAfar)
    return {
      ok: false,
      outcome: 'https_required',
      status: 403,
      code: 'HTTPS_REQUIRED',
      route,
      reason: 'token over plain HTTP',
      ...api,
    };
  let validation: Validation | null;
  try {
    validation = await validate(options.signedIdentity ? route.id : undefined);
  } catch (err) {
    if (err instanceof TokenRefused)
      return err.code === 'TOO_MANY_ATTEMPTS'
        ? {
            ok: false,
            outcome: 'throttled',
            status: 429,
            code: 'TOO_MANY_ATTEMPTS',
            message: 'Too many invalid access tokens from this address. Try again later.',
            headers: { 'Retry-After': err.retryAfter ?? '60' },
            route,
            ...api,
          }
        : {
            ok: false,
            outcome: 'https_required',
            status: 403,
            code: 'HTTPS_REQUIRED',
            route,
            ...api,
          };
    return {
      ok: false,
      outcome: 'unavailable',
      status: 503,
      code: 'SESSION_SERVICE_UNAVAILABLE',
      message: 'Sign-in is unavailable right now. Try again shortly.',
      headers: { 'Retry-After': '1' },
      route,
      reason: err instanceof Error ? err.message : String(err),
      ...api,
    };
  }
  if (!validation)
    return bearer
      ? { ok: false, outcome: 'unauthenticated', ...INVALID_TOKEN, route }
      : {
          ok: false,
          outcome: 'unauthenticated',
          status: 401,
          code: 'UNAUTHENTICATED',
          route,
          ...api,
        };
  if (!isAllowed(route, validation.user))
    return {
      ok: false,
      outcome: 'forbidden',
      status: 403,
      code: 'FORBIDDEN',
      route,
      validation,
      ...api,
    };
  const { token } = validation;
  if (token || !validation.authentication) {
    const scope = token?.scope ?? {};
    if (scope.routes && !scope.routes.includes(route.id))
      return scopeRefused(route, validation, 'The access token does not reach this route.');
    if (scope.readOnly && (facts.upgrade || !READ_ONLY_METHODS.has(facts.method ?? 'GET')))
      return scopeRefused(
        route,
        validation,
        facts.upgrade
          ? 'The access token is read-only: it cannot open a WebSocket.'
          : 'The access token is read-only: GET, HEAD and OPTIONS only.',
      );
    // A token proves no sign-in, so it can never step up: a route that asks how the user signed
    // in (a second factor, a security key, a recent sign-in) is for sessions.
    if (route.require !== 'password' || route.maxAge !== undefined)
      return {
        ok: false,
        outcome: 'credential_refused',
        status: 403,
        code: 'CREDENTIAL_NOT_ACCEPTED',
        message:
          route.require !== 'password'
            ? 'This route needs a sign-in with a second factor; an access token cannot provide one. Sign in in a browser.'
            : 'This route needs a recent sign-in; an access token cannot provide one. Sign in in a browser.',
        route,
        validation,
        reason: route.require !== 'password' ? `require ${route.require}` : 'maxAge',
        bearer: true,
      };
    return { ok: true, outcome: 'ok', route, validation };
  }
  const maxAge = facts.recheck ? undefined : route.maxAge;
  const need = missingFor(validation.authentication, route.require, maxAge, options.now);
  if (need) {
    const code =
      need === 'recent-authentication' ? 'REAUTHENTICATION_REQUIRED' : 'STEP_UP_REQUIRED';
    return {
      ok: false,
      outcome: 'step_up',
      status: ERRORS[code].status,
      code,
      message: STEP_UP_MESSAGES[need],
      need,
      route,
      validation,
    };
  }
  return { ok: true, outcome: 'ok', route, validation };
}

function scopeRefused(route: Route, validation: Validation, message: string): Decision {
  return {
    ok: false,
    outcome: 'scope_refused',
    status: 403,
    code: 'TOKEN_SCOPE',
    message,
    route,
    validation,
    reason: message,
    bearer: true,
  };
}
