const BASE = 'http://gatehouse.invalid';
/** One `/`, then anything but `/` or `\`: a path on this origin, never `//host` or `/\host`. */
const LOCAL_PATH = /^\/(?![/\\])/;
/** Backslashes, whitespace and control characters: browsers "fix" them in surprising ways. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to refuse them
const UNSAFE_CHARS = /[\\\s\u0000-\u001f\u007f-\u009f]/;
/**
 * What a request-target can hold: Node's HTTP parser refuses anything else (space, controls,
 * raw non-ASCII bytes), so every path the gateway proxies, and sends to the login as `rd`, is
 * printable ASCII. Anything else in a local `rd` was not made by the gateway.
 */
const REQUEST_TARGET_CHARS = /^[\x21-\x7e]+$/;
/** C0 controls and DEL, once decoded (the gateway's request-target check refuses them too). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to refuse them
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Overlong UTF-8 lead bytes: old decoders turned `%c0%af` into `/` and `%c0%ae` into `.`. */
const OVERLONG = /%(?:c0|c1|e0%[89a-f]|f0%8)/i;
const PERCENT_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
const UTF8 = new TextDecoder('utf-8');
/** More layers of percent-encoding than this is not a link anyone made. */
const MAX_DECODE_ROUNDS = 16;
/**
 * The gateway sends `rd=encodeURIComponent(path)`, which must fit Node's 16 KiB request head on
 * the way back to the login page (up to three characters per byte), and the login form's body.
 */
export const MAX_LOCAL_TARGET = 4096;
const MAX_ABSOLUTE_TARGET = 2048;
const MAX_ABSOLUTE_DECODE_ROUNDS = 4;

/**
 * A redirect target we will follow. A local path (`/x?y#z`) comes back exactly as given, byte for
 * byte, so every deep link the gateway sent to the login survives it (encoded spaces, `%25`,
 * UTF-8 percent-encodings, `;`, `@`, encoded `&`, `=`, `+`, `#` in the query). An absolute http(s)
 * URL is allowed only when its host is in `allowedHosts` (an entry starting with `.` also allows
 * subdomains). Anything else falls back to `/`.
 *
 * A local path is refused when it, or any percent-decoding of its path (one layer at a time, as a
 * backend or proxy behind us might), could leave the origin: `//host`, `/\host`, backslashes,
 * empty segments, encoded or multiply-encoded `/` and `\`, control characters, overlong UTF-8,
 * dot segments that resolve to `//host` (`/.//evil.com`, `/%2e%2e//evil.com`), and anything but
 * printable ASCII (the gateway never sends it). What cannot be decoded is not refused for that
 * alone: `/a%25bc` is the literal text `%bc`, and `/a%zz` a page the gateway answers 400 to. The query and fragment are never
 * decoded: nothing in them can change which origin the path is on.
 * OWASP Unvalidated Redirects and Forwards Cheat Sheet.
 */
export function safeRedirect(target: unknown, allowedHosts: readonly string[] = []): string {
  if (typeof target !== 'string' || target.length === 0) return '/';
  if (target.startsWith('/')) return localTarget(target) ?? '/';
  return absoluteTarget(target, allowedHosts) ?? '/';
}

function localTarget(target: string): string | undefined {
  if (target.length > MAX_LOCAL_TARGET || !REQUEST_TARGET_CHARS.test(target)) return undefined;
  const end = target.search(/[?#]/);
  if (!safePath(end === -1 ? target : target.slice(0, end))) return undefined;
  // The browser resolves the whole target against our origin: it must stay there.
  return staysLocal(target) ? target : undefined;
}

/** The path, and every decoding of it, is a path on this origin with no tricks in it. */
function safePath(path: string): boolean {
  let current = path;
  for (let round = 0; round <= MAX_DECODE_ROUNDS; round++) {
    if (
      !LOCAL_PATH.test(current) ||
      current.includes('\\') ||
      current.includes('//') ||
      CONTROL.test(current) ||
      OVERLONG.test(current) ||
      !staysLocal(current)
    )
      return false;
    const next = decodeOnce(current);
    if (next === current) return true;
    current = next;
  }
  return false;
}

/**
 * One layer of percent-decoding, as a lenient server does it: `%` without two hex digits stays as
 * it is, and bytes that are not UTF-8 become U+FFFD, which no later layer can turn into a
 * separator (overlong forms are refused before, by OVERLONG).
 */
function decodeOnce(value: string): string {
  return value.replace(PERCENT_RUN, (run) =>
    UTF8.decode(Uint8Array.from(run.slice(1).split('%'), (hex) => Number.parseInt(hex, 16))),
  );
}

/** Resolved on our origin (dot segments applied), the path still starts with one `/`. */
function staysLocal(value: string): boolean {
  const url = parse(value, BASE);
  return url?.origin === BASE && LOCAL_PATH.test(url.pathname);
}

function absoluteTarget(target: string, allowedHosts: readonly string[]): string | undefined {
  if (target.length > MAX_ABSOLUTE_TARGET || UNSAFE_CHARS.test(target)) return undefined;
  const decoded = fullyDecode(target);
  if (decoded === undefined || UNSAFE_CHARS.test(decoded)) return undefined;
  // Require `scheme://host` spelled out: `https:evil.com` and `https:///evil.com` parse leniently.
  if (!/^https?:\/\/[^/?#@]+/i.test(target)) return undefined;
  const url = parse(target);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) return undefined;
  if (url.username || url.password) return undefined;
  const host = url.hostname;
  const allowed = allowedHosts.some((entry) => {
    const rule = entry.toLowerCase();
    return rule.startsWith('.') ? host.endsWith(rule) || host === rule.slice(1) : host === rule;
  });
  return allowed ? url.href : undefined;
}

/** Percent-decode until stable; undefined if malformed or still encoded after a few rounds. */
function fullyDecode(value: string): string | undefined {
  let current = value;
  for (let round = 0; round < MAX_ABSOLUTE_DECODE_ROUNDS; round++) {
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
