/**
 * Which pages may open a WebSocket through the gateway (cross-site WebSocket hijacking). The
 * browser sends the session cookie with an upgrade from any page of the same site (a sibling
 * subdomain, another port: SameSite=Lax does not stop those), and the upgrade is not subject to
 * CORS, so the gateway checks who asked:
 *
 * - `Origin` present: it must be the request's own origin (scheme from the connection or a trusted
 *   proxy, host and port from the Host header), or one listed in the route's `websocketOrigins`.
 *   `Origin: null` (sandboxed frames, file: pages, privacy redirects) is never allowed.
 * - `Sec-Fetch-Site` present (browsers send it to HTTPS and localhost): `cross-site` and
 *   `same-site` need a listed Origin as well; `same-origin` and `none` pass this check (Origin is
 *   still checked above).
 * - neither (not a browser: a CLI, a service): allowed; it has no ambient cookie to abuse.
 */
export type OriginCheck = { ok: true } | { ok: false; reason: string };

/** `scheme://host[:port]` with the default port dropped, lowercase; null when not an origin. */
export function normaliseOrigin(value: string): string | null {
  if (value === 'null') return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  if (
    url.username ||
    url.password ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search ||
    url.hash
  )
    return null;
  // URL keeps a path of "/" for "https://a.example"; a real Origin header has none.
  if (/^[a-z]+:\/\/[^/]+\/./i.test(value)) return null;
  return url.origin;
}

export function checkUpgradeOrigin(input: {
  origin: string | undefined;
  secFetchSite: string | undefined;
  /** `http://host:port` of this request as the gateway sees it. */
  ownOrigin: string;
  /** Normalised origins the route allows besides its own. */
  allowed: ReadonlySet<string>;
}): OriginCheck {
  const { origin, secFetchSite } = input;
  if (origin === undefined) {
    if (secFetchSite === undefined || secFetchSite === 'same-origin' || secFetchSite === 'none')
      return { ok: true };
    return { ok: false, reason: `Sec-Fetch-Site ${secFetchSite} without Origin` };
  }
  const normalised = normaliseOrigin(origin.trim());
  if (!normalised) return { ok: false, reason: 'Origin is not an http(s) origin' };
  if (input.allowed.has(normalised)) return { ok: true };
  if (normalised !== normaliseOrigin(input.ownOrigin)) return { ok: false, reason: 'cross-origin' };
  if (secFetchSite !== undefined && secFetchSite !== 'same-origin' && secFetchSite !== 'none')
    return { ok: false, reason: `Sec-Fetch-Site ${secFetchSite}` };
  return { ok: true };
}
