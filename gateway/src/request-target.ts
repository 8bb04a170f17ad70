/**
 * The request-target, checked before any route decision. Anything that another parser (the
 * upstream's framework, a CGI bridge, Tomcat, a file server) could read as a different path than
 * we do is refused, so the path we match on is the path the upstream acts on.
 */
export interface RequestTarget {
  /** The path exactly as the client sent it (percent-encoding untouched). */
  rawPath: string;
  /** `?…` exactly as sent, or ''. */
  search: string;
  /** The raw segments of rawPath (`/a/b/` → ['a', 'b', '']). */
  rawSegments: string[];
  /** The same segments percent-decoded; used only for comparisons, never sent. */
  segments: string[];
}

export type TargetCheck = { ok: true; target: RequestTarget } | { ok: false; reason: string };

const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
/** What a second decoding would turn into a dot, a separator or NUL (double encoding). */
const DOUBLE_ENCODED = /%(2e|2f|5c|00)/i;

const bad = (reason: string): TargetCheck => ({ ok: false, reason });

/**
 * Check a request-target and split it into segments. Refused: anything but origin-form
 * (absolute-form, authority-form, `*`), backslashes, empty segments (`//`), invalid
 * percent-encoding, invalid UTF-8 once decoded (this covers overlong forms such as `%c0%ae`),
 * encoded `/` or `\`, control characters (NUL included) once decoded, `.` and `..` segments in any
 * encoding (also Tomcat's `..;`), and double-encoded dots and separators.
 */
export function checkRequestTarget(url: string | undefined): TargetCheck {
  if (!url?.startsWith('/')) return bad('request-target must start with /');
  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  const search = q === -1 ? '' : url.slice(q);
  if (rawPath.includes('\\')) return bad('backslash in path');
  if (rawPath.includes('#')) return bad('fragment in request-target');
  if (rawPath.includes('//')) return bad('empty path segment');
  const rawSegments = rawPath.slice(1).split('/');
  const segments: string[] = [];
  for (const raw of rawSegments) {
    if (BAD_PERCENT.test(raw)) return bad('invalid percent-encoding');
    let decoded: string;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      return bad('invalid UTF-8 in path');
    }
    if (decoded.includes('/') || decoded.includes('\\')) return bad('encoded path separator');
    if (CONTROL.test(decoded)) return bad('control character in path');
    const name = decoded.split(';', 1)[0];
    if (name === '.' || name === '..') return bad('dot segment in path');
    if (DOUBLE_ENCODED.test(decoded)) return bad('double-encoded character in path');
    segments.push(decoded);
  }
  return { ok: true, target: { rawPath, search, rawSegments, segments } };
}

/** The segments of a path written in the routes file (`/` → []). */
export function prefixSegments(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

/** Does the request's path sit at or under `prefix` (whole segments: `/app` ⊄ `/apps`)? */
export function underPrefix(segments: readonly string[], prefix: readonly string[]): boolean {
  if (segments.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (segments[i] !== prefix[i]) return false;
  return true;
}

/** The raw path with the first `count` segments removed, for stripPrefix (`/app/x` → `/x`). */
export function stripSegments(target: RequestTarget, count: number): string {
  return `/${target.rawSegments.slice(count).join('/')}`;
}
