/**
 * How a session was authenticated, and what a route may require of it: the one vocabulary the
 * session-service (which records it), the validate API, the signed identity and the gateway
 * (which enforces it) share.
 *
 * - `amr`: authentication method references, RFC 8176 values: `pwd` (a password), `otp` (a
 *   one-time code: TOTP or a recovery code), `hwk` (a WebAuthn credential: security key,
 *   platform authenticator or passkey), `user` (the authenticator verified the user: PIN or
 *   biometrics), `mfa` (two or more independent factors were used).
 * - `acr`: the assurance level, NIST SP 800-63B's names: `aal1` (one factor), `aal2` (two
 *   factors, or a passkey with user verification, which is something you have plus something you
 *   know or are).
 * - `authTime`: when the user last proved who they are (sign-in or step-up), epoch milliseconds.
 *
 * A route requires one of REQUIREMENTS, and optionally a `maxAge`: the user must have proved who
 * they are at most that long ago (a re-authentication for sensitive paths).
 */

export const AMR_VALUES = ['pwd', 'otp', 'hwk', 'user', 'mfa'] as const;
export type Amr = (typeof AMR_VALUES)[number];

export type Acr = 'aal1' | 'aal2';

export interface Authentication {
  /** Sorted, without repeats; always at least one method. */
  readonly amr: readonly Amr[];
  readonly acr: Acr;
  /** Epoch milliseconds. */
  readonly authTime: number;
}

/**
 * What a route requires: `password` (any signed-in session: a password, a provider, a passkey),
 * `second-factor` (aal2: password plus TOTP, recovery code or WebAuthn, or a passkey with user
 * verification), `webauthn` (a WebAuthn credential was used: phishing-resistant).
 */
export const REQUIREMENTS = ['password', 'second-factor', 'webauthn'] as const;
export type Requirement = (typeof REQUIREMENTS)[number];

/** What is missing, for the step-up page and the stable API error. */
export type Missing = 'second-factor' | 'webauthn' | 'recent-authentication';

const isAmr = (value: unknown): value is Amr =>
  typeof value === 'string' && (AMR_VALUES as readonly string[]).includes(value);

/** The factors behind the methods: knowledge (pwd), possession (otp, hwk), inherence/PIN (user). */
function factorCount(methods: ReadonlySet<Amr>): number {
  let count = 0;
  if (methods.has('pwd')) count++;
  if (methods.has('otp') || methods.has('hwk')) count++;
  if (methods.has('user') && methods.has('hwk')) count++;
  return count;
}

/**
 * The authentication that `methods` add up to (`mfa` added when two or more factors were used,
 * `acr` derived, never given). Unknown method names are dropped; none left is an error.
 */
export function authenticationOf(methods: Iterable<string>, authTime: number): Authentication {
  const set = new Set<Amr>();
  for (const method of methods) if (isAmr(method) && method !== 'mfa') set.add(method);
  if (set.size === 0) throw new Error('an authentication needs at least one method');
  if (factorCount(set) >= 2) set.add('mfa');
  const amr = AMR_VALUES.filter((m) => set.has(m));
  return { amr, acr: set.has('mfa') ? 'aal2' : 'aal1', authTime };
}

/** The session's authentication after a further method was used just now (a step-up). */
export function stepUp(current: Authentication, method: Amr | Amr[], now: number): Authentication {
  return authenticationOf([...current.amr, ...[method].flat()], now);
}

/**
 * Whether `auth` meets `requirement` (and `maxAgeSeconds`, when given, at `now`): undefined when it
 * does, else what is missing. The kind of factor is checked before its age: a password-only
 * session on a second-factor route is asked for the factor, not for the password again.
 */
export function missingFor(
  auth: Authentication,
  requirement: Requirement,
  maxAgeSeconds: number | undefined,
  now: number,
): Missing | undefined {
  if (requirement === 'second-factor' && auth.acr !== 'aal2') return 'second-factor';
  if (requirement === 'webauthn' && !auth.amr.includes('hwk')) return 'webauthn';
  if (maxAgeSeconds !== undefined && now - auth.authTime > maxAgeSeconds * 1000) {
    return 'recent-authentication';
  }
  return undefined;
}

/** The headers a backend receives (beside the identity headers), values safe as they are. */
export const AUTHENTICATION_HEADERS = [
  'x-auth-request-amr',
  'x-auth-request-acr',
  'x-auth-request-auth-time',
] as const;

export function authenticationHeaders(auth: Authentication): Record<string, string> {
  return {
    'x-auth-request-amr': auth.amr.join(','),
    'x-auth-request-acr': auth.acr,
    'x-auth-request-auth-time': String(Math.floor(auth.authTime / 1000)),
  };
}

/** The JWT claims (OpenID Connect Core 1.0 §2: amr, acr, auth_time in seconds). */
export function authenticationClaims(auth: Authentication) {
  return { amr: [...auth.amr], acr: auth.acr, auth_time: Math.floor(auth.authTime / 1000) };
}

/** As the validate API answers it: `{ amr, acr, authTime }` with authTime an ISO date. */
export function authenticationBody(auth: Authentication) {
  return { amr: [...auth.amr], acr: auth.acr, authTime: new Date(auth.authTime).toISOString() };
}

/** The validate API's body back into an Authentication (the gateway reads it); undefined if malformed. */
export function parseAuthenticationBody(body: unknown): Authentication | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { amr, authTime } = body as { amr?: unknown; authTime?: unknown };
  if (!Array.isArray(amr) || typeof authTime !== 'string') return undefined;
  const time = Date.parse(authTime);
  if (!Number.isFinite(time)) return undefined;
  try {
    return authenticationOf(
      amr.filter((m): m is string => typeof m === 'string'),
      time,
    );
  } catch {
    return undefined;
  }
}
