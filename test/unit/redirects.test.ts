/**
 * safeRedirect: the open-redirect corpus, explicit cases, the gateway's deep links, and local
 * paths another decoding would turn into an attack. Over 300 lines: one table of spellings per
 * kind of attack; kept together so the tables read as the redirect policy.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkRequestTarget } from '../../gateway/src/request-target.js';
import { MAX_LOCAL_TARGET, safeRedirect } from '../../session-service/src/domain/redirects.js';

const ORIGIN = 'https://gatehouse.example';
const ALLOWED = 'app.example.org';
/** Attacker hosts used by the corpus (see its header) and by the extra payloads below. */
const ATTACKER_HOSTS = [
  'google.com',
  'www.google.com',
  'example.com',
  'evil.com',
  '216.58.214.206',
];

/** PayloadsAllTheThings open-redirect lists; `www.whitelisteddomain.tld` is their "allowed host". */
const corpus = readFileSync(
  new URL('../fixtures/open-redirect-payloads.txt', import.meta.url),
  'utf8',
)
  .split('\n')
  .filter((line) => line !== '' && !line.startsWith('#'))
  .map((line) => line.replaceAll('www.whitelisteddomain.tld', ALLOWED));

/** Cases from the threat model that the public lists do not spell out. */
const extra = [
  '//evil.com',
  '///evil.com',
  '/\\evil.com',
  '\\/evil.com',
  '/%2F%2Fevil.com',
  '/%5Cevil.com',
  '/%5cevil.com',
  '/%252F%252Fevil.com',
  '/%25252F%25252Fevil.com',
  '/%2525252525252F%2525252525252Fevil.com',
  '/.//evil.com',
  '/..//evil.com',
  '/a/..//evil.com',
  '/%2e//evil.com',
  '/%2E%2E//evil.com',
  '/.%2F/evil.com',
  '/%2e%2f/evil.com',
  '/\t/evil.com',
  '/\n/evil.com',
  '/\r\n//evil.com',
  '/\u0000//evil.com',
  '/\u2028//evil.com',
  '/\u3000/evil.com',
  '/%0a/evil.com',
  '/%E2%80%A8//evil.com',
  `https://${ALLOWED}@evil.com`,
  `https://${ALLOWED}:443@evil.com`,
  `https://${ALLOWED}%2F@evil.com`,
  `https://${ALLOWED}%40evil.com`,
  `https://evil.com\\@${ALLOWED}`,
  `https://evil.com#@${ALLOWED}`,
  `https://evil.com?@${ALLOWED}`,
  `https://${ALLOWED}.evil.com/`,
  `https://${ALLOWED}。evil.com/`,
  `https://${ALLOWED}%E3%80%82evil.com/`,
  `https://evil${ALLOWED}/`,
  `https:${ALLOWED}@evil.com`,
  'https:/evil.com',
  'https:\\\\evil.com',
  ' https://evil.com',
  'JaVaScRiPt:alert(1)',
  ' javascript:alert(1)',
  'java\tscript:alert(1)',
  'java\u0000script:alert(1)',
  'javascript&colon;alert(1)',
  'jav&#x09;ascript:alert(1)',
  '&#106;avascript:alert(1)',
  'javascript%3Aalert(1)',
  'data:text/html,<script>alert(1)</script>',
  'DATA:text/html;base64,PHNjcmlwdD4=',
  'vbscript:msgbox(1)',
  'VbScRiPt:msgbox(1)',
  '／／evil.com',
  '/／evil.com',
  '／/evil.com',
  '//evil。com',
  'https://evil。com',
  '//evil%E3%80%82com',
  `ftp://${ALLOWED}/`,
  'file:///etc/passwd',
];

/** Every payload, plus a leading-`/` variant of those that do not already start with one. */
const payloads = [
  ...new Set([...corpus, ...extra].flatMap((p) => (p.startsWith('/') ? [p] : [p, `/${p}`]))),
];

/** Local results: `/` then neither `/` nor `\`, and resolving on our own origin. */
function isContainedLocal(result: string): boolean {
  return /^\/(?![/\\])/.test(result) && new URL(result, ORIGIN).origin === ORIGIN;
}

describe('safeRedirect against the open-redirect corpus', () => {
  it('has a corpus of several hundred public payloads', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(300);
    expect(payloads.length).toBeGreaterThan(500);
  });

  it('keeps every payload on our origin when no hosts are allowed', () => {
    const escaped = payloads
      .map((payload) => ({ payload, result: safeRedirect(payload) }))
      .filter(({ result }) => result !== '/' && !isContainedLocal(result));
    expect(escaped).toEqual([]);
  });

  it('refuses every payload but plain local pages, which come back unchanged', () => {
    // What is kept is a path on our origin that the gateway itself would serve (`/.example.com`,
    // `/javascript:alert(1)`, `/?url=//example.com`): a page here, never a way off the origin.
    const kept = payloads
      .map((payload) => ({ payload, result: safeRedirect(payload) }))
      .filter(({ result }) => result !== '/');
    const wrong = kept.filter(
      ({ payload, result }) =>
        result !== payload ||
        !isContainedLocal(result) ||
        !checkRequestTarget(result.split('#')[0]).ok,
    );
    expect(wrong).toEqual([]);
  });

  it('never reaches an attacker host when app.example.org is allowed', () => {
    const escaped = payloads
      .map((payload) => ({ payload, result: safeRedirect(payload, [ALLOWED]) }))
      .filter(({ result }) => {
        if (result === '/' || isContainedLocal(result)) return false;
        const url = new URL(result, ORIGIN);
        const onAllowedHost =
          url.hostname === ALLOWED &&
          (url.protocol === 'https:' || url.protocol === 'http:') &&
          url.username === '' &&
          url.password === '';
        return !onAllowedHost || ATTACKER_HOSTS.includes(url.hostname);
      });
    expect(escaped).toEqual([]);
  });
});

describe('safeRedirect explicit cases', () => {
  it('keeps safe local paths', () => {
    expect(safeRedirect('/dashboard?x=1#y')).toBe('/dashboard?x=1#y');
    expect(safeRedirect('/')).toBe('/');
    // Kept as given: the browser resolves the dot segments itself, on our origin.
    expect(safeRedirect('/a/./b/../c?next=%2Fd')).toBe('/a/./b/../c?next=%2Fd');
    expect(safeRedirect('/search?q=caf%C3%A9')).toBe('/search?q=caf%C3%A9');
  });

  it('allows an absolute URL only when its host is allowed', () => {
    expect(safeRedirect(`https://${ALLOWED}/x`, [ALLOWED])).toBe(`https://${ALLOWED}/x`);
    expect(safeRedirect(`https://${ALLOWED}/x`)).toBe('/');
    expect(safeRedirect(`https://${ALLOWED}/x`, ['other.example.org'])).toBe('/');
    expect(safeRedirect('HTTPS://APP.EXAMPLE.ORG/', [ALLOWED])).toBe(`https://${ALLOWED}/`);
  });

  it('refuses hosts that merely contain or end with an allowed name', () => {
    expect(safeRedirect(`https://${ALLOWED}.evil.com/`, [ALLOWED])).toBe('/');
    expect(safeRedirect(`https://evil${ALLOWED}/`, [ALLOWED])).toBe('/');
    expect(safeRedirect(`https://x.${ALLOWED}/`, [ALLOWED])).toBe('/');
  });

  it('allows subdomains only through a leading-dot rule', () => {
    expect(safeRedirect(`https://x.${ALLOWED}/`, [`.${ALLOWED}`])).toBe(`https://x.${ALLOWED}/`);
    expect(safeRedirect(`https://${ALLOWED}/`, [`.${ALLOWED}`])).toBe(`https://${ALLOWED}/`);
    expect(safeRedirect(`https://evil${ALLOWED}/`, [`.${ALLOWED}`])).toBe('/');
  });

  it('refuses dot segments that normalise to a scheme-relative URL', () => {
    expect(safeRedirect('/.//evil.com')).toBe('/');
    expect(safeRedirect('/%2e%2e//evil.com')).toBe('/');
    expect(safeRedirect('/a/..//evil.com')).toBe('/');
  });

  it('refuses deeply encoded slashes', () => {
    expect(safeRedirect('/%252F%252Fevil.com')).toBe('/');
    expect(safeRedirect('/%2525252525252F%2525252525252Fevil.com')).toBe('/');
  });

  it('falls back to / for non-string, empty and oversized input', () => {
    for (const value of [undefined, null, 42, {}, ['/x'], ''])
      expect(safeRedirect(value)).toBe('/');
    expect(safeRedirect(`/${'a'.repeat(MAX_LOCAL_TARGET - 1)}`)).toBe(
      `/${'a'.repeat(MAX_LOCAL_TARGET - 1)}`,
    );
    expect(safeRedirect(`/${'a'.repeat(MAX_LOCAL_TARGET)}`)).toBe('/');
    expect(safeRedirect(`https://${ALLOWED}/${'a'.repeat(2999)}`, [ALLOWED])).toBe('/');
  });
});

/** Path segments as a browser sends them: every one is something people link to. */
const SEGMENTS = [
  'files',
  'Annual%20Report.pdf',
  'Annual%20Report%20(final).pdf',
  'a%20%20b',
  '%20leading',
  'a%25b',
  '%25',
  '100%25',
  '%25bc', // the literal text `%bc` (not UTF-8 once decoded a second time)
  '%25C3%25A9', // the literal text `%C3%A9`
  '%2541', // the literal text `%41`
  '%E2%9C%93',
  '%e2%9c%93',
  'caf%C3%A9',
  'caf%c3%a9',
  '%F0%9F%98%80',
  '%E6%97%A5%E6%9C%AC%E8%AA%9E',
  '%C2%A0nbsp',
  '%E2%80%A8',
  'a;b',
  'a;jsessionid=0123',
  'x;v=1.2',
  '@alice',
  'alice@example.com',
  'a%40b',
  'a+b',
  'a%2Bb',
  'a=b',
  'a&b',
  'a%26b',
  'a%3Fb',
  'a%23b',
  'a?',
  "it's",
  '(x)',
  "!$&'()*+,;=:@",
  '~user',
  'a:b',
  'C:',
  '[x]',
  'a|b',
  'a^b',
  '%5B%5D',
  '%22quoted%22',
  '%3Cb%3E',
  '.hidden',
  '...',
  '.well-known',
  '-',
  '_',
  'a.b.c',
  'javascript:alert(1)',
  'http:',
  'evil.com',
];

/** Query strings as browsers and forms send them. */
const QUERIES = [
  '',
  '?',
  '?q=a%26b',
  '?q=a%3Db',
  '?q=a+b',
  '?q=a%2Bb',
  '?q=a%20b',
  '?q=%23frag',
  '?q=a&b=c',
  '?q=a&q=b',
  '?a=1;b=2',
  '?q=100%25',
  '?q=100%',
  '?q=caf%C3%A9',
  '?q=%E2%9C%93',
  '?q=%FF',
  '?next=/dashboard',
  '?next=//evil.com',
  '?next=%2F%2Fevil.com',
  '?next=https://evil.com',
  '?q=a\\b',
  '?q=a?b',
  '?q=a/b',
  '?q="x"',
  '?q=<b>',
  '?q={}',
  '?q=`x`',
  "?q='x'",
  '?q=%0A',
  '?=',
  '?&&',
];

/** Every local path of the table, in a few positions: alone, deeper, as a directory, with queries. */
function localPaths(): string[] {
  const paths = new Set<string>(['/', '/files/']);
  for (const segment of SEGMENTS) {
    paths.add(`/${segment}`);
    paths.add(`/files/${segment}`);
    paths.add(`/files/${segment}/`);
    paths.add(`/${segment}/${segment}`);
  }
  for (const query of QUERIES) {
    paths.add(`/${query}`);
    paths.add(`/search${query}`);
    for (const segment of SEGMENTS.slice(0, 12)) paths.add(`/files/${segment}${query}`);
  }
  return [...paths];
}

describe('safeRedirect on the deep links the gateway sends to the login', () => {
  const table = localPaths();

  it('is a table of several hundred paths, every one a request-target the gateway proxies', () => {
    expect(table.length).toBeGreaterThan(500);
    const refusedByGateway = table.filter((path) => !checkRequestTarget(path).ok);
    expect(refusedByGateway).toEqual([]);
  });

  it('keeps every one byte for byte', () => {
    const changed = table
      .map((path) => ({ path, result: safeRedirect(path) }))
      .filter(({ path, result }) => result !== path);
    expect(changed).toEqual([]);
  });

  it('keeps the links of issue 11', () => {
    for (const path of ['/files/Annual%20Report.pdf', '/a%25b', '/x/%E2%9C%93', '/search?q=a%26b'])
      expect(safeRedirect(path)).toBe(path);
  });

  it('survives the trip through the login form unchanged', () => {
    // The gateway sends rd=encodeURIComponent(path); the login page puts the decoded value in
    // its form, and the browser posts it back form-encoded.
    for (const path of table) {
      const rd = new URLSearchParams(`rd=${encodeURIComponent(path)}`).get('rd') as string;
      const posted = new URLSearchParams(new URLSearchParams({ rd }).toString()).get('rd');
      expect(safeRedirect(posted)).toBe(path);
    }
  });
});

describe('safeRedirect on local paths that another decoding would turn into an attack', () => {
  it.each([
    ['an encoded slash', '/%2F%2Fevil.com'],
    ['a double-encoded slash', '/%252F%252Fevil.com'],
    ['a triple-encoded slash the gateway lets through', '/%2525%32%46%2525%32%46evil.com'],
    ['a double-encoded backslash', '/%255Cevil.com'],
    ['a triple-encoded backslash', '/%25255Cevil.com'],
    ['a tab a second decoding reveals', '/%2509/evil.com'],
    ['a newline', '/%0A/evil.com'],
    ['an overlong slash', '/%C0%AF%C0%AFevil.com'],
    ['an overlong slash, encoded again', '/%25C0%25AF%25C0%25AFevil.com'],
    ['an overlong dot', '/%C0%AE%C0%AE/evil.com'],
    ['a dot segment to //', '/a/..//evil.com'],
    ['encoded dot segments to //', '/%2e%2e//evil.com'],
    ['an empty segment', '/a//b'],
    ['a backslash', '/a\\b'],
    ['a space', '/a b'],
    ['raw non-ASCII', '/café'],
    ['a raw line separator', '/\u2028/evil.com'],
    ['more layers of encoding than anyone makes', `/${'%25'.repeat(1)}${'25'.repeat(20)}41`],
  ])('refuses %s', (_, path) => {
    expect(safeRedirect(path)).toBe('/');
  });

  it('keeps what it cannot decode but that cannot leave the origin either', () => {
    // Not links the gateway makes (it answers 400 to them), but harmless: the browser asks us.
    for (const path of ['/a%zz', '/100%', '/%FF', '/%C3', '/a%25%FF'])
      expect(safeRedirect(path)).toBe(path);
  });

  it('stays on our origin for random request-targets', () => {
    // A seeded generator: the same targets on every run, so a failure can be reproduced.
    let seed = 0x9e3779b9;
    const next = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 0x100000000;
    };
    const pieces = [
      '/',
      '\\',
      '.',
      '..',
      '%2F',
      '%2f',
      '%5C',
      '%2e',
      '%25',
      '%09',
      '%0A',
      '%00',
      '%C0%AF',
      '%E2%80%A8',
      '?',
      '#',
      '@',
      ':',
      ';',
      'a',
      'evil.com',
      'http:',
      '//',
      '%20',
      '%',
    ];
    const escaped: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      let target = '/';
      const length = 1 + Math.floor(next() * 8);
      for (let j = 0; j < length; j++) target += pieces[Math.floor(next() * pieces.length)];
      const result = safeRedirect(target);
      if (result !== '/' && (result !== target || !isContainedLocal(result))) escaped.push(target);
      if (result !== '/') {
        // Every decoding of what we kept is still a path on our origin.
        let decoded = result;
        for (let k = 0; k < 4; k++) {
          try {
            decoded = decodeURIComponent(decoded);
          } catch {
            break;
          }
          if (!isContainedLocal(decoded.replace(/[\t\n\r]/g, ''))) escaped.push(target);
        }
      }
    }
    expect(escaped).toEqual([]);
  });
});
