/**
 * Access tokens at the gateway on facts alone (issue 17): which credential a request presents
 * (gateway/src/access-token.ts), the one decision for a token (decide.ts: the route's
 * `credentials`, scope routes and read-only, require/maxAge a token cannot meet, plain HTTP,
 * validate's 429), the routes-file checks of `credentials`, and that the upstream never receives
 * our token while any other Authorization passes (request-headers.ts). Through real processes:
 * test/e2e/access-tokens.test.ts.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { GATEHOUSE_BEARER, presentedToken } from '../../common/src/access-token.js';
import { authenticationOf } from '../../common/src/authentication.js';
import { ConfigError } from '../../common/src/config.js';
import { createCookiePolicy } from '../../gateway/src/cookies.js';
import { type Decision, decide, type RequestFacts } from '../../gateway/src/decide.js';
import { upstreamHeaders } from '../../gateway/src/request-headers.js';
import { checkRequestTarget } from '../../gateway/src/request-target.js';
import { parseRoutes } from '../../gateway/src/routes-file.js';
import { TokenRefused, type Validation } from '../../gateway/src/validate-answer.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const TOKEN = `gatehouse_pat_${'A'.repeat(43)}_abc123`;

const table = parseRoutes(
  `routes:
  - { id: app, upstream: "http://a" }
  - { id: api, path: /api, upstream: "http://a" }
  - { id: browser, path: /browser, upstream: "http://a", credentials: session }
  - { id: machines, path: /machines, upstream: "http://a", credentials: token }
  - { id: admin, path: /admin, upstream: "http://a", require: second-factor }
  - { id: recent, path: /recent, upstream: "http://a", maxAge: 900 }
  - { id: ops, path: /ops, upstream: "http://a", allow: { groups: [ops] } }
  - { id: pub, path: /pub, upstream: "http://a", public: true }
`,
  1000,
);

function tokenUse(scope: { routes?: string[]; readOnly?: boolean } = {}, groups = ['staff']) {
  return {
    user: { id: 'u1', username: 'alice', groups, email: 'alice@example.com' },
    session: { expiresAt: '2026-03-02T00:00:00.000Z' },
    token: {
      id: 'stored-id',
      name: 'ci',
      kind: 'personal' as const,
      expiresAt: '2026-03-02T00:00:00.000Z',
      scope,
    },
  } satisfies Validation;
}

const sessionUse: Validation = {
  user: { id: 'u1', username: 'alice', groups: ['staff'], email: 'alice@example.com' },
  session: { createdAt: '2026-03-01T11:00:00.000Z', expiresAt: '2026-03-02' },
  authentication: authenticationOf(['pwd'], NOW - 60_000),
};

async function decideFor(
  url: string,
  facts: Partial<RequestFacts>,
  answer: Validation | null | Error,
): Promise<{ decision: Decision; asked: boolean }> {
  const check = checkRequestTarget(url);
  if (!check.ok) throw new Error(check.reason);
  let asked = false;
  const decision = await decide(
    { host: undefined, target: check.target, method: 'GET', ...facts },
    table,
    async () => {
      asked = true;
      if (answer instanceof Error) throw answer;
      return answer;
    },
    { signedIdentity: true, now: NOW },
  );
  return { decision, asked };
}

const summary = (d: Decision) => (d.ok ? d.outcome : `${d.status} ${d.code}`);

describe('which credential a request presents', () => {
  it.each([
    [undefined, undefined],
    ['Basic YWxpY2U6cw==', undefined],
    ['Bearer eyJhbGciOi.x.y', undefined],
    ['Bearer gatehouse', undefined],
    [`Bearer ${TOKEN}`, TOKEN],
    [`bearer   ${TOKEN}  `, TOKEN],
    [`BEARER ${TOKEN}`, TOKEN],
    [`Bearer ${TOKEN} extra`, null],
    [`Bearer gatehouse_${'x'.repeat(300)}`, null],
  ])('%s → %s', (header, expected) => {
    expect(presentedToken(header)).toBe(expected);
  });

  it('takes the first of repeated values', () => {
    expect(presentedToken([`Bearer ${TOKEN}`, 'Basic x'])).toBe(TOKEN);
  });
});

describe('the decision for an access token', () => {
  it.each<[string, Partial<RequestFacts>, Validation | null | Error, string, boolean]>([
    // path, facts, validate's answer, decision, was validate asked
    ['/', { token: TOKEN }, tokenUse(), 'ok', true],
    ['/api/x', { token: TOKEN, method: 'POST' }, tokenUse(), 'ok', true],
    ['/pub', { token: TOKEN }, null, 'public', false],
    ['/', { token: TOKEN }, null, '401 UNAUTHENTICATED', true],
    ['/', { token: null }, tokenUse(), '401 UNAUTHENTICATED', false],
    ['/browser', { token: TOKEN }, tokenUse(), '403 CREDENTIAL_NOT_ACCEPTED', false],
    ['/browser', {}, sessionUse, 'ok', true],
    ['/machines', { token: TOKEN }, tokenUse(), 'ok', true],
    ['/machines', { sessionCookie: true }, sessionUse, '403 CREDENTIAL_NOT_ACCEPTED', false],
    ['/machines', {}, null, '401 UNAUTHENTICATED', false],
    ['/admin', { token: TOKEN }, tokenUse(), '403 CREDENTIAL_NOT_ACCEPTED', true],
    ['/recent', { token: TOKEN }, tokenUse(), '403 CREDENTIAL_NOT_ACCEPTED', true],
    ['/ops', { token: TOKEN }, tokenUse(), '403 FORBIDDEN', true],
    ['/ops', { token: TOKEN }, tokenUse({}, ['ops']), 'ok', true],
    ['/api/x', { token: TOKEN }, tokenUse({ routes: ['api'] }), 'ok', true],
    ['/', { token: TOKEN }, tokenUse({ routes: ['api'] }), '403 TOKEN_SCOPE', true],
    ['/api/x', { token: TOKEN, method: 'GET' }, tokenUse({ readOnly: true }), 'ok', true],
    ['/api/x', { token: TOKEN, method: 'HEAD' }, tokenUse({ readOnly: true }), 'ok', true],
    ['/api/x', { token: TOKEN, method: 'OPTIONS' }, tokenUse({ readOnly: true }), 'ok', true],
    [
      '/api/x',
      { token: TOKEN, method: 'POST' },
      tokenUse({ readOnly: true }),
      '403 TOKEN_SCOPE',
      true,
    ],
    [
      '/api/x',
      { token: TOKEN, method: 'DELETE' },
      tokenUse({ readOnly: true }),
      '403 TOKEN_SCOPE',
      true,
    ],
    ['/', { token: TOKEN, plainHttpFromAfar: true }, tokenUse(), '403 HTTPS_REQUIRED', false],
    [
      '/',
      { token: TOKEN },
      new TokenRefused('TOO_MANY_ATTEMPTS', '42'),
      '429 TOO_MANY_ATTEMPTS',
      true,
    ],
    ['/', { token: TOKEN }, new TokenRefused('HTTPS_REQUIRED'), '403 HTTPS_REQUIRED', true],
    ['/', { token: TOKEN }, new Error('down'), '503 SESSION_SERVICE_UNAVAILABLE', true],
  ])('%s %j → %s', async (path, facts, answer, expected, asked) => {
    const result = await decideFor(path, facts, answer);
    expect(summary(result.decision)).toBe(expected);
    expect(result.asked).toBe(asked);
  });

  it('answers a token as an API client: invalid_token, Retry-After, never a redirect', async () => {
    const invalid = (await decideFor('/', { token: TOKEN }, null)).decision;
    expect(invalid).toMatchObject({
      bearer: true,
      headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
    });
    const throttled = (
      await decideFor('/', { token: TOKEN }, new TokenRefused('TOO_MANY_ATTEMPTS', '42'))
    ).decision;
    expect(throttled).toMatchObject({ bearer: true, headers: { 'Retry-After': '42' } });
    const tokenOnly = (await decideFor('/machines', {}, null)).decision;
    expect(tokenOnly).toMatchObject({
      bearer: true,
      headers: { 'WWW-Authenticate': 'Bearer realm="gatehouse"' },
    });
    // a session without a session on an ordinary route is still sent to the login page
    expect((await decideFor('/', {}, null)).decision).not.toHaveProperty('bearer');
  });

  it('does not hold a token upgrade to the Origin check (no ambient credential), but a read-only token opens no WebSocket', async () => {
    const upgrade = {
      origin: 'https://evil.example',
      secFetchSite: 'cross-site',
      ownOrigin: 'https://app.example',
    };
    expect(summary((await decideFor('/', { upgrade }, sessionUse)).decision)).toBe(
      '403 ORIGIN_NOT_ALLOWED',
    );
    expect(summary((await decideFor('/', { upgrade, token: TOKEN }, tokenUse())).decision)).toBe(
      'ok',
    );
    expect(
      summary(
        (await decideFor('/', { upgrade, token: TOKEN }, tokenUse({ readOnly: true }))).decision,
      ),
    ).toBe('403 TOKEN_SCOPE');
  });
});

describe('the routes file: credentials', () => {
  const problems = (yaml: string) => {
    try {
      parseRoutes(yaml, 1000);
      return [];
    } catch (err) {
      return (err as ConfigError).problems;
    }
  };

  it('defaults to any and takes session and token', () => {
    const t = parseRoutes(
      `routes:
  - { id: a, upstream: "http://a" }
  - { id: b, path: /b, upstream: "http://a", credentials: session }
  - { id: c, path: /c, upstream: "http://a", credentials: token }
`,
      1000,
    );
    expect(Object.fromEntries(t.routes.map((r) => [r.id, r.credentials]))).toEqual({
      a: 'any',
      b: 'session',
      c: 'token',
    });
  });

  it('refuses what cannot work, naming the route', () => {
    expect(problems(`routes: [{ id: a, upstream: "http://a", credentials: cookie }]`)).toEqual([
      expect.stringMatching(/routes\[0\] \(a\)\.credentials: must be one of any, session, token/),
    ]);
    expect(
      problems(`routes: [{ id: a, upstream: "http://a", public: true, credentials: token }]`),
    ).toEqual([expect.stringMatching(/credentials: a public route asks for no credential/)]);
    expect(
      problems(
        `routes: [{ id: a, upstream: "http://a", credentials: token, require: second-factor, maxAge: 60 }]`,
      ),
    ).toEqual([
      expect.stringMatching(/\(a\)\.require: an access token proves no sign-in/),
      expect.stringMatching(/\(a\)\.maxAge: an access token proves no sign-in/),
    ]);
    expect(
      problems(`routes: [{ id: a, upstream: "http://a", credentials: token, require: password }]`),
    ).toEqual([]);
    expect(ConfigError).toBeDefined();
  });
});

describe('what the upstream receives of Authorization', () => {
  function headersFor(rawHeaders: string[], keepAccessToken = false) {
    const req = { rawHeaders, method: 'GET' } as unknown as IncomingMessage;
    const out = upstreamHeaders(req, {
      host: 'app',
      cookies: createCookiePolicy('gatehouse'),
      forwarded: { for: '1.2.3.4', clientIp: '1.2.3.4', proto: 'https', host: 'app' },
      requestId: 'r',
      ...(keepAccessToken ? { keepAccessToken } : {}),
    });
    const pairs: string[] = [];
    for (let i = 0; i < out.length; i += 2) pairs.push(`${out[i]}: ${out[i + 1]}`);
    return pairs.filter((p) => /authorization/i.test(p));
  }

  it.each([
    `Bearer ${TOKEN}`,
    `bearer ${TOKEN}`,
    `Bearer  gatehouse_anything`,
    ` Bearer gatehouse_sat_x`,
    `Bearer gatehouse_${'x'.repeat(500)}`,
  ])('never passes our token on: %s', (value) => {
    expect(GATEHOUSE_BEARER.test(value)).toBe(true);
    expect(headersFor(['Authorization', value, 'authorization', value])).toEqual([]);
    expect(headersFor(['X-Gatehouse-Authorization', value])).toEqual([]);
  });

  it("passes the app's own Authorization as sent", () => {
    for (const value of ['Basic YWxpY2U6cw==', 'Bearer eyJhbGciOi.x.y', 'Bearer gatehousex'])
      expect(headersFor(['Authorization', value])).toEqual([`Authorization: ${value}`]);
  });

  it('keeps it for the session-service (/auth/validate reads it)', () => {
    expect(headersFor(['Authorization', `Bearer ${TOKEN}`], true)).toEqual([
      `Authorization: Bearer ${TOKEN}`,
    ]);
  });
});

describe('the validation cache keeps tokens by their stored id', () => {
  it('serves a token from the cache until its revocation (published under SHA-256 of the token) drops it', async () => {
    const { createValidationCache } = await import('../../gateway/src/validation-cache.js');
    const { storedSessionId } = await import('../../common/src/session-id.js');
    const t = NOW;
    const cache = createValidationCache({ ttlMs: 5000, maxEntries: 10, now: () => t });
    expect(cache.lookupToken(TOKEN, 'app').outcome).toBe('bypass'); // stream down: no cache
    cache.enable('gatehouse');
    const miss = cache.lookupToken(TOKEN, 'app');
    if (miss.outcome !== 'miss') throw new Error(miss.outcome);
    expect(miss.ticket.sid).toBe(storedSessionId(TOKEN));
    expect(cache.store(miss.ticket, tokenUse())).toBe(true);
    expect(cache.lookupToken(TOKEN, 'app').outcome).toBe('hit');
    // a cookie whose value were the token is another key
    expect(cache.lookup(`gatehouse=${TOKEN}`, 'app').outcome).toBe('bypass');
    cache.revoke([storedSessionId(TOKEN)]);
    const after = cache.lookupToken(TOKEN, 'app');
    expect(after.outcome).toBe('miss');
    // an answer in flight from before the revocation is not kept
    expect(cache.store(miss.ticket, tokenUse())).toBe(false);
  });
});
