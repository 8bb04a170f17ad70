import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Whether the request carries `Authorization: Bearer <expected>`. Compares SHA-256 digests in
 * constant time, so neither the content nor the length of the token leaks through timing (a
 * plain timingSafeEqual needs equal lengths, and checking them first tells the length). No
 * `expected` (no token configured): nobody is an internal caller.
 */
export function hasInternalToken(req: IncomingMessage, expected: string | undefined): boolean {
  const header = req.headers.authorization;
  if (!expected || typeof header !== 'string' || !header.startsWith('Bearer ')) return false;
  return timingSafeEqual(digest(header.slice(7)), digest(expected));
}
