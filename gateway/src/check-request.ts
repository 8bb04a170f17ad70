import type { IncomingMessage } from 'node:http';
import { type ErrorCode, isErrorCode } from '../../common/src/errors.js';
import { checkHeaderLimits } from '../../common/src/limits.js';
import { type ParsedHost, parseHost } from './host.js';
import { checkRequestTarget, type RequestTarget } from './request-target.js';

/**
 * What every request passes before any route decision (and before /auth/ or the gateway's own
 * endpoints): header limits (431), request-target (400 BAD_PATH), Host (400 BAD_HOST).
 */
/** The gateway's own endpoints live here; no route can send this prefix upstream. */
export const RESERVED_PREFIX = '/_gatehouse';
/** The gateway's public endpoints, matched exactly (case, trailing slash, encoding). */
export const HEALTH_PATH = `${RESERVED_PREFIX}/healthz`;

const BAD_PATH_MESSAGE = 'The request path is not allowed.';

export const isReserved = (t: RequestTarget) => t.segments[0] === '_gatehouse';
export const isAuth = (t: RequestTarget) => t.segments[0] === 'auth';

/** What a request is, once its request-target, Host and header limits were checked. */
export type Checked =
  | { ok: true; target: RequestTarget; host: ParsedHost | undefined }
  | { ok: false; status: number; code: ErrorCode; message: string; reason: string };

type Refusal = Extract<Checked, { ok: false }>;
const refuse = (status: number, code: ErrorCode, message: string, reason: string): Refusal => ({
  ok: false,
  status,
  code,
  message,
  reason,
});

/** Checks made before any route decision: limits, request-target, Host. */
export function checkRequest(req: IncomingMessage): Checked {
  const limits = checkHeaderLimits(req.rawHeaders);
  if (!limits.ok) {
    const code = isErrorCode(limits.code) ? limits.code : 'TOO_MANY_HEADERS';
    return refuse(431, code, limits.message, limits.code);
  }
  const target = checkRequestTarget(req.url);
  if (!target.ok) return refuse(400, 'BAD_PATH', BAD_PATH_MESSAGE, target.reason);
  const host = parseHost(req.rawHeaders);
  if (!host.ok)
    return refuse(
      400,
      'BAD_HOST',
      'The Host header is not a valid host name and port.',
      host.reason,
    );
  return { ok: true, target: target.target, host: host.host };
}

/** A request that passed checkRequest. */
export type CheckedRequest = Extract<Checked, { ok: true }>;
