/**
 * LDAP names as text: a value escaped for a search filter (RFC 4515), a DN parsed into its RDNs
 * (RFC 4514) and compared case-insensitively, and the naming context a base sits in. Pure
 * functions; ldap-directory.ts talks to the server.
 */

/**
 * A value for an LDAP filter (RFC 4515 3): `*`, `(`, `)`, `\` and NUL as \2a \28 \29 \5c \00.
 * Other characters, UTF-8 included, stand for themselves.
 */
export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** One attribute type and value of an RDN, the value unescaped. */
export interface DnPart {
  type: string;
  value: string;
}

/**
 * A DN's RDNs (RFC 4514), each a list of type/value pairs (`cn=a+uid=b` is one RDN of two),
 * values unescaped (`\,`, `\2C`, `\c3\a9` as UTF-8). Null when it is not a DN (or uses the
 * `#hex` BER form, which names no text).
 */
export function parseDn(dn: string): DnPart[][] | null {
  const rdns: DnPart[][] = [];
  let rdn: DnPart[] = [];
  let i = 0;
  const n = dn.length;
  const skipSpaces = () => {
    while (i < n && dn[i] === ' ') i++;
  };
  skipSpaces();
  if (i === n) return [];
  for (;;) {
    skipSpaces();
    const typeMatch = /^([A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)\s*=/.exec(dn.slice(i));
    if (!typeMatch) return null;
    const type = typeMatch[1] as string;
    i += typeMatch[0].length;
    skipSpaces();
    if (dn[i] === '#') return null;
    const bytes: number[] = [];
    let trailingSpaces = 0;
    while (i < n) {
      const c = dn[i] as string;
      if (c === ',' || c === ';' || c === '+') break;
      if (c === '\\') {
        const hex = dn.slice(i + 1, i + 3);
        if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
          bytes.push(Number.parseInt(hex, 16));
          i += 3;
        } else if (i + 1 < n) {
          bytes.push(...Buffer.from(dn[i + 1] as string, 'utf8'));
          i += 2;
        } else return null;
        trailingSpaces = 0;
        continue;
      }
      const code = dn.codePointAt(i) as number;
      const char = String.fromCodePoint(code);
      bytes.push(...Buffer.from(char, 'utf8'));
      trailingSpaces = c === ' ' ? trailingSpaces + 1 : 0;
      i += char.length;
    }
    const value = Buffer.from(bytes.slice(0, bytes.length - trailingSpaces)).toString('utf8');
    if (value.includes('\uFFFD')) return null;
    rdn.push({ type, value });
    if (i >= n) {
      rdns.push(rdn);
      return rdns;
    }
    const separator = dn[i];
    i++;
    if (separator !== '+') {
      rdns.push(rdn);
      rdn = [];
    }
  }
}

/** A DN compared case-insensitively: types and values lower-cased, escapes and spaces undone. */
export function normalizeDn(dn: string): string | null {
  const rdns = parseDn(dn);
  if (!rdns) return null;
  return rdns
    .map((rdn) =>
      rdn
        .map((p) => `${p.type.toLowerCase()}=${escapeFilterValue(p.value.toLowerCase())}`)
        .sort()
        .join('+'),
    )
    .join(',');
}

/** The naming context a base sits in: its trailing dc= RDNs (`dc=corp,dc=example`). */
export function domainRoot(base: string): string {
  const rdns = parseDn(base) ?? [];
  let start = rdns.length;
  while (start > 0 && rdns[start - 1]?.every((p) => p.type.toLowerCase() === 'dc')) start--;
  if (start === rdns.length) return base;
  return rdns
    .slice(start)
    .map((rdn) => rdn.map((p) => `${p.type}=${p.value}`).join('+'))
    .join(',');
}
