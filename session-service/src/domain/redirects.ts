const BASE = 'http://gatehouse.invalid';
/** One `/`, then anything but `/` or `\`: a path on this origin, never `//host` or `/\host`. */
const LOCAL_PATH = /^\/(?![/\\])/;
/** Backslashes, whitespace and control characters: browsers "fix" them in surprising ways. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to refuse them
const UNSAFE_CHARS = /[\\\s\u0000-\u001f\u007f-\u009f]/;
const MAX_DECODE_ROUNDS = 4;

/**
 * A redirect target we will follow: a local path (`/x?y#z`, returned normalised), or an absolute
 * http(s) URL whose host is in `allowedHosts` (an entry starting with `.` also allows subdomains).
 * Anything else falls back to `/`: scheme-relative URLs, backslashes, whitespace and control
 * characters, encoded or multiply-encoded slashes and backslashes, dot segments that normalise to
 * `//host` (`/.//evil.com`, `/%2e%2e//evil.com`), userinfo, non-http schemes, and hosts that merely
 * end with an allowed name. Both the raw and the fully percent-decoded target must pass, so nothing
 * downstream that decodes it can turn it into an off-site URL.
 * OWASP Unvalidated Redirects and Forwards Cheat Sheet.
 */
export function safeRedirect(target: unknown, allowedHosts: readonly string[] = []): string {
  if (typeof target !== 'string' || target.length === 0 || target.length > 2048) return '/';
  const decoded = fullyDecode(target);
  if (decoded === undefined || UNSAFE_CHARS.test(target) || UNSAFE_CHARS.test(decoded)) return '/';

  if (target.startsWith('/')) {
    const local = localPath(target);
    return local !== undefined && localPath(decoded) !== undefined ? local : '/';
  }

  // Require `scheme://host` spelled out: `https:evil.com` and `https:///evil.com` parse leniently.
  if (!/^https?:\/\/[^/?#@]+/i.test(target)) return '/';
  const url = parse(target);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) return '/';
  if (url.username || url.password) return '/';
  const host = url.hostname;
  const allowed = allowedHosts.some((entry) => {
    const rule = entry.toLowerCase();
    return rule.startsWith('.') ? host.endsWith(rule) || host === rule.slice(1) : host === rule;
  });
  return allowed ? url.href : '/';
}

/** `/x?y#z` as a browser on this origin would request it, or undefined if it leaves the origin. */
function localPath(path: string): string | undefined {
  if (!LOCAL_PATH.test(path)) return undefined;
  const url = parse(path, BASE);
  if (url?.origin !== BASE) return undefined;
  // Dot segments are resolved here: `/.//evil.com` comes out as `//evil.com`, so check again.
  const normalised = `${url.pathname}${url.search}${url.hash}`;
  return LOCAL_PATH.test(normalised) ? normalised : undefined;
}

/** Percent-decode until stable; undefined if malformed or still encoded after a few rounds. */
function fullyDecode(value: string): string | undefined {
  let current = value;
  for (let round = 0; round < MAX_DECODE_ROUNDS; round++) {
    let next: string;
    try {
      next = decodeURIComponent(current);
    } catch {
      return undefined;
    }
    if (next === current) return current;
    current = next;
  }
  return undefined;
}

function parse(input: string, base?: string): URL | undefined {
  try {
    return new URL(input, base);
  } catch {
    return undefined;
  }
}
