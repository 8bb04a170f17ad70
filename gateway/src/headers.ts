import type { IncomingMessage } from 'node:http';
import { IDENTITY_HEADERS } from '../../common/src/identity.js';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1), plus Proxy-Authorization: credentials meant for a proxy
 * are not the upstream's business. Connection may list more; those go too.
 */
export const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
]);

/** Headers about the client's connection: kept only from a trusted proxy. */
const FORWARDED = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-real-ip',
  'forwarded',
]);
/** The three the gateway always sets itself. */
const SET_BY_GATEWAY = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
const IDENTITY = new Set<string>(IDENTITY_HEADERS);
/** Framing and hop headers Connection may not remove: the gateway manages them itself. */
const NOT_REMOVABLE = new Set(['host', 'content-length']);

export type TrustFn = (address: string, hop: number) => boolean;

export interface Forwarded {
  for: string;
  proto: string;
  host: string;
}

/**
 * What the upstream learns about the client: from the real connection, or from a trusted proxy's
 * X-Forwarded-* (TRUST_PROXY).
 */
export function forwardedFor(req: IncomingMessage, trusted: boolean): Forwarded {
  const peer = req.socket.remoteAddress ?? '';
  const own = {
    proto: (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
    host: req.headers.host ?? '',
  };
  if (!trusted) return { for: peer, ...own };
  const first = (value: string | string[] | undefined) =>
    (Array.isArray(value) ? value.join(',') : (value ?? '')).split(',')[0]?.trim() ?? '';
  const chain = req.headers['x-forwarded-for'];
  const chainText = Array.isArray(chain) ? chain.join(', ') : chain;
  return {
    for: chainText ? `${chainText}, ${peer}` : peer,
    proto: first(req.headers['x-forwarded-proto']) || own.proto,
    host: first(req.headers['x-forwarded-host']) || own.host,
  };
}

/** The session cookie under every name the session-service may give it. */
export function sessionCookieNames(cookieName: string): ReadonlySet<string> {
  const base = cookieName.replace(/^__(Host|Secure)-/, '');
  return new Set([cookieName, base, `__Host-${base}`, `__Secure-${base}`]);
}

/** A Cookie header without the session cookie; other pairs untouched; '' when none is left. */
export function withoutCookies(header: string, names: ReadonlySet<string>): string {
  const pairs = header.split(';');
  const kept = pairs.filter((pair) => {
    const eq = pair.indexOf('=');
    return !names.has((eq === -1 ? pair : pair.slice(0, eq)).trim());
  });
  if (kept.length === pairs.length) return header;
  return kept
    .map((p) => p.trim())
    .filter(Boolean)
    .join('; ');
}

/** Header names listed in Connection (they are hop-by-hop too). */
function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  const tokens = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() !== 'connection') continue;
    for (const token of (rawHeaders[i + 1] ?? '').split(',')) {
      const name = token.trim().toLowerCase();
      if (name && !NOT_REMOVABLE.has(name)) tokens.add(name);
    }
  }
  return tokens;
}

export interface UpstreamHeaderOptions {
  /** The Host header to send. */
  host: string;
  cookieNames: ReadonlySet<string>;
  trusted: boolean;
  forwarded: Forwarded;
  requestId: string;
  /** Identity headers to set (already safe values), none on public routes. */
  identity?: Record<string, string>;
  /** `websocket` to keep the upgrade (Connection: Upgrade + Upgrade). */
  upgrade?: string;
}

/**
 * The request headers for the upstream, as a raw [name, value, …] list: the client's own headers
 * in their order, casing and number (duplicates too), minus hop-by-hop headers, any client copy of
 * an identity header (any casing, any number, `_` for `-`: CGI-style servers read
 * `X_Auth_Request_User` as `X-Auth-Request-User`), untrusted forwarding headers, the session
 * cookie, Expect (the gateway already answered it) and framing, which the gateway sets itself.
 */
export function upstreamHeaders(req: IncomingMessage, options: UpstreamHeaderOptions): string[] {
  const raw = req.rawHeaders;
  const listed = connectionTokens(raw);
  const out: string[] = ['Host', options.host];
  let contentLength: string | undefined;
  let chunked = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const value = raw[i + 1] ?? '';
    const lower = name.toLowerCase();
    const canonical = lower.replaceAll('_', '-');
    if (lower === 'transfer-encoding') {
      chunked = true; // Node's parser only accepts a request whose final coding is chunked
      continue;
    }
    if (lower === 'content-length') {
      contentLength ??= value;
      continue;
    }
    if (HOP_BY_HOP.has(lower) || listed.has(lower)) continue;
    if (IDENTITY.has(canonical)) continue;
    if (FORWARDED.has(canonical)) {
      if (lower !== canonical || SET_BY_GATEWAY.has(lower) || !options.trusted) continue;
    }
    if (canonical === 'host' || canonical === 'x-request-id' || lower === 'expect') continue;
    if (lower === 'cookie') {
      const rest = withoutCookies(value, options.cookieNames);
      if (rest) out.push(name, rest);
      continue;
    }
    out.push(name, value);
  }
  if (contentLength !== undefined) out.push('Content-Length', contentLength);
  else if (chunked) out.push('Transfer-Encoding', 'chunked');
  else if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH')
    out.push('Content-Length', '0');
  out.push(
    'X-Forwarded-For',
    options.forwarded.for,
    'X-Forwarded-Proto',
    options.forwarded.proto,
    'X-Forwarded-Host',
    options.forwarded.host,
    'X-Request-Id',
    options.requestId,
  );
  for (const [name, value] of Object.entries(options.identity ?? {})) out.push(name, value);
  if (options.upgrade) out.push('Connection', 'Upgrade', 'Upgrade', options.upgrade);
  return out;
}

/** Does this request carry a body (so it must be streamed, not just ended)? */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * The upstream's response headers for the client, minus hop-by-hop ones (raw list), plus
 * X-Request-Id = `requestId` when given and the upstream sent none.
 */
export function downstreamHeaders(rawHeaders: readonly string[], requestId?: string): string[] {
  const listed = connectionTokens(rawHeaders);
  const out: string[] = [];
  let hasRequestId = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed.has(lower)) continue;
    if (lower === 'x-request-id') hasRequestId = true;
    out.push(name, rawHeaders[i + 1] ?? '');
  }
  if (requestId && !hasRequestId) out.push('X-Request-Id', requestId);
  return out;
}
