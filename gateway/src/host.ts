import { isIPv4, isIPv6 } from 'node:net';

/**
 * The Host header, parsed once: the route decision, the Host a preserveHost upstream receives and
 * X-Forwarded-Host all use this one value, so no upstream can read a name the gateway did not
 * route on (a bad port or a second colon used to skip host-matched routes while the upstream
 * still read the name).
 */
export interface ParsedHost {
  /** Lowercase, no trailing dot; IPv6 in brackets as written (`[::1]`). */
  name: string;
  /** As sent (digits only), or undefined. */
  port?: string;
  /**
   * `name[:port]` as the browser wrote it, lowercase, a trailing dot kept (its `Origin` keeps it
   * too): what the gateway passes on as X-Forwarded-Host and compares Origin with.
   */
  value: string;
}

export type HostCheck = { ok: true; host: ParsedHost | undefined } | { ok: false; reason: string };

/** A DNS name (LDH labels, `_` allowed as in real service names), 1 to 253 characters. */
const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
const PORT = /^[0-9]{1,5}$/;

function nameProblem(name: string): string | null {
  if (name.length === 0 || name.length > 253) return 'empty or over-long host name';
  if (name.startsWith('[')) {
    if (!name.endsWith(']')) return 'unterminated IPv6 literal';
    return isIPv6(name.slice(1, -1)) ? null : 'invalid IPv6 literal';
  }
  if (isIPv4(name)) return null;
  const labels = name.split('.');
  for (const label of labels) if (!LABEL.test(label)) return 'invalid host name';
  // A name whose last label is a number (256.1.1.1, 1.2.3, 0x7f.1) that is not a valid dotted
  // IPv4 address: WHATWG URL parsers read it as an address (0x7f.1 is 127.0.0.1).
  if (/^(0x[0-9a-f]*|[0-9]+)$/i.test(labels[labels.length - 1] ?? ''))
    return 'numeric host that is not an IPv4 address';
  return null;
}

/**
 * `name[:port]` or `[v6]:port` (RFC 9110 §7.2, RFC 3986 §3.2.2), as one header line. No Host at
 * all (HTTP/1.0) is allowed and means "no host": only routes without a host match.
 */
export function parseHost(rawHeaders: readonly string[]): HostCheck {
  let value: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() !== 'host') continue;
    if (value !== undefined) return { ok: false, reason: 'more than one Host header' };
    value = rawHeaders[i + 1] ?? '';
  }
  if (value === undefined) return { ok: true, host: undefined };
  const match = /^(\[[^\]]*\]|[^:[\]]*)(?::([^:]*))?$/.exec(value);
  if (!match) return { ok: false, reason: 'malformed Host' };
  const rawName = (match[1] ?? '').toLowerCase();
  const port = match[2];
  if (port !== undefined && (!PORT.test(port) || Number(port) > 65535 || Number(port) === 0))
    return { ok: false, reason: 'invalid port in Host' };
  const name = rawName.endsWith('.') ? rawName.slice(0, -1) : rawName;
  const problem = nameProblem(name);
  if (problem) return { ok: false, reason: problem };
  return {
    ok: true,
    host: {
      name,
      ...(port !== undefined ? { port } : {}),
      value: port ? `${rawName}:${port}` : rawName,
    },
  };
}
