import { type Missing, missingFor } from '../../common/src/authentication.js';
import { ERRORS, type ErrorCode } from '../../common/src/errors.js';
import type { ParsedHost } from './host.js';
import { checkUpgradeOrigin } from './origin.js';
import type { RequestTarget } from './request-target.js';
import { isAllowed, type Route, type RouteTable } from './route-table.js';
import type { Validation } from './session-client.js';

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
}

export type Outcome =
  | 'public'
  | 'ok'
  | 'not_found'
  | 'origin_refused'
  | 'unauthenticated'
  | 'forbidden'
  | 'step_up'
  | 'unavailable';

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
    };

/** Asks the session-service; `null` for "no valid session"; throws when it cannot answer. */
export type Validate = (audience: string | undefined) => Promise<Validation | null>;

/** What an API client is told it lacks (browsers are sent to the step-up page instead). */
const STEP_UP_MESSAGES: Record<Missing, string> = {
  'second-factor': ERRORS.STEP_UP_REQUIRED.message,
  webauthn: 'This page needs a sign-in with a security key or passkey. Confirm it is you with one.',
  'recent-authentication': ERRORS.REAUTHENTICATION_REQUIRED.message,
};

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
  if (facts.upgrade) {
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
  let validation: Validation | null;
  try {
    validation = await validate(options.signedIdentity ? route.id : undefined);
  } catch (err) {
    return {
      ok: false,
      outcome: 'unavailable',
      status: 503,
      code: 'SESSION_SERVICE_UNAVAILABLE',
      message: 'Sign-in is unavailable right now. Try again shortly.',
      headers: { 'Retry-After': '1' },
      route,
      reason: err instanceof Error ? err.message : String(err),
    };
  }
  if (!validation)
    return { ok: false, outcome: 'unauthenticated', status: 401, code: 'UNAUTHENTICATED', route };
  if (!isAllowed(route, validation.user))
    return { ok: false, outcome: 'forbidden', status: 403, code: 'FORBIDDEN', route, validation };
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
