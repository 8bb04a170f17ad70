/**
 * How a request presents an access token: `Authorization: Bearer gatehouse_…` (personal
 * `gatehouse_pat_`, service account `gatehouse_sat_`; their format, records and checks are the
 * session-service's, session-service/src/domain/access-tokens.ts). The one reading of it, used by
 * the gateway (which hands the token to /internal/validate in X-Gatehouse-Authorization) and by
 * the session-service's validate, so the two never disagree about which credential a request
 * presents: one of ours that is malformed is an invalid token to both, never a fallback to the
 * session cookie.
 */

/** An Authorization value that carries one of our tokens (or tries to): never sent upstream. */
export const GATEHOUSE_BEARER = /^\s*Bearer\s+gatehouse_/i;

/** The longest Authorization value the session-service reads as a token. */
const MAX_AUTHORIZATION = 200;
const BEARER = /^Bearer[ ]+(\S+)[ ]*$/i;

/**
 * The access token a request presents: `undefined` when its Authorization carries none of ours
 * (no header, Basic, another Bearer), `null` when it starts like one of ours but is not one the
 * session-service would read (too long, stray characters: refused as an invalid token without
 * asking), else the token.
 */
export function presentedToken(
  authorization: string | string[] | undefined,
): string | null | undefined {
  const value = Array.isArray(authorization) ? authorization[0] : authorization;
  if (value === undefined || !GATEHOUSE_BEARER.test(value)) return undefined;
  if (value.length > MAX_AUTHORIZATION) return null;
  const token = BEARER.exec(value)?.[1];
  return token?.startsWith('gatehouse_') ? token : null;
}

/** A token that came over plain HTTP from another machine (PUBLIC_URL https refuses it). */
const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;
export const isLoopback = (address: string) => LOOPBACK.test(address);
