import { Secret, TOTP } from 'otpauth';

/**
 * TOTP as authenticator apps speak it (RFC 6238): HMAC-SHA-1, 6 digits, 30-second steps, a
 * 160-bit secret (RFC 4226 §4 recommends it). The arithmetic is the `otpauth` package's; what this
 * module adds is the policy: a code is accepted one step either side of `now` (clock skew), and
 * the step it matched is returned, so the caller can refuse its second use (factors.ts claims
 * each step once per user, in Redis, so every instance agrees).
 */
export const TOTP_PERIOD_SECONDS = 30;
export const TOTP_DIGITS = 6;
/** Steps accepted either side of the current one. */
export const TOTP_WINDOW = 1;

const totpOf = (secret: string) =>
  new TOTP({
    secret: Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
  });

/** A new secret, base32 (what the otpauth:// URI and manual entry carry). */
export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

/** The otpauth:// URI an authenticator app scans: `issuer:label`, issuer also as a parameter. */
export function totpUri(secret: string, issuer: string, label: string): string {
  return new TOTP({
    issuer,
    label,
    secret: Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
  }).toString();
}

/** The time step of `now` (ms since the epoch). */
export const totpStep = (now: number) => Math.floor(now / 1000 / TOTP_PERIOD_SECONDS);

/** What a user typed, as digits: spaces and dashes dropped ("123 456"); null when not a code. */
export function totpCode(input: unknown): string | null {
  if (typeof input !== 'string' || input.length > 32) return null;
  const code = input.replace(/[\s-]/g, '');
  return new RegExp(`^\\d{${TOTP_DIGITS}}$`).test(code) ? code : null;
}

/**
 * The step whose code `code` is, when it is one of the steps within TOTP_WINDOW of `now`; null
 * otherwise. Comparison is constant-time (otpauth's validate uses timingSafeEqual).
 */
export function matchTotp(secret: string, code: string, now: number): number | null {
  const delta = totpOf(secret).validate({ token: code, timestamp: now, window: TOTP_WINDOW });
  return delta === null ? null : totpStep(now) + delta;
}
