/**
 * The gateway → session-service boundary, the gateway's side (gateway/src/validate-answer.ts):
 * every validate answer is a validation, "nobody", a token refusal the client is told, or 503.
 * Anything unexpected fails closed (unavailable), never a pass-through and never "signed out".
 */
import { describe, expect, it } from 'vitest';
import { readValidateAnswer, TokenRefused } from '../../gateway/src/validate-answer.js';

const USER = { id: 'u1', username: 'alice', groups: ['staff'], email: '' };
const SESSION = { createdAt: '2026-11-30T10:00:00.000Z', expiresAt: '2026-11-30T22:00:00.000Z' };
const AUTH = { amr: ['pwd'], authTime: '2026-11-30T10:00:00.000Z' };
const TOKEN = {
  id: 'abc',
  name: 'ci',
  kind: 'personal',
  expiresAt: '2026-12-30T10:00:00.000Z',
  scope: { routes: ['api'], readOnly: true },
};
const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2ln';
const json = (body: unknown) => JSON.stringify(body);
const session = { token: false, signed: false };
const token = { token: true, signed: false };

describe('readValidateAnswer', () => {
  it('a session: the user, the session and how it signed in; the signed identity only when asked', () => {
    const answer = readValidateAnswer(
      {
        status: 200,
        headers: { 'x-auth-request-jwt': JWT },
        text: json({ user: USER, session: SESSION, authentication: AUTH }),
      },
      { token: false, signed: true },
    );
    expect(answer.kind).toBe('valid');
    if (answer.kind !== 'valid') return;
    expect(answer.validation).toMatchObject({ user: USER, session: SESSION, jwt: JWT });
    expect(answer.validation.authentication).toMatchObject({
      amr: ['pwd'],
      authTime: Date.parse(AUTH.authTime),
    });
    const unasked = readValidateAnswer(
      {
        status: 200,
        headers: { 'x-auth-request-jwt': JWT },
        text: json({ user: USER, session: SESSION, authentication: AUTH }),
      },
      session,
    );
    expect(unasked.kind === 'valid' && unasked.validation.jwt).toBe(undefined);
  });

  it('a token: the owner and the token block', () => {
    const answer = readValidateAnswer(
      { status: 200, headers: {}, text: json({ user: USER, token: TOKEN }) },
      token,
    );
    expect(answer).toMatchObject({
      kind: 'valid',
      validation: { user: USER, token: { id: 'abc', scope: { routes: ['api'], readOnly: true } } },
    });
  });

  it.each([
    ['401 UNAUTHENTICATED', 401, json({ error: 'UNAUTHENTICATED' }), session, 'none'],
    ['401 with no body', 401, '', session, 'none'],
    [
      '401 INVALID_INTERNAL_TOKEN',
      401,
      json({ error: 'INVALID_INTERNAL_TOKEN' }),
      session,
      'unavailable',
    ],
    ['503', 503, json({ error: 'SESSION_STORE_UNAVAILABLE' }), session, 'unavailable'],
    ['500', 500, 'oops', session, 'unavailable'],
    ['302', 302, '', session, 'unavailable'],
    ['429 for a session', 429, json({ error: 'TOO_MANY_ATTEMPTS' }), session, 'unavailable'],
    ['429 for a token, another code', 429, json({ error: 'RATE_LIMITED' }), token, 'unavailable'],
    ['403 for a token, another code', 403, json({ error: 'FORBIDDEN' }), token, 'unavailable'],
    ['200 not JSON', 200, '<html>', session, 'unavailable'],
    ['200 null', 200, 'null', session, 'unavailable'],
    ['200 a number', 200, '42', session, 'unavailable'],
    ['200 no user', 200, json({ session: SESSION, authentication: AUTH }), session, 'unavailable'],
    [
      '200 username not a string',
      200,
      json({ user: { ...USER, username: 7 }, session: SESSION, authentication: AUTH }),
      session,
      'unavailable',
    ],
    [
      '200 authentication malformed',
      200,
      json({ user: USER, session: SESSION, authentication: { amr: 'pwd' } }),
      session,
      'unavailable',
    ],
    [
      '200 a session answer for a token',
      200,
      json({ user: USER, session: SESSION, authentication: AUTH }),
      token,
      'unavailable',
    ],
    [
      '200 a token answer carrying authentication',
      200,
      json({ user: USER, token: TOKEN, authentication: AUTH }),
      token,
      'unavailable',
    ],
    [
      '200 token kind unknown',
      200,
      json({ user: USER, token: { ...TOKEN, kind: 'root' } }),
      token,
      'unavailable',
    ],
    [
      '200 token expiry not a date',
      200,
      json({ user: USER, token: { ...TOKEN, expiresAt: 'soon' } }),
      token,
      'unavailable',
    ],
    [
      '200 token scope routes not strings',
      200,
      json({ user: USER, token: { ...TOKEN, scope: { routes: [1] } } }),
      token,
      'unavailable',
    ],
    [
      '200 token groups not strings',
      200,
      json({ user: { ...USER, groups: 'staff' }, token: TOKEN }),
      token,
      'unavailable',
    ],
  ] as const)('%s → %s', (_what, status, text, asked, kind) => {
    expect(readValidateAnswer({ status, headers: {}, text }, asked).kind).toBe(kind);
  });

  it('a session answer without authentication (a session-service from before issue 14) is a password at an unknown time', () => {
    const answer = readValidateAnswer(
      { status: 200, headers: {}, text: json({ user: USER, session: SESSION }) },
      session,
    );
    expect(answer.kind === 'valid' && answer.validation.authentication).toMatchObject({
      amr: ['pwd'],
      authTime: 0,
    });
  });

  it('token refusals the client is told: 429 with a sane Retry-After (else 60), 403 HTTPS_REQUIRED', () => {
    const refused = (status: number, text: string, retryAfter?: string) =>
      readValidateAnswer(
        { status, headers: retryAfter === undefined ? {} : { 'retry-after': retryAfter }, text },
        token,
      );
    const tooMany = refused(429, json({ error: 'TOO_MANY_ATTEMPTS' }), '120');
    expect(tooMany.kind === 'refused' && tooMany.error).toBeInstanceOf(TokenRefused);
    expect(tooMany.kind === 'refused' && tooMany.error.retryAfter).toBe('120');
    for (const odd of ['1e9', '-1', '1234567', 'Wed, 21 Oct 2026 07:28:00 GMT', ''])
      expect(
        ((r) => r.kind === 'refused' && r.error.retryAfter)(
          refused(429, json({ error: 'TOO_MANY_ATTEMPTS' }), odd),
        ),
        odd,
      ).toBe('60');
    const https = refused(403, json({ error: 'HTTPS_REQUIRED' }));
    expect(https.kind === 'refused' && https.error.code).toBe('HTTPS_REQUIRED');
  });

  it('a signed identity that is not a compact JWT is dropped, never passed on', () => {
    for (const jwt of ['not a jwt', `${JWT}\r\nx-evil: 1`, `${JWT}.extra`, ''])
      expect(
        ((r) => r.kind === 'valid' && r.validation.jwt)(
          readValidateAnswer(
            {
              status: 200,
              headers: { 'x-auth-request-jwt': jwt },
              text: json({ user: USER, session: SESSION, authentication: AUTH }),
            },
            { token: false, signed: true },
          ),
        ),
        jwt,
      ).toBe(undefined);
  });
});
