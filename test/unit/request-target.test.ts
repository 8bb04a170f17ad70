/**
 * The request-target check (gateway/src/request-target.ts) over tables of spellings: what is
 * refused before any route decision, and how accepted targets split into segments. The same
 * targets sent to a gateway, with upstreams that must see none of them:
 * test/integration/gateway-paths.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  checkRequestTarget,
  prefixSegments,
  type RequestTarget,
  stripSegments,
  underPrefix,
} from '../../gateway/src/request-target.js';

function accepted(url: string): RequestTarget {
  const check = checkRequestTarget(url);
  if (!check.ok) throw new Error(`${url} refused: ${check.reason}`);
  return check.target;
}

describe('request-targets refused before any route decision', () => {
  it.each([
    // not origin-form
    [undefined, 'request-target must start with /'],
    ['', 'request-target must start with /'],
    ['*', 'request-target must start with /'],
    ['http://evil.example/admin', 'request-target must start with /'],
    ['evil.example:443', 'request-target must start with /'],
    // separators and segments another parser reads differently
    ['/public\\..\\admin', 'backslash in path'],
    ['/public#/../admin', 'fragment in request-target'],
    ['//public/admin', 'empty path segment'],
    ['/public//admin', 'empty path segment'],
    ['/public%2f..%2fadmin', 'encoded path separator'],
    ['/public/..%2Fadmin', 'encoded path separator'],
    ['/public/%5c..%5cadmin', 'encoded path separator'],
    // dot segments in every spelling
    ['/public/../admin', 'dot segment in path'],
    ['/public/./admin', 'dot segment in path'],
    ['/public/%2e%2e/admin', 'dot segment in path'],
    ['/public/.%2E/admin', 'dot segment in path'],
    ['/public/%2e/admin', 'dot segment in path'],
    ['/public/..;/admin', 'dot segment in path'],
    ['/public/%2e%2e;jsessionid=1/admin', 'dot segment in path'],
    ['/..', 'dot segment in path'],
    // percent-encoding that is not valid UTF-8 (overlong dots and slashes included)
    ['/public/%zz', 'invalid percent-encoding'],
    ['/public/%2', 'invalid percent-encoding'],
    ['/public/%', 'invalid percent-encoding'],
    ['/public/%ff', 'invalid UTF-8 in path'],
    ['/public/%c0%ae%c0%ae/admin', 'invalid UTF-8 in path'],
    ['/public/%e0%80%ae%e0%80%ae/admin', 'invalid UTF-8 in path'],
    ['/public/%c0%af..%c0%afadmin', 'invalid UTF-8 in path'],
    // control characters once decoded
    ['/public/%00/admin', 'control character in path'],
    ['/public%00', 'control character in path'],
    ['/public/%0a/admin', 'control character in path'],
    ['/public/%7F', 'control character in path'],
    // what a second decoding would turn into a dot, a separator or NUL
    ['/public/%252e%252e/admin', 'double-encoded character in path'],
    ['/public/%252f', 'double-encoded character in path'],
    ['/public/%255C', 'double-encoded character in path'],
    ['/public/%2500', 'double-encoded character in path'],
  ])('refuses %j: %s', (url, reason) => {
    expect(checkRequestTarget(url)).toEqual({ ok: false, reason });
  });
});

describe('request-targets accepted', () => {
  it('keeps the path and the query exactly as sent, and decodes segments for matching only', () => {
    const target = accepted('/a%20b/caf%C3%A9/x.y/..z/;p/?q=%2F..%00');
    expect(target.rawPath).toBe('/a%20b/caf%C3%A9/x.y/..z/;p/');
    expect(target.search).toBe('?q=%2F..%00');
    expect(target.rawSegments).toEqual(['a%20b', 'caf%C3%A9', 'x.y', '..z', ';p', '']);
    expect(target.segments).toEqual(['a b', 'café', 'x.y', '..z', ';p', '']);
  });

  it.each([
    ['/', [''], ''],
    ['/?', [''], '?'],
    ['/app', ['app'], ''],
    ['/app/', ['app', ''], ''],
    ['/%61pp/x', ['app', 'x'], ''],
    ['/files/100%25', ['files', '100%'], ''],
    ['/a/...', ['a', '...'], ''],
    ["/a/!$&'()*+,;=:@/b", ['a', "!$&'()*+,;=:@", 'b'], ''],
    ['/search?next=//evil.com&x=../..', ['search'], '?next=//evil.com&x=../..'],
    ['/search?q=%zz', ['search'], '?q=%zz'],
  ])('accepts %j as segments %j', (url, segments, search) => {
    const target = accepted(url);
    expect(target.segments).toEqual(segments);
    expect(target.search).toBe(search);
  });
});

describe('prefixes by whole segments', () => {
  it('reads a route path into segments', () => {
    expect(prefixSegments('/')).toEqual([]);
    expect(prefixSegments('/app')).toEqual(['app']);
    expect(prefixSegments('/app/api')).toEqual(['app', 'api']);
  });

  it.each([
    ['/app', '/app', true],
    ['/app/', '/app', true],
    ['/app/x/y', '/app', true],
    ['/%61pp/x', '/app', true],
    ['/anything', '/', true],
    ['/apps', '/app', false],
    ['/app.html', '/app', false],
    ['/ap', '/app', false],
    ['/', '/app', false],
    ['/app', '/app/api', false],
    ['/App', '/app', false],
  ])('%s is under %s: %s', (url, prefix, expected) => {
    expect(underPrefix(accepted(url).segments, prefixSegments(prefix))).toBe(expected);
  });

  it('strips whole raw segments, keeping the rest encoded as sent', () => {
    expect(stripSegments(accepted('/app/x%20y/z'), 1)).toBe('/x%20y/z');
    expect(stripSegments(accepted('/app'), 1)).toBe('/');
    expect(stripSegments(accepted('/app/'), 1)).toBe('/');
    expect(stripSegments(accepted('/a/b/c'), 2)).toBe('/c');
    expect(stripSegments(accepted('/a/b'), 0)).toBe('/a/b');
  });
});
