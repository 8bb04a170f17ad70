/**
 * Over 300 lines on purpose: the schema's messages and the matching tables read as the routes file's reference.
 *
 * The routes file and route matching (gateway/src/route-schema.ts, routes-file.ts, route-table.ts) without a socket: the schema and its
 * error messages, which route a host and path reach, and who a route lets in. Routes served by a
 * real gateway (two backends, reloads): test/integration/gateway-routes.test.ts.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/src/config.js';
import type { Identity } from '../../common/src/identity.js';
import { checkRequestTarget } from '../../gateway/src/request-target.js';
import { buildRouteTable, isAllowed, type Route } from '../../gateway/src/route-table.js';
import { createRouteStore, defaultRouteTable, parseRoutes } from '../../gateway/src/routes-file.js';
import { ROOT } from '../helpers/processes.js';

function problemsOf(text: string): string[] {
  try {
    parseRoutes(text, 30_000, 'routes.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('the routes file schema', () => {
  it('loads examples/routes.example.yaml', () => {
    const table = parseRoutes(
      readFileSync(join(ROOT, 'examples/routes.example.yaml'), 'utf8'),
      30_000,
    );
    expect(table.routes.map((r) => r.id).sort()).toEqual(['app', 'assets', 'finance', 'wiki']);
    const finance = table.routes.find((r) => r.id === 'finance');
    expect(finance).toMatchObject({ stripPrefix: true, public: false, timeoutMs: 30_000 });
    expect([...(finance?.allow?.groups ?? [])]).toEqual(['finance', 'admins']);
  });

  it('accepts JSON too, with defaults filled in', () => {
    const table = parseRoutes(
      JSON.stringify({ routes: [{ id: 'a', upstream: 'https://app.internal:8443/base' }] }),
      1234,
    );
    expect(table.routes[0]).toMatchObject({
      id: 'a',
      path: '/',
      stripPrefix: false,
      preserveHost: false,
      public: false,
      timeoutMs: 1234,
    });
    expect(table.routes[0]?.allow).toBeUndefined();
  });

  it('lists every problem at once, each with its route index, id and field', () => {
    const problems = problemsOf(`
routes:
  - id: ok
    upstream: http://127.0.0.1:3000
  - id: "bad id!"
    path: app
    upstream: ftp://files.example.com
  - id: ok
    path: /_gatehouse/x
    upstream: http://127.0.0.1:3001
  - id: auth
    path: /auth
    upstream: http://127.0.0.1:3002
    public: true
    allow: { groups: [admins] }
  - id: wild
    host: "*.*.example.com"
    path: /a/../b
    upstream: not a url
    timeoutMs: -5
    strip_prefix: true
  - id: empty-allow
    path: /x/
    upstream: http://127.0.0.1:3003
    allow: {}
`);
    const expected = [
      /^routes\.yaml: routes\[1\] \(bad id!\)\.id: /,
      /routes\[1\] \(bad id!\)\.path: must start with \//,
      /routes\[1\] \(bad id!\)\.upstream: must be an http/,
      /routes\[2\] \(ok\)\.id: duplicate id \(also routes\[0\]\)/,
      /routes\[2\] \(ok\)\.path: \/_gatehouse\/ is reserved/,
      /routes\[3\] \(auth\)\.path: \/auth\/ is reserved/,
      /routes\[3\] \(auth\)\.allow: a public route cannot have an allow list/,
      /routes\[4\] \(wild\)\.host: must be a hostname/,
      /routes\[4\] \(wild\)\.path: must not contain \. or \.\. segments/,
      /routes\[4\] \(wild\)\.upstream: is not a URL/,
      /routes\[4\] \(wild\)\.timeoutMs: /,
      /routes\[4\] \(wild\): .*strip_prefix/,
      /routes\[5\] \(empty-allow\)\.path: must not end with \//,
      /routes\[5\] \(empty-allow\)\.allow: must list at least one user or group/,
    ];
    for (const pattern of expected)
      expect(
        problems.some((p) => pattern.test(p)),
        `${pattern} in\n${problems.join('\n')}`,
      ).toBe(true);
  });

  it('refuses duplicate host+path pairs, an empty list, unknown top-level keys and bad YAML', () => {
    expect(
      problemsOf(
        'routes:\n  - {id: a, path: /x, upstream: "http://h"}\n  - {id: b, path: /x, upstream: "http://h"}',
      ).join(),
    ).toMatch(/routes\[1\] \(b\)\.path: same host and path as routes\[0\]/);
    expect(problemsOf('routes: []').join()).toMatch(/at least one route/);
    expect(problemsOf('routes:\n  - {id: a, upstream: "http://h"}\nextra: 1').join()).toMatch(
      /extra/,
    );
    expect(problemsOf('routes: [ {id: a').join()).toMatch(/^routes\.yaml:1:\d+: /);
    expect(problemsOf('routes:\n  - id: a\n    id: b\n    upstream: http://h').length).toBe(1);
  });
});

describe('what a route requires of the session (require, maxAge)', () => {
  it('requires a password and no recent sign-in unless told otherwise', () => {
    const [route] = parseRoutes('routes: [{ id: a, upstream: "http://a" }]', 1000).routes;
    expect(route?.require).toBe('password');
    expect(route?.maxAge).toBeUndefined();
    expect(defaultRouteTable('http://a', 1000).routes[0]?.require).toBe('password');
  });

  it.each([
    ['password', undefined],
    ['second-factor', 900],
    ['webauthn', 60],
    ['password', 1],
  ] as const)('reads require: %s with maxAge %s', (require, maxAge) => {
    const spec = { id: 'a', upstream: 'http://a', require, ...(maxAge ? { maxAge } : {}) };
    const [route] = parseRoutes(JSON.stringify({ routes: [spec] }), 1000).routes;
    expect(route).toMatchObject({ require });
    expect(route?.maxAge).toBe(maxAge);
  });

  it.each([
    ['require: totp', /\.require: must be one of password, second-factor, webauthn$/],
    ['require: Second-Factor', /\.require: must be one of password, second-factor, webauthn$/],
    ['require: [webauthn]', /\.require: must be one of/],
    ['maxAge: "15m"', /\.maxAge: must be a number of seconds \(900 for 15 minutes\)$/],
    ['maxAge: 1.5', /\.maxAge: must be a whole number of seconds$/],
    ['maxAge: 0', /\.maxAge: must be at least 1 second$/],
    ['maxAge: -60', /\.maxAge: must be at least 1 second$/],
    ['public: true, require: password', /\.require: a public route asks for no session/],
    ['public: true, maxAge: 60', /\.maxAge: a public route asks for no session/],
  ])('refuses %s, naming the route and the field', (fields, message) => {
    const problems = problemsOf(`routes:\n  - { id: r, upstream: "http://a", ${fields} }`);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^routes\.yaml: routes\[0\] \(r\)\./);
    expect(problems[0]).toMatch(message);
  });

  it('is checked again on reload: a broken requirement keeps the routes in use', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'gatehouse-routes-')), 'routes.yaml');
    writeFileSync(file, 'routes: [{ id: a, upstream: "http://a", require: second-factor }]');
    const store = createRouteStore({ file, defaultUpstream: 'http://x', defaultTimeoutMs: 1000 });
    writeFileSync(file, 'routes: [{ id: a, upstream: "http://a", require: otp, maxAge: 0 }]');
    const reloaded = store.reload();
    expect(reloaded.ok).toBe(false);
    expect(reloaded.ok ? [] : reloaded.problems).toEqual([
      `${file}: routes[0] (a).require: must be one of password, second-factor, webauthn`,
      `${file}: routes[0] (a).maxAge: must be at least 1 second`,
    ]);
    expect(store.current().routes[0]).toMatchObject({ require: 'second-factor' });
    writeFileSync(
      file,
      'routes: [{ id: a, upstream: "http://a", require: webauthn, maxAge: 300 }]',
    );
    expect(store.reload()).toEqual({ ok: true, routes: 1 });
    expect(store.current().routes[0]).toMatchObject({ require: 'webauthn', maxAge: 300 });
  });
});

describe('route matching', () => {
  const table = parseRoutes(
    `routes:
  - { id: root, upstream: "http://r" }
  - { id: app, path: /app, upstream: "http://a" }
  - { id: app-api, path: /app/api, upstream: "http://b" }
  - { id: any-example, host: "*.example.com", upstream: "http://c" }
  - { id: deep-example, host: "*.eu.example.com", upstream: "http://c" }
  - { id: www, host: www.example.com, upstream: "http://d" }
  - { id: www-app, host: www.example.com, path: /app, upstream: "http://e" }
`,
    1000,
  );
  const match = (host: string | undefined, path: string) =>
    table.match(host, path === '/' ? [''] : path.slice(1).split('/'))?.id;

  it('matches whole segments and prefers the longest prefix', () => {
    expect(match(undefined, '/')).toBe('root');
    expect(match(undefined, '/app')).toBe('app');
    expect(match(undefined, '/app/')).toBe('app');
    expect(match(undefined, '/app/x')).toBe('app');
    expect(match(undefined, '/apps')).toBe('root');
    expect(match(undefined, '/app/api/v1')).toBe('app-api');
    expect(match(undefined, '/app/apix')).toBe('app');
  });

  it('prefers an exact host, then the longest wildcard, then no host', () => {
    expect(match('www.example.com', '/x')).toBe('www');
    expect(match('www.example.com', '/app/x')).toBe('www-app');
    expect(match('shop.example.com', '/app')).toBe('any-example');
    expect(match('a.eu.example.com', '/')).toBe('deep-example');
    expect(match('example.com', '/app')).toBe('app');
    expect(match('other.test', '/app')).toBe('app');
  });

  it('answers nothing when no route fits', () => {
    const hostOnly = buildRouteTable(
      parseRoutes('routes: [{ id: a, host: a.test, upstream: "http://a" }]', 1).routes,
    );
    expect(hostOnly.match('b.test', [''])).toBeUndefined();
    expect(hostOnly.match(undefined, [''])).toBeUndefined();
  });
});

describe('matching a request as the gateway reads it (decoded segments)', () => {
  const table = parseRoutes(
    `routes:
  - { id: root, upstream: "http://r" }
  - { id: app, path: /app, upstream: "http://a" }
  - { id: cafe, path: /café, upstream: "http://c" }
`,
    1000,
  );
  const routeOf = (url: string) => {
    const check = checkRequestTarget(url);
    if (!check.ok) throw new Error(check.reason);
    return table.match(undefined, check.target.segments)?.id;
  };

  it.each([
    ['/%61pp/x', 'app'],
    ['/%41pp/x', 'root'],
    ['/caf%C3%A9/menu', 'cafe'],
    ['/app;v=1/x', 'root'],
    ['/app?x=/cafe', 'app'],
  ])('%s reaches %s', (url, id) => {
    expect(routeOf(url)).toBe(id);
  });

  it('matches host names exactly as given: lowercase (host.ts lowercases the Host header)', () => {
    const hosts = parseRoutes(
      'routes: [{ id: a, host: API.Example.com, upstream: "http://a" }]',
      1,
    );
    expect(hosts.routes[0]?.host).toBe('api.example.com');
    expect(hosts.match('api.example.com', [''])?.id).toBe('a');
    expect(hosts.match('api.example.com.evil.test', [''])).toBeUndefined();
    expect(hosts.match('xapi.example.com', [''])).toBeUndefined();
  });

  it('does not let a wildcard reach the bare domain', () => {
    const wild = parseRoutes('routes: [{ id: w, host: "*.example.com", upstream: "http://w" }]', 1);
    expect(wild.match('a.example.com', [''])?.id).toBe('w');
    expect(wild.match('example.com', [''])).toBeUndefined();
    expect(wild.match('badexample.com', [''])).toBeUndefined();
  });

  it('serves everything from UPSTREAM_URL when there is no routes file', () => {
    const table = defaultRouteTable('http://127.0.0.1:3000', 5000);
    const route = table.match(undefined, ['any', 'path']);
    expect(route).toMatchObject({ id: 'default', path: '/', public: false, timeoutMs: 5000 });
    expect(route?.upstream.href).toBe('http://127.0.0.1:3000/');
  });
});

describe('who a route lets in', () => {
  const user = (username: string, groups: string[] = []): Identity => ({
    id: `id-${username}`,
    username,
    groups,
    email: `${username}@example.com`,
  });
  const table = parseRoutes(
    `routes:
  - { id: open, path: /open, upstream: "http://o" }
  - { id: finance, path: /finance, upstream: "http://f", allow: { groups: [finance, admins], users: [carol] } }
`,
    1000,
  );
  const route = (id: string) => table.routes.find((r) => r.id === id) as Route;

  it('lets every signed-in user through a route with no allow list', () => {
    expect(isAllowed(route('open'), user('anyone'))).toBe(true);
  });

  it.each([
    ['a member of a listed group', user('fran', ['finance']), true],
    ['a member of another listed group', user('ada', ['dev', 'admins']), true],
    ['a listed user in no group', user('carol'), true],
    ['a user in other groups', user('alice', ['dev', 'staff']), false],
    ['a user in no group', user('bob'), false],
    ['a user named like a group', user('finance'), false],
    ['a group spelled in another case', user('fred', ['Finance']), false],
  ])('on an allow list: %s passes: %s', (_who, identity, expected) => {
    expect(isAllowed(route('finance'), identity)).toBe(expected);
  });
});
