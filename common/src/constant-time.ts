import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Whether a presented secret equals the expected one, in constant time: the SHA-256 digests are
 * compared, so neither the content nor the length of the secret leaks through timing (a plain
 * timingSafeEqual needs equal lengths, and checking them first tells the length). An empty or
 * missing side never matches: no secret configured means nobody holds it.
 */
export function secretMatches(given: string | undefined, expected: string | undefined): boolean {
  if (!given || !expected) return false;
  return timingSafeEqual(digest(given), digest(expected));
}

/** The token of `Authorization: Bearer <token>`, or undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return typeof authorization === 'string' && authorization.startsWith('Bearer ')
    ? authorization.slice(7)
    : undefined;
}
