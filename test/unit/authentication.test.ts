import { describe, expect, it } from 'vitest';
import {
  authenticationBody,
  authenticationClaims,
  authenticationHeaders,
  authenticationOf,
  missingFor,
  parseAuthenticationBody,
  stepUp,
} from '../../common/src/authentication.js';

const T = Date.UTC(2026, 10, 30, 12, 0, 0);

describe('authenticationOf: methods -> amr and acr', () => {
  it.each([
    [['pwd'], ['pwd'], 'aal1'],
    [['pwd', 'otp'], ['pwd', 'otp', 'mfa'], 'aal2'],
    [['otp', 'pwd', 'otp'], ['pwd', 'otp', 'mfa'], 'aal2'],
    [['pwd', 'hwk'], ['pwd', 'hwk', 'mfa'], 'aal2'],
    // a passkey with user verification: possession plus PIN/biometrics
    [['hwk', 'user'], ['hwk', 'user', 'mfa'], 'aal2'],
    // a security key touched without user verification is one factor
    [['hwk'], ['hwk'], 'aal1'],
    // user verification without a credential proves nothing
    [['pwd', 'user'], ['pwd', 'user'], 'aal1'],
    // mfa is derived, never taken from the input; unknown names are dropped
    [['pwd', 'mfa', 'sms', 'MFA'], ['pwd'], 'aal1'],
  ])('%j -> %j %s', (methods, amr, acr) => {
    expect(authenticationOf(methods, T)).toEqual({ amr, acr, authTime: T });
  });

  it.each([[[]], [['mfa']], [['sms', 'face']]])('%j is no authentication', (methods) => {
    expect(() => authenticationOf(methods, T)).toThrow(/at least one method/);
  });

  it('a step-up adds the method and moves auth_time', () => {
    const later = T + 60_000;
    expect(stepUp(authenticationOf(['pwd'], T), 'otp', later)).toEqual({
      amr: ['pwd', 'otp', 'mfa'],
      acr: 'aal2',
      authTime: later,
    });
  });
});

describe('missingFor: what a route may require', () => {
  const pwd = authenticationOf(['pwd'], T);
  const totp = authenticationOf(['pwd', 'otp'], T);
  const key = authenticationOf(['pwd', 'hwk'], T);
  const passkey = authenticationOf(['hwk', 'user'], T);
  it.each([
    [pwd, 'password', undefined],
    [pwd, 'second-factor', 'second-factor'],
    [pwd, 'webauthn', 'webauthn'],
    [totp, 'second-factor', undefined],
    [totp, 'webauthn', 'webauthn'],
    [key, 'second-factor', undefined],
    [key, 'webauthn', undefined],
    [passkey, 'second-factor', undefined],
    [passkey, 'webauthn', undefined],
  ] as const)('%j on %s -> %s', (auth, requirement, missing) => {
    expect(missingFor(auth, requirement, undefined, T + 3_600_000)).toBe(missing);
  });

  it.each([
    [300, T + 300_000, undefined],
    [300, T + 300_001, 'recent-authentication'],
    [0, T, undefined],
    [0, T + 1, 'recent-authentication'],
  ] as const)('maxAge %i s at +%i ms -> %s', (maxAge, now, missing) => {
    expect(missingFor(totp, 'second-factor', maxAge, now)).toBe(missing);
  });

  it('asks for the missing factor before the age', () => {
    expect(missingFor(pwd, 'second-factor', 1, T + 10_000)).toBe('second-factor');
  });
});

describe('what backends receive', () => {
  const auth = authenticationOf(['pwd', 'otp'], T + 999);
  it('headers, claims and the validate body say the same', () => {
    expect(authenticationHeaders(auth)).toEqual({
      'x-auth-request-amr': 'pwd,otp,mfa',
      'x-auth-request-acr': 'aal2',
      'x-auth-request-auth-time': String(T / 1000),
    });
    expect(authenticationClaims(auth)).toEqual({
      amr: ['pwd', 'otp', 'mfa'],
      acr: 'aal2',
      auth_time: T / 1000,
    });
    expect(parseAuthenticationBody(authenticationBody(auth))).toEqual(auth);
  });

  it.each([
    null,
    'pwd',
    {},
    { amr: 'pwd', authTime: new Date(T).toISOString() },
    { amr: ['pwd'], authTime: 'yesterday' },
    { amr: ['pwd'], authTime: T },
    { amr: [], authTime: new Date(T).toISOString() },
    { amr: [1, 2], authTime: new Date(T).toISOString() },
  ])('a malformed body %j is no authentication', (body) => {
    expect(parseAuthenticationBody(body)).toBeUndefined();
  });

  it('the acr of a body is derived again, never trusted', () => {
    const body = { amr: ['pwd'], acr: 'aal2', authTime: new Date(T).toISOString() };
    expect(parseAuthenticationBody(body)?.acr).toBe('aal1');
  });
});
