/**
 * The gateway's trust-boundary policies on their own, over tables of spellings: what the upstream
 * receives (request-headers.ts), what the browser receives (response-headers.ts), which Host is
 * routed on (host.ts), which page may open a WebSocket (origin.ts), and the header limits.
 * End-to-end counterparts: test/integration/gateway-boundaries.test.ts.
 *
 * Over 300 lines: one table of spellings per trust boundary; kept together so the tables read as
 * the policy.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { AUTHENTICATION_HEADERS } from '../../common/src/authentication.js';
import { checkHeaderLimits, MAX_COOKIE_BYTES, MAX_HEADER_FIELDS } from '../../common/src/limits.js';
import { createCookiePolicy, setCookieName } from '../../gateway/src/cookies.js';
import { parseHost } from '../../gateway/src/host.js';
import { checkUpgradeOrigin } from '../../gateway/src/origin.js';
import {
  FORWARDING,
  forwardedFor,
  IDENTITY,
  OVERRIDES,
  upstreamHeaders,
} from '../../gateway/src/request-headers.js';
import { downstreamHeaders } from '../../gateway/src/response-headers.js';
import { spellings } from '../helpers/spellings.js';

function fakeRequest(rawHeaders: string[], options: { method?: string; peer?: string } = {}) {
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase();
    headers[name] = headers[name]
      ? `${headers[name]}, ${rawHeaders[i + 1]}`
      : (rawHeaders[i + 1] ?? '');
  }
  return {
    rawHeaders,
    headers,
    method: options.method ?? 'GET',
    socket: { remoteAddress: options.peer ?? '192.0.2.10' },
  } as unknown as IncomingMessage;
}

const cookies = createCookiePolicy('gatehouse');
const identity = { 'x-auth-request-user': 'alice', 'x-auth-request-jwt': 'a.b.c' };

function forUpstream(rawHeaders: string[], trusted: boolean) {
  const req = fakeRequest(rawHeaders);
  const host = parseHost(rawHeaders);
  if (!host.ok) throw new Error(host.reason);
  const forwarded = forwardedFor(req, host.host, trusted, () => '198.51.100.7');
  return upstreamHeaders(req, {
    host: 'upstream:3000',
    cookies,
    forwarded,
    requestId: 'rid-1',
    identity,
  });
}

const valuesOf = (raw: string[], name: string) =>
  raw.filter((_v, i) => i % 2 === 0 && raw[i]?.toLowerCase() === name).map((_v, i) => i);

function headerValues(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]?.toLowerCase() === name) out.push(raw[i + 1] ?? '');
  return out;
}

describe('what the upstream receives (client → upstream)', () => {
  const removed = [
    ...FORWARDING,
    ...OVERRIDES,
    ...IDENTITY,
    // how the session signed in (issue 14): only the gateway says it
    ...AUTHENTICATION_HEADERS,
    'x-forwarded-for',
    'x-forwarded-proto',
    'x-forwarded-host',
    'x-forwarded-port',
    'x-forwarded-prefix',
    'x-forwarded-server',
    'x-forwarded-path',
    'x-forwarded-uri',
    'x-forwarded-method',
    'x-forwarded-ssl',
    'x-forwarded-scheme',
    'x-forwarded-anything-new',
    'x-gatehouse-internal',
    'x-request-id',
  ];
  for (const trusted of [false, true]) {
    it(`removes every spelling of ${removed.length} forwarding, override, identity and own names (peer ${trusted ? 'trusted' : 'untrusted'})`, () => {
      // From a trusted proxy, the three the gateway sets take that proxy's values (tested below).
      const reused = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
      for (const name of removed) {
        for (const spelling of spellings(name)) {
          if (trusted && reused.has(spelling.toLowerCase())) continue;
          const out = forUpstream(
            ['Host', 'app.example', spelling, 'evil', spelling, 'evil2'],
            trusted,
          );
          expect(
            out.filter((v) => v === 'evil' || v === 'evil2'),
            `${spelling} passed`,
          ).toEqual([]);
        }
      }
    });
  }

  it('sets X-Forwarded-For/Proto/Host and X-Real-IP itself, first, once each', () => {
    const out = forUpstream(
      ['Host', 'app.example:8080', 'X-Forwarded-Host', 'evil.example'],
      false,
    );
    expect(out.slice(0, 12)).toEqual([
      'Host',
      'upstream:3000',
      'X-Forwarded-For',
      '192.0.2.10',
      'X-Forwarded-Proto',
      'http',
      'X-Forwarded-Host',
      'app.example:8080',
      'X-Real-IP',
      '192.0.2.10',
      'X-Request-Id',
      'rid-1',
    ]);
    for (const name of [
      'x-forwarded-for',
      'x-forwarded-proto',
      'x-forwarded-host',
      'x-real-ip',
      'host',
    ])
      expect(headerValues(out, name)).toHaveLength(1);
  });

  it("takes a trusted proxy's values only when they parse (proto http/https, a valid host)", () => {
    const good = forUpstream(
      ['Host', 'gw', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'App.Example:443'],
      true,
    );
    expect(headerValues(good, 'x-forwarded-proto')).toEqual(['https']);
    expect(headerValues(good, 'x-forwarded-host')).toEqual(['app.example:443']);
    expect(headerValues(good, 'x-real-ip')).toEqual(['198.51.100.7']);
    for (const [proto, host] of [
      ['javascript', 'a b'],
      ['https:', 'evil.example:99999'],
      ['ftp', 'evil.example:80:80'],
      ['', '[::1'],
    ]) {
      const out = forUpstream(
        ['Host', 'gw', 'X-Forwarded-Proto', proto as string, 'X-Forwarded-Host', host as string],
        true,
      );
      expect(headerValues(out, 'x-forwarded-proto')).toEqual(['http']);
      expect(headerValues(out, 'x-forwarded-host')).toEqual(['gw']);
    }
  });

  it('puts the identity it was given, never the client’s', () => {
    const out = forUpstream(['Host', 'a', 'X-Auth-Request-User', 'root'], false);
    expect(headerValues(out, 'x-auth-request-user')).toEqual(['alice']);
    expect(headerValues(out, 'x-auth-request-jwt')).toEqual(['a.b.c']);
  });

  it('puts how the session signed in as it was given, never the client’s', () => {
    const req = fakeRequest([
      'Host',
      'a',
      'X-Auth-Request-Acr',
      'aal2',
      'x_auth_request_amr',
      'hwk,mfa,pwd',
      'X-AUTH-REQUEST-AUTH-TIME',
      '9999999999',
    ]);
    const out = upstreamHeaders(req, {
      host: 'upstream:3000',
      cookies,
      forwarded: forwardedFor(req, undefined, false, () => ''),
      requestId: 'rid-1',
      identity: {
        ...identity,
        'x-auth-request-amr': 'pwd',
        'x-auth-request-acr': 'aal1',
        'x-auth-request-auth-time': '1772366100',
      },
    });
    expect(headerValues(out, 'x-auth-request-amr')).toEqual(['pwd']);
    expect(headerValues(out, 'x-auth-request-acr')).toEqual(['aal1']);
    expect(headerValues(out, 'x-auth-request-auth-time')).toEqual(['1772366100']);
    expect(out).not.toContain('x_auth_request_amr');
  });

  const own = [
    'gatehouse',
    'GATEHOUSE',
    'GateHouse',
    '__Host-gatehouse',
    '__HOST-gatehouse',
    '__host-GATEHOUSE',
    '__Secure-gatehouse',
    '__SECURE-gatehouse',
    ' gatehouse',
    'gatehouse-csrf',
    '__Host-gatehouse-csrf',
    '__Secure-gatehouse-csrf',
    'gatehouse-login',
    '__Secure-gatehouse-login',
    '__secure-GATEHOUSE-LOGIN',
  ];
  it(`removes Gatehouse's cookies under ${own.length} spellings, in any position, keeping the app's`, () => {
    for (const name of own) {
      for (const header of [
        `${name}=s%3Aabc`,
        `${name}=s%3Aabc; theme=dark`,
        `theme=dark; ${name}=s%3Aabc`,
        `theme=dark;${name}=s%3Aabc;lang=en`,
        `${name}=1; ${name}=2; theme=dark`,
      ]) {
        const out = forUpstream(['Host', 'a', 'Cookie', header], false);
        const sent = headerValues(out, 'cookie').join(';');
        expect(sent.toLowerCase(), `${header}`).not.toContain('gatehouse');
        expect(sent.includes('s%3Aabc'), header).toBe(false);
        if (header.includes('theme')) expect(sent).toContain('theme=dark');
      }
    }
    expect(
      headerValues(
        forUpstream(['Host', 'a', 'Cookie', 'gatehousex=1; my-gatehouse=2'], false),
        'cookie',
      ),
    ).toEqual(['gatehousex=1; my-gatehouse=2']);
  });

  it('keeps other headers in order, casing and number', () => {
    const out = forUpstream(['Host', 'a', 'X-Trace', '1', 'accept', 'a/b', 'X-TRACE', '2'], false);
    const rest = out.slice(16);
    expect(rest).toEqual(['X-Trace', '1', 'accept', 'a/b', 'X-TRACE', '2']);
    expect(valuesOf(out, 'x-trace')).toHaveLength(2);
  });
});

describe('what the browser receives (upstream → browser)', () => {
  const sessionSpellings = [
    'gatehouse',
    'GATEHOUSE',
    '__Host-gatehouse',
    '__HOST-gatehouse',
    '__Secure-gatehouse',
    '__secure-Gatehouse',
    '  gatehouse',
    'gatehouse-csrf',
    '__Host-gatehouse-csrf',
    'gatehouse-login',
    '__Secure-gatehouse-login',
  ];
  const attributes = [
    '',
    '; Path=/',
    '; Path=/app; HttpOnly',
    '; Domain=example.com; Secure',
    '; Max-Age=0',
    '; Expires=Thu, 01 Jan 1970 00:00:00 GMT; SameSite=None; Secure',
  ];
  it(`drops a backend's Set-Cookie of a Gatehouse cookie: ${sessionSpellings.length} names × ${attributes.length} attribute sets, and the bare form`, () => {
    for (const name of sessionSpellings)
      for (const attrs of attributes) {
        const out = downstreamHeaders(
          ['Set-Cookie', `${name}=s%3Aattacker.sig${attrs}`, 'set-cookie', `app=1${attrs}`],
          { cookies },
        );
        expect(headerValues(out, 'set-cookie'), `${name}${attrs}`).toEqual([`app=1${attrs}`]);
      }
    // Without '=': browsers store a nameless cookie and send `Cookie: gatehouse` back.
    expect(
      headerValues(
        downstreamHeaders(['Set-Cookie', 'gatehouse; Path=/'], { cookies }),
        'set-cookie',
      ),
    ).toEqual([]);
    expect(setCookieName('  __Host-gatehouse =x; Path=/')).toBe('__Host-gatehouse');
  });

  it('keeps the session-service’s own Set-Cookie (no cookie policy for /auth/)', () => {
    const out = downstreamHeaders(['Set-Cookie', 'gatehouse=s%3Aok; Path=/; HttpOnly'], {});
    expect(headerValues(out, 'set-cookie')).toEqual(['gatehouse=s%3Aok; Path=/; HttpOnly']);
  });

  it('drops Clear-Site-Data from backends and never passes a signed assertion to the browser', () => {
    for (const name of spellings('x-auth-request-jwt').filter((n) => !n.includes('_'))) {
      const out = downstreamHeaders([name, 'a.b.c', 'Clear-Site-Data', '"cookies"', 'X-App', '1'], {
        cookies,
        dropClearSiteData: true,
      });
      expect(out).toEqual(['X-App', '1']);
    }
  });

  it('adds no-store to protected HTML without a cache policy, private to other answers; never overrides', () => {
    const policy = (raw: string[], add = true) =>
      headerValues(downstreamHeaders(raw, { addCachePolicy: add }), 'cache-control');
    expect(policy(['Content-Type', 'text/html; charset=utf-8'])).toEqual(['no-store']);
    expect(policy(['Content-Type', 'TEXT/HTML'])).toEqual(['no-store']);
    expect(policy(['Content-Type', 'application/xhtml+xml'])).toEqual(['no-store']);
    expect(policy([])).toEqual(['no-store']); // no type: browsers sniff, may render HTML
    expect(policy(['Content-Type', 'application/json'])).toEqual(['private']);
    expect(policy(['Content-Type', 'text/html', 'Cache-Control', 'max-age=60'])).toEqual([
      'max-age=60',
    ]);
    expect(policy(['Content-Type', 'text/html'], false)).toEqual([]);
  });
});

describe('the Host header (one parse for routing and for upstreams)', () => {
  const valid: Array<[string, string]> = [
    ['app.example.com', 'app.example.com'],
    ['App.Example.COM', 'app.example.com'],
    ['app.example.com.', 'app.example.com.'],
    ['app.example.com:8443', 'app.example.com:8443'],
    ['localhost', 'localhost'],
    ['127.0.0.1:8080', '127.0.0.1:8080'],
    ['[::1]:8080', '[::1]:8080'],
    ['[2001:db8::1]', '[2001:db8::1]'],
    ['my_service.internal', 'my_service.internal'],
  ];
  it.each(valid)('accepts %s as %s', (raw, value) => {
    const parsed = parseHost(['Host', raw]);
    expect(parsed.ok && parsed.host?.value).toBe(value);
  });

  const invalid = [
    'app.example.com:80:80',
    'app.example.com:',
    'app.example.com:abc',
    'app.example.com:99999',
    'app.example.com:0',
    'app.example.com:+80',
    'app.example.com: 80',
    'app.example.com:8080@evil.example',
    'evil.example@app.example.com',
    'app.example.com/evil',
    'app.example.com\\evil',
    'app example.com',
    '',
    ':8080',
    '[::1',
    '[::1]x',
    '[not-v6]:80',
    '::1',
    'a..b',
    '-app.example.com',
    'app-.example.com',
    '256.1.1.1',
    '0x7f.1',
    '1.2.3',
    'app.example.com%00',
    'xn--ls8h.example\u0000',
    'app.ëxample.com',
    `${'a'.repeat(64)}.example.com`,
  ];
  it.each(invalid)('refuses %j', (raw) => {
    expect(parseHost(['Host', raw]).ok).toBe(false);
  });

  it('refuses two Host headers, in any casing', () => {
    expect(parseHost(['Host', 'a.example', 'HOST', 'b.example']).ok).toBe(false);
    expect(parseHost(['Host', 'a.example', 'host', 'a.example']).ok).toBe(false);
  });

  it('routes on the name without its trailing dot, and passes on what the browser wrote (its Origin keeps the dot)', () => {
    const parsed = parseHost(['Host', 'Intranet-Host.:8080']);
    expect(parsed.ok && parsed.host).toEqual({
      name: 'intranet-host',
      port: '8080',
      value: 'intranet-host.:8080',
    });
  });

  it('takes no Host (HTTP/1.0) as no host', () => {
    expect(parseHost(['Accept', '*/*'])).toEqual({ ok: true, host: undefined });
  });
});

describe('who may open a WebSocket (cross-site WebSocket hijacking)', () => {
  const own = 'https://app.example.com';
  const allowed = new Set(['https://partner.example.net']);
  const check = (origin: string | undefined, secFetchSite?: string, ownOrigin = own) =>
    checkUpgradeOrigin({ origin, secFetchSite, ownOrigin, allowed }).ok;

  it.each([
    ['https://app.example.com', undefined],
    ['https://app.example.com', 'same-origin'],
    ['https://APP.example.com', 'same-origin'],
    ['https://app.example.com:443', undefined],
    ['https://partner.example.net', 'cross-site'],
    [undefined, undefined], // not a browser
    [undefined, 'same-origin'],
  ])('allows Origin %s with Sec-Fetch-Site %s', (origin, site) => {
    expect(check(origin, site)).toBe(true);
  });

  it.each([
    ['https://evil.example.com', undefined], // sibling subdomain
    ['https://evil.example.com', 'same-site'],
    ['https://app.example.com:8443', undefined], // another port
    ['http://app.example.com', undefined], // another scheme
    ['https://app.example.com.evil.net', undefined],
    ['https://evil.net', 'cross-site'],
    ['null', undefined],
    ['null', 'cross-site'],
    ['', undefined],
    ['app.example.com', undefined],
    ['https://app.example.com/path', undefined],
    ['https://user@app.example.com', undefined],
    ['file://', undefined],
    ['chrome-extension://abc', undefined],
    ['https://app.example.com', 'same-site'], // contradicts itself
    ['https://app.example.com', 'cross-site'],
    [undefined, 'cross-site'],
    [undefined, 'same-site'],
    ['https://partner.example.net.evil.org', 'cross-site'],
  ])('refuses Origin %j with Sec-Fetch-Site %s', (origin, site) => {
    expect(check(origin, site)).toBe(false);
  });

  it('compares with the request’s own origin: plain http on a LAN name, another port', () => {
    expect(check('http://intranet:8080', undefined, 'http://intranet:8080')).toBe(true);
    expect(check('http://intranet:8081', undefined, 'http://intranet:8080')).toBe(false);
    expect(check('http://intranet', undefined, 'http://intranet:80')).toBe(true);
  });
});

describe('header limits (431, never a silent truncation or a login loop)', () => {
  it(`refuses more than ${MAX_HEADER_FIELDS} header fields`, () => {
    const at = Array.from({ length: MAX_HEADER_FIELDS }, (_v, i) => [`X-H${i}`, 'v']).flat();
    expect(checkHeaderLimits(at).ok).toBe(true);
    expect(checkHeaderLimits([...at, 'X-One-More', 'v'])).toMatchObject({
      ok: false,
      code: 'TOO_MANY_HEADERS',
    });
  });

  it(`refuses Cookie headers over ${MAX_COOKIE_BYTES} bytes together, split or not`, () => {
    const half = 'a='.padEnd(MAX_COOKIE_BYTES / 2, 'x');
    expect(checkHeaderLimits(['Cookie', half, 'cookie', half]).ok).toBe(true);
    expect(checkHeaderLimits(['Cookie', half, 'cookie', `${half}y`])).toMatchObject({
      code: 'COOKIES_TOO_LARGE',
    });
    expect(checkHeaderLimits(['COOKIE', 'a='.padEnd(MAX_COOKIE_BYTES + 1, 'x')]).ok).toBe(false);
  });
});
