import type { IncomingMessage } from 'node:http';
import { bearerToken, secretMatches } from '../../../common/src/constant-time.js';

/**
 * Whether the request carries `Authorization: Bearer <expected>`, compared in constant time
 * (common/src/constant-time.ts). No `expected` (no token configured): nobody is an internal caller.
 */
export function hasInternalToken(req: IncomingMessage, expected: string | undefined): boolean {
  return secretMatches(bearerToken(req.headers.authorization), expected);
}
