import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { safeRedirect } from '../../session-service/src/domain/redirects.js';

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
    expect(safeRedirect('/a/./b/../c?next=%2Fd')).toBe('/a/c?next=%2Fd');
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
    expect(safeRedirect(`/${'a'.repeat(2999)}`)).toBe('/');
  });
});
