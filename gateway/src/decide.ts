import type { ErrorCode } from '../../common/src/errors.js';
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
}

export type Outcome =
  | 'public'
  | 'ok'
  | 'not_found'
  | 'origin_refused'
  | 'unauthenticated'
  | 'forbidden'
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
      /** Why, for the log line (never shown to the client). */
      reason?: string;
    };

/** Asks the session-service; `null` for "no valid session"; throws when it cannot answer. */
export type Validate = (audience: string | undefined) => Promise<Validation | null>;

export async function decide(
  facts: RequestFacts,
  table: RouteTable,
  validate: Validate,
  options: { signedIdentity: boolean },
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
  return { ok: true, outcome: 'ok', route, validation };
}
