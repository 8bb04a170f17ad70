/**
 * The gateway's route index (gateway/src/route-table.ts: exact hosts in a Map, wildcard hosts by
 * suffix, a trie on decoded path segments) against the linear scan it replaced, kept here as the
 * reference: random route tables (exact, wildcard and no hosts; nested prefixes; segments that
 * arrive percent-encoded; duplicate places, which the routes file refuses but buildRouteTable
 * accepts) and many random requests, each answered exactly as the scan answers it.
 */
import { describe, expect, it } from 'vitest';
import {
  checkRequestTarget,
  prefixSegments,
  underPrefix,
} from '../../gateway/src/request-target.js';
import { buildRouteTable, type Route } from '../../gateway/src/route-table.js';

/** The matcher before the index, verbatim: most specific first, then the first that fits. */
function hostRank(host: string | undefined): number {
  if (!host) return 0;
  return host.startsWith('*.') ? 1 + host.length : 1_000;
}
function hostMatches(pattern: string | undefined, hostname: string | undefined): boolean {
  if (!pattern) return true;
  if (!hostname) return false;
  if (pattern.startsWith('*.')) return hostname.endsWith(pattern.slice(1));
  return hostname === pattern;
}
function linearMatch(routes: readonly Route[]) {
  const ordered = [...routes].sort(
    (a, b) => hostRank(b.host) - hostRank(a.host) || b.segments.length - a.segments.length,
  );
  return (hostname: string | undefined, segments: readonly string[]) =>
    ordered.find((r) => hostMatches(r.host, hostname) && underPrefix(segments, r.segments));
}

/** A small seeded generator (mulberry32): a failure names its seed and replays. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LABELS = ['a', 'b', 'eu', 'example', 'com', 'test', 'www', 'x-y'];
/** Decoded segments, some of which only arrive percent-encoded (é, space, ';', '%'-free names). */
const SEGMENTS = ['app', 'api', 'v1', 'café', 'a b', 'x;y', '__proto__', 'constructor', 'ü', ''];

function route(id: string, host: string | undefined, segments: string[]): Route {
  const path = segments.length ? `/${segments.join('/')}` : '/';
  return {
    id,
    ...(host ? { host } : {}),
    path,
    upstream: new URL('http://127.0.0.1:1'),
    stripPrefix: false,
    preserveHost: false,
    public: false,
    require: 'password',
    credentials: 'any',
    timeoutMs: 1000,
    websocketOrigins: new Set(),
    cache: 'gateway',
    segments,
  };
}

function randomTable(next: () => number) {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)] as T;
  const hostname = () =>
    Array.from({ length: 1 + Math.floor(next() * 4) }, () => pick(LABELS)).join('.');
  const prefix = () =>
    Array.from({ length: Math.floor(next() * 4) }, () => pick(SEGMENTS.slice(0, -1)));
  const routes: Route[] = [];
  const count = 1 + Math.floor(next() * 40);
  for (let i = 0; i < count; i++) {
    const kind = next();
    const host = kind < 0.35 ? undefined : kind < 0.7 ? hostname() : `*.${hostname()}`;
    // nested prefixes: often extend an earlier route's path (same host or not)
    const base = routes.length && next() < 0.5 ? [...pick(routes).segments] : [];
    const segments = [...base, ...prefix()].slice(0, 5);
    routes.push(route(`r${i}`, host, segments));
  }
  return { routes, hostname, pick };
}

/** A request path, percent-encoded as a client might send it, read as the gateway reads it. */
function randomRequest(next: () => number, pick: <T>(list: readonly T[]) => T): string[] {
  const depth = Math.floor(next() * 6);
  const raw = Array.from({ length: depth }, () => {
    const s = pick(SEGMENTS);
    return next() < 0.5 ? encodeURIComponent(s) : encodeURIComponent(s).replace(/%3B/g, ';');
  });
  const url = `/${raw.join('/')}${next() < 0.2 ? '/' : ''}`;
  const check = checkRequestTarget(url.replace(/\/\/+/g, '/'));
  if (!check.ok) throw new Error(`${url}: ${check.reason}`);
  return check.target.segments;
}

describe('the route index answers as the linear scan', () => {
  it('on 400 random tables, 500 random requests each', () => {
    let compared = 0;
    let routed = 0;
    const mismatches: unknown[] = [];
    for (let seed = 1; seed <= 400; seed++) {
      const next = rng(seed);
      const { routes, hostname, pick } = randomTable(next);
      const table = buildRouteTable(routes);
      const reference = linearMatch(routes);
      const hosts = routes.map((r) => r.host).filter((h): h is string => h !== undefined);
      for (let i = 0; i < 500; i++) {
        const h = next();
        const host =
          h < 0.15
            ? undefined
            : h < 0.5 && hosts.length
              ? pick(hosts).replace(/^\*/, pick(['a', 'www.b', 'x-y.eu', '']))
              : hostname();
        const segments = randomRequest(next, pick);
        const want = reference(host, segments);
        const got = table.match(host, segments);
        if (got !== want) mismatches.push({ seed, host, segments, got: got?.id, want: want?.id });
        compared += 1;
        if (want) routed += 1;
      }
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
    expect(compared).toBe(200_000);
    // the tables are not trivially empty or all-matching
    expect(routed).toBeGreaterThan(compared * 0.3);
    expect(routed).toBeLessThan(compared * 0.98);
  });

  it('keeps the fallback from a host with no route for the path to host-less routes', () => {
    const routes = [
      route('host-app', 'www.example.com', ['app']),
      route('wild-api', '*.example.com', ['api']),
      route('root', undefined, []),
      route('docs', undefined, ['docs']),
    ];
    const table = buildRouteTable(routes);
    const reference = linearMatch(routes);
    for (const [host, path, id] of [
      ['www.example.com', '/app/x', 'host-app'],
      ['www.example.com', '/api', 'wild-api'],
      ['www.example.com', '/docs/x', 'docs'],
      ['www.example.com', '/', 'root'],
      ['example.com', '/api', 'root'],
    ] as const) {
      const segments = prefixSegments(path === '/' ? '/' : path);
      expect(table.match(host, segments)?.id).toBe(id);
      expect(reference(host, segments)?.id).toBe(id);
    }
  });

  it('ranks a wildcard of 999 characters or more as the scan did (with or above exact hosts)', () => {
    const long = Array.from({ length: 250 }, () => 'abc').join('.'); // 999 characters
    const routes = [
      route('exact-root', `x.${long}`, []),
      route('wild-deep', `*.${long}`, ['app']),
      route('wild-longer', `*.b.${long}`, []),
    ];
    const table = buildRouteTable(routes);
    const reference = linearMatch(routes);
    for (const host of [`x.${long}`, `y.${long}`, `a.b.${long}`])
      for (const segments of [[''], ['app'], ['app', 'x'], ['other']])
        expect(table.match(host, segments)?.id).toBe(reference(host, segments)?.id);
    expect(table.match(`x.${long}`, ['app'])?.id).toBe('wild-deep');
  });

  it('costs the same for the first and the last of 1,000 routes (no scan)', () => {
    const routes = Array.from({ length: 1000 }, (_, i) => route(`r${i}`, undefined, [`app${i}`]));
    const table = buildRouteTable(routes);
    expect(table.match(undefined, ['app0', 'x'])?.id).toBe('r0');
    expect(table.match(undefined, ['app999', 'x'])?.id).toBe('r999');
    const time = (segments: string[]) => {
      const start = process.hrtime.bigint();
      for (let i = 0; i < 20_000; i++) table.match('www.example.com', segments);
      return Number(process.hrtime.bigint() - start);
    };
    time(['app0']);
    time(['app999']);
    const first = Math.min(time(['app0']), time(['app0']), time(['app0']));
    const last = Math.min(time(['app999']), time(['app999']), time(['app999']));
    // a scan makes the last about 1,000× the work of the first; the index makes them equal
    expect(last / first).toBeLessThan(3);
  });
});
