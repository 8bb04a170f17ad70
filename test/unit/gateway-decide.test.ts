/**
 * The gateway's one decision (gateway/src/decide.ts) on facts alone: route, session, allow, and
 * what the route requires of how the session signed in (require, maxAge; issue 14), over tables.
 * The same decision answered to browsers and API clients by a real gateway:
 * test/integration/gateway-step-up.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { type Authentication, authenticationOf } from '../../common/src/authentication.js';
import { type Decision, decide, type RequestFacts } from '../../gateway/src/decide.js';
import { checkRequestTarget } from '../../gateway/src/request-target.js';
import { parseRoutes } from '../../gateway/src/routes-file.js';
import { UNKNOWN_AUTHENTICATION, type Validation } from '../../gateway/src/validate-answer.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const MINUTE = 60_000;

const table = parseRoutes(
  `routes:
  - { id: app, upstream: "http://a" }
  - { id: admin, path: /admin, upstream: "http://a", require: second-factor }
  - { id: keys, path: /keys, upstream: "http://a", require: webauthn }
  - { id: recent, path: /recent, upstream: "http://a", maxAge: 900 }
  - { id: vault, path: /vault, upstream: "http://a", require: second-factor, maxAge: 300 }
  - { id: finance, path: /finance, upstream: "http://a", require: second-factor, allow: { groups: [finance] } }
  - { id: pub, path: /pub, upstream: "http://a", public: true }
`,
  1000,
);

function factsFor(url: string, extra: Partial<RequestFacts> = {}): RequestFacts {
  const check = checkRequestTarget(url);
  if (!check.ok) throw new Error(check.reason);
  return { host: undefined, target: check.target, ...extra };
}

function session(authentication: Authentication, groups: string[] = ['staff']): Validation {
  return {
    user: { id: 'u1', username: 'alice', groups, email: 'alice@example.com' },
    session: { createdAt: new Date(NOW - 2 * 3_600_000).toISOString(), expiresAt: '2026-03-02' },
    authentication,
  };
}

/** Signed in `minutesAgo` with these methods (RFC 8176 names). */
const signedIn = (methods: string[], minutesAgo: number) =>
  authenticationOf(methods, NOW - minutesAgo * MINUTE);

async function decideFor(
  url: string,
  validation: Validation | null | Error,
  extra: Partial<RequestFacts> = {},
): Promise<Decision> {
  return decide(
    factsFor(url, extra),
    table,
    async () => {
      if (validation instanceof Error) throw validation;
      return validation;
    },
    { signedIdentity: true, now: NOW },
  );
}

/** The decision in one line: `ok`, or `CODE need`. */
const summary = (d: Decision) => (d.ok ? d.outcome : `${d.code}${d.need ? ` ${d.need}` : ''}`);

describe('what a route requires of how the session signed in', () => {
  const password = signedIn(['pwd'], 5);
  const passwordLongAgo = signedIn(['pwd'], 60);
  const totp = signedIn(['pwd', 'otp'], 5);
  const totpLongAgo = signedIn(['pwd', 'otp'], 10);
  const securityKey = signedIn(['pwd', 'hwk'], 1);
  const passkey = signedIn(['hwk', 'user'], 2);
  const passkeyNoUv = signedIn(['hwk'], 2);

  it.each([
    // path, session, decision
    ['/', password, 'ok'],
    ['/', passwordLongAgo, 'ok'],
    ['/', UNKNOWN_AUTHENTICATION, 'ok'],
    ['/admin', password, 'STEP_UP_REQUIRED second-factor'],
    ['/admin', passkeyNoUv, 'STEP_UP_REQUIRED second-factor'],
    ['/admin', UNKNOWN_AUTHENTICATION, 'STEP_UP_REQUIRED second-factor'],
    ['/admin', totp, 'ok'],
    ['/admin', securityKey, 'ok'],
    ['/admin', passkey, 'ok'],
    ['/keys', password, 'STEP_UP_REQUIRED webauthn'],
    ['/keys', totp, 'STEP_UP_REQUIRED webauthn'],
    ['/keys', securityKey, 'ok'],
    ['/keys', passkey, 'ok'],
    ['/keys', passkeyNoUv, 'ok'],
    ['/recent', password, 'ok'],
    ['/recent', signedIn(['pwd'], 15), 'ok'],
    [
      '/recent',
      authenticationOf(['pwd'], NOW - 900_001),
      'REAUTHENTICATION_REQUIRED recent-authentication',
    ],
    ['/recent', passwordLongAgo, 'REAUTHENTICATION_REQUIRED recent-authentication'],
    ['/recent', UNKNOWN_AUTHENTICATION, 'REAUTHENTICATION_REQUIRED recent-authentication'],
    // the kind of factor is asked before its age: a second factor, not the password again
    ['/vault', passwordLongAgo, 'STEP_UP_REQUIRED second-factor'],
    ['/vault', totpLongAgo, 'REAUTHENTICATION_REQUIRED recent-authentication'],
    ['/vault', totp, 'ok'],
    ['/admin/users?page=2', password, 'STEP_UP_REQUIRED second-factor'],
    ['/%61dmin', password, 'STEP_UP_REQUIRED second-factor'],
  ] as const)('%s with %o: %s', async (url, authentication, expected) => {
    expect(summary(await decideFor(url, session(authentication)))).toBe(expected);
  });

  it('answers 401 with the code, what is missing, and a message for API clients', async () => {
    const cases = [
      ['/admin', 'STEP_UP_REQUIRED', 'second-factor', /second factor/],
      ['/keys', 'STEP_UP_REQUIRED', 'webauthn', /security key or passkey/],
      ['/recent', 'REAUTHENTICATION_REQUIRED', 'recent-authentication', /recent sign-in/],
    ] as const;
    for (const [url, code, need, message] of cases) {
      const decision = await decideFor(url, session(passwordLongAgo));
      expect(decision).toMatchObject({ ok: false, outcome: 'step_up', status: 401, code, need });
      expect(decision.ok ? '' : decision.message).toMatch(message);
    }
  });

  it('asks nothing of a public route, and never asks the session-service there', async () => {
    let asked = 0;
    const decision = await decide(
      factsFor('/pub/x'),
      table,
      async () => {
        asked += 1;
        return null;
      },
      { signedIdentity: true, now: NOW },
    );
    expect(summary(decision)).toBe('public');
    expect(asked).toBe(0);
  });

  it('sends a visitor without a session to sign in first, not to a step-up', async () => {
    expect(summary(await decideFor('/admin', null))).toBe('UNAUTHENTICATED');
    expect(summary(await decideFor('/recent', null))).toBe('UNAUTHENTICATED');
  });

  it('refuses a user the route does not allow (403), whatever factor they could add', async () => {
    expect(summary(await decideFor('/finance', session(password)))).toBe('FORBIDDEN');
    expect(summary(await decideFor('/finance', session(password, ['finance'])))).toBe(
      'STEP_UP_REQUIRED second-factor',
    );
    expect(summary(await decideFor('/finance', session(totp, ['finance'])))).toBe('ok');
  });

  it('fails closed when the session-service cannot answer', async () => {
    expect(summary(await decideFor('/admin', new Error('down')))).toBe(
      'SESSION_SERVICE_UNAVAILABLE',
    );
  });

  const upgrade = { origin: undefined, secFetchSite: undefined, ownOrigin: 'http://gw' };
  it('refuses a WebSocket upgrade with the same code', async () => {
    expect(summary(await decideFor('/admin', session(password), { upgrade }))).toBe(
      'STEP_UP_REQUIRED second-factor',
    );
    expect(summary(await decideFor('/recent', session(passwordLongAgo), { upgrade }))).toBe(
      'REAUTHENTICATION_REQUIRED recent-authentication',
    );
  });

  it('does not close an open WebSocket as its sign-in ages past maxAge; the kind of factor still counts', async () => {
    const recheck = { recheck: true } as const;
    expect(summary(await decideFor('/recent', session(passwordLongAgo), recheck))).toBe('ok');
    expect(summary(await decideFor('/vault', session(totpLongAgo), recheck))).toBe('ok');
    expect(summary(await decideFor('/admin', session(password), recheck))).toBe(
      'STEP_UP_REQUIRED second-factor',
    );
  });
});
