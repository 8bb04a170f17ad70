import type { IncomingMessage } from 'node:http';
import { GATEHOUSE_BEARER } from '../../common/src/access-token.js';
import { IDENTITY_HEADERS } from '../../common/src/identity.js';
import { type CookiePolicy, withoutOwnCookies } from './cookies.js';
import { type ParsedHost, parseHost } from './host.js';

/**
 * What crosses from the client to an upstream: the request-header policy, as data.
 *
 * | class                         | from the client                    | the upstream receives           |
 * | ----------------------------- | ---------------------------------- | ------------------------------- |
 * | hop-by-hop (+ Connection list)| removed                            | the gateway's own framing       |
 * | identity (X-Auth-Request-* …) | removed                            | the gateway's, after allow      |
 * | authentication (-Amr, -Acr, -Auth-Time) | removed                  | the gateway's, with the identity |
 * | forwarding (X-Forwarded-*, Forwarded, X-Real-IP, client-IP names) | removed | X-Forwarded-For/Proto/Host and X-Real-IP set by the gateway (from a trusted proxy's values) |
 * | URL and method overrides      | removed                            | nothing: the path and method the gateway authorised |
 * | the gateway's own (Host, X-Request-Id, X-Gatehouse-*) | removed   | the gateway's                   |
 * | Cookie                        | Gatehouse's cookies removed        | the app's own cookies           |
 * | Authorization: Bearer gatehouse_… | removed (an access token is Gatehouse's) | any other Authorization, as sent |
 * | anything else                 | kept, in order, casing and number  |                                 |
 *
 * Names are compared lowercase with `_` read as `-` (CGI-style servers, PHP among them, read
 * `X_Forwarded_Host` as `X-Forwarded-Host`). The gateway's own headers come first, so an upstream
 * that keeps only its first N headers still sees them.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
]);

/** Who the user is and how they signed in (IDENTITY_HEADERS has both): only the gateway says. */
export const IDENTITY: ReadonlySet<string> = new Set<string>(IDENTITY_HEADERS);

/** Every name starting with one of these is removed (the whole family, present and future). */
export const REMOVED_PREFIXES = ['x-forwarded-', 'x-gatehouse-'] as const;

/** Client-address headers that frameworks read as "the client's IP". */
export const FORWARDING: ReadonlySet<string> = new Set([
  'forwarded',
  'x-real-ip',
  'x-client-ip',
  'client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-cluster-client-ip',
  'x-originating-ip',
  'x-remote-ip',
  'x-remote-addr',
  'x-host',
  'x-original-host',
]);

/** Headers that make a framework act on another path, URL or method than the request line's. */
export const OVERRIDES: ReadonlySet<string> = new Set([
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'x-override-url',
  'x-envoy-original-path',
  'x-proxy-url',
  'x-http-destinationurl',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-method',
]);

/** Set by the gateway alone. */
const OWN: ReadonlySet<string> = new Set(['host', 'x-request-id']);
/** Framing the gateway sets itself; Expect was already answered by the gateway's server. */
const FRAMING: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding', 'expect']);
/** Framing headers Connection may not remove: the gateway manages them itself. */
const NOT_REMOVABLE: ReadonlySet<string> = new Set(['host', 'content-length']);

/** Lowercase, `_` read as `-`. */
export const canonicalName = (name: string): string => name.toLowerCase().replaceAll('_', '-');

/** Is this client header removed whatever its value (the policy above)? */
export function isRemovedRequestHeader(name: string): boolean {
  const canonical = canonicalName(name);
  if (IDENTITY.has(canonical) || FORWARDING.has(canonical) || OVERRIDES.has(canonical)) return true;
  if (OWN.has(canonical)) return true;
  for (const prefix of REMOVED_PREFIXES) if (canonical.startsWith(prefix)) return true;
  return false;
}

/** Header names listed in Connection (they are hop-by-hop too). */
export function connectionTokens(rawHeaders: readonly string[]): Set<string> {
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

/** What the upstream learns about the client (X-Forwarded-For, -Proto, -Host, X-Real-IP). */
export interface Forwarded {
  for: string;
  /** The client's address: the peer, or the first untrusted hop of a trusted chain (X-Real-IP). */
  clientIp: string;
  proto: 'http' | 'https';
  /** `name[:port]` as parsed (host.ts), or '' without a Host. */
  host: string;
}

const lastValue = (value: string | string[] | undefined): string | undefined => {
  const text = Array.isArray(value) ? value.join(',') : value;
  if (text === undefined) return undefined;
  const parts = text.split(',');
  return parts[parts.length - 1]?.trim();
};

/**
 * From the real connection, or, when the peer is a trusted proxy (TRUST_PROXY), from its
 * X-Forwarded-For chain and X-Forwarded-Proto/Host; a forwarded value that does not parse (a
 * scheme other than http/https, a Host that host.ts refuses) is ignored for the connection's own.
 * The values a trusted proxy appended itself are the last ones of each list.
 */
export function forwardedFor(
  req: IncomingMessage,
  host: ParsedHost | undefined,
  trusted: boolean,
  clientIp: (req: IncomingMessage, trusted: boolean) => string,
): Forwarded {
  const peer = req.socket.remoteAddress ?? '';
  const own: Forwarded = {
    for: peer,
    clientIp: peer,
    proto: (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
    host: host?.value ?? '',
  };
  if (!trusted) return own;
  const chain = req.headers['x-forwarded-for'];
  const chainText = Array.isArray(chain) ? chain.join(', ') : chain;
  const proto = lastValue(req.headers['x-forwarded-proto'])?.toLowerCase();
  const forwardedHost = lastValue(req.headers['x-forwarded-host']);
  const parsed = forwardedHost ? parseHost(['host', forwardedHost]) : undefined;
  return {
    for: chainText ? `${chainText}, ${peer}` : peer,
    clientIp: clientIp(req, trusted),
    proto: proto === 'https' || proto === 'http' ? proto : own.proto,
    host: parsed?.ok && parsed.host ? parsed.host.value : own.host,
  };
}

export interface UpstreamHeaderOptions {
  /** The Host header to send. */
  host: string;
  cookies: CookiePolicy | null;
  forwarded: Forwarded;
  requestId: string;
  /** Identity headers to set (already safe values), none on public routes. */
  identity?: Readonly<Record<string, string>>;
  /** `websocket` to keep the upgrade (Connection: Upgrade + Upgrade). */
  upgrade?: string;
  /** The body was read whole: send this Content-Length, never the client's framing. */
  bodyLength?: number;
  /**
   * Keep an `Authorization: Bearer gatehouse_…` (the session-service's /auth/, whose validate
   * reads it). Anywhere else our access token never leaves the gateway.
   */
  keepAccessToken?: boolean;
}

/**
 * The request headers for the upstream, as a raw [name, value, …] list: the gateway's own first,
 * then the client's in their order, casing and number, less everything the policy removes.
 */
export function upstreamHeaders(req: IncomingMessage, options: UpstreamHeaderOptions): string[] {
  const raw = req.rawHeaders;
  const listed = connectionTokens(raw);
  const out: string[] = [
    'Host',
    options.host,
    'X-Forwarded-For',
    options.forwarded.for,
    'X-Forwarded-Proto',
    options.forwarded.proto,
    'X-Forwarded-Host',
    options.forwarded.host,
    'X-Real-IP',
    options.forwarded.clientIp,
    'X-Request-Id',
    options.requestId,
  ];
  if (options.identity)
    for (const name in options.identity) out.push(name, options.identity[name] as string);
  let contentLength: string | undefined;
  let chunked = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const value = raw[i + 1] ?? '';
    const lower = name.toLowerCase();
    if (FRAMING.has(lower)) {
      // Node's parser only accepts a request whose final coding is chunked
      if (lower === 'transfer-encoding') chunked = true;
      else if (lower === 'content-length') contentLength ??= value;
      continue;
    }
    if (HOP_BY_HOP.has(lower) || listed.has(lower) || isRemovedRequestHeader(lower)) continue;
    if (lower === 'authorization' && !options.keepAccessToken && GATEHOUSE_BEARER.test(value))
      continue;
    if (lower === 'cookie' && options.cookies) {
      const rest = withoutOwnCookies(value, options.cookies);
      if (rest) out.push(name, rest);
      continue;
    }
    out.push(name, value);
  }
  if (options.bodyLength !== undefined) out.push('Content-Length', String(options.bodyLength));
  else if (contentLength !== undefined) out.push('Content-Length', contentLength);
  else if (chunked) out.push('Transfer-Encoding', 'chunked');
  else if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH')
    out.push('Content-Length', '0');
  if (options.upgrade) out.push('Connection', 'Upgrade', 'Upgrade', options.upgrade);
  return out;
}

/** Does this request carry a body (so it must be streamed, not just ended)? */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
