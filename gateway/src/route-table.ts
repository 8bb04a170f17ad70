import type { Requirement } from '../../common/src/authentication.js';
import type { Identity } from '../../common/src/identity.js';

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
  /**
   * `any`: a session cookie or an access token; `session`: a session only (browsers); `token`:
   * an access token only (`Authorization: Bearer gatehouse_…`).
   */
  credentials: 'any' | 'session' | 'token';
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

/** One host pattern's routes, as a trie on decoded path segments. */
interface Node {
  /** The route whose path ends here (the first in `ordered` when several do). */
  route?: Route;
  /** Its place in `ordered`: the linear order's priority, lower wins. */
  rank: number;
  children?: Map<string, Node>;
}

function insert(root: Node, route: Route, rank: number): void {
  let node = root;
  for (const segment of route.segments) {
    let next = node.children?.get(segment);
    if (!next) {
      next = { rank: Number.POSITIVE_INFINITY };
      node.children ??= new Map();
      node.children.set(segment, next);
    }
    node = next;
  }
  if (rank < node.rank) {
    node.route = route;
    node.rank = rank;
  }
}

/** The deepest node on the request's path that ends a route: its longest matching prefix. */
function deepest(root: Node, segments: readonly string[]): Node | undefined {
  let best: Node | undefined = root.route ? root : undefined;
  let node: Node | undefined = root;
  for (const segment of segments) {
    node = node.children?.get(segment);
    if (!node) break;
    if (node.route) best = node;
  }
  return best;
}

/**
 * Routes indexed by host, then by path segment. Exact hosts are one Map lookup; a wildcard
 * `*.example.com` is found by the hostname's suffixes at each dot (`.b.example.com`,
 * `.example.com`, `.com`); routes without a host are one more trie. Each candidate host pattern
 * gives its longest prefix route by walking its trie along the request's segments, and the
 * candidates are compared by their place in the linear order (host rank, then prefix length,
 * then file order), so the answer is the one a scan of that order would give: the most specific
 * host that has a route for this path, falling back to less specific hosts and to host-less
 * routes. Cost per request: O(dots in the hostname × path depth) Map lookups, whatever the
 * number of routes.
 */
export function buildRouteTable(routes: readonly Route[]): RouteTable {
  // The priority order (kept as `routes`, and what the index reproduces): host rank, then
  // prefix length; among equals, the file's order.
  const ordered = [...routes].sort(
    (a, b) => hostRank(b.host) - hostRank(a.host) || b.segments.length - a.segments.length,
  );
  const exact = new Map<string, Node>();
  /** `*.example.com` under `.example.com`: what hostname.endsWith tests. */
  const wildcard = new Map<string, Node>();
  const hostless: Node = { rank: Number.POSITIVE_INFINITY };
  ordered.forEach((route, rank) => {
    let root = hostless;
    if (route.host) {
      const wild = route.host.startsWith('*.');
      const index = wild ? wildcard : exact;
      const key = wild ? route.host.slice(1) : route.host;
      root = index.get(key) ?? { rank: Number.POSITIVE_INFINITY };
      index.set(key, root);
    }
    insert(root, route, rank);
  });
  return Object.freeze({
    routes: Object.freeze(ordered),
    match(hostname: string | undefined, segments: readonly string[]) {
      let best = deepest(hostless, segments);
      const consider = (root: Node | undefined) => {
        const found = root && deepest(root, segments);
        if (found && (!best || found.rank < best.rank)) best = found;
      };
      if (hostname) {
        consider(exact.get(hostname));
        if (wildcard.size > 0)
          for (let dot = hostname.indexOf('.'); dot !== -1; dot = hostname.indexOf('.', dot + 1))
            consider(wildcard.get(hostname.slice(dot)));
      }
      return best?.route;
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
