import type { Requirement } from '../../common/src/authentication.js';
import type { Identity } from '../../common/src/identity.js';
import { underPrefix } from './request-target.js';

/**
 * The gateway's route table: which route serves a host and path, and whether a user passes its
 * allow list. Built from a routes file by routes-file.ts.
 */
/** Paths the gateway keeps for itself: no route may send them upstream. */
export const RESERVED_PREFIXES = ['/_gatehouse', '/auth'] as const;

export interface Route {
  id: string;
  /** Lowercase exact hostname, or `*.example.com`. */
  host?: string;
  path: string;
  upstream: URL;
  stripPrefix: boolean;
  preserveHost: boolean;
  public: boolean;
  allow?: { users: ReadonlySet<string>; groups: ReadonlySet<string> };
  /** How the session must have been authenticated (common/src/authentication.ts). */
  require: Requirement;
  /** Seconds: the user must have proved who they are at most this long ago. */
  maxAge?: number;
  timeoutMs: number;
  /** Normalised origins allowed to open WebSockets besides the request's own. */
  websocketOrigins: ReadonlySet<string>;
  /** Who sets the cache policy of protected answers that carry none (response-headers.ts). */
  cache: 'gateway' | 'upstream';
  /** Decoded segments of `path`. */
  segments: readonly string[];
}

export interface RouteTable {
  readonly routes: readonly Route[];
  /** The most specific route for this host and these decoded path segments. */
  match(hostname: string | undefined, segments: readonly string[]): Route | undefined;
}

/** Host specificity: exact beats wildcard (longer suffix first) beats none. */
function hostRank(host: string | undefined): number {
  if (!host) return 0;
  return host.startsWith('*.') ? 1 + host.length : 1_000;
}

function hostMatches(pattern: string | undefined, hostname: string | undefined): boolean {
  if (!pattern) return true;
  if (!hostname) return false;
  if (pattern.startsWith('*.')) return hostname.endsWith(pattern.slice(1));
  return hostname === pattern;
}

export function buildRouteTable(routes: readonly Route[]): RouteTable {
  // Most specific first: host rank, then prefix length; match() takes the first that fits.
  const ordered = [...routes].sort(
    (a, b) => hostRank(b.host) - hostRank(a.host) || b.segments.length - a.segments.length,
  );
  return Object.freeze({
    routes: Object.freeze(ordered),
    match(hostname: string | undefined, segments: readonly string[]) {
      return ordered.find(
        (r) => hostMatches(r.host, hostname) && underPrefix(segments, r.segments),
      );
    },
  });
}

/** Does this user pass the route's allow list (no list: every signed-in user)? */
export function isAllowed(route: Route, user: Identity): boolean {
  if (!route.allow) return true;
  return (
    route.allow.users.has(user.username) || user.groups.some((g) => route.allow?.groups.has(g))
  );
}
