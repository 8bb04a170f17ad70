import type { Request, Response } from 'express';
import QRCode from 'qrcode';
import type { Amr } from '../../../common/src/authentication.js';
import { type ErrorCode, GatehouseError } from '../../../common/src/errors.js';
import { NO_STORE } from '../../../common/src/http.js';
import type { Logger } from '../../../common/src/logger.js';
import type { Csrf } from '../csrf.js';
import type { FactorRepository } from '../domain/factors.js';
import type { PendingLogins } from '../domain/pending-logins.js';
import type { SecondFactorProof, SecondFactors, Verification } from '../domain/second-factor.js';
import {
  authenticationOfSession,
  type SessionAuth,
  type SessionRepository,
  type ValidSession,
} from '../domain/session-repository.js';
import { storeCall } from '../domain/store-call.js';
import type { LoginThrottle } from '../domain/throttle.js';
import type { User, UsersRepository } from '../domain/users.js';
import type { CookieSettings } from '../session-middleware.js';

/**
 * What the second-factor handlers share (the login's second step in second-factor.ts, step-up and
 * the security page in security.ts): their dependencies, checking a code under its throttle with
 * its audit events, reading the proof a request carries, and answering a page.
 */
/** A refused step: its code, the message shown, answer headers (such as Retry-After). */
export interface Failure {
  code: ErrorCode;
  message: string;
  headers?: Record<string, string>;
}

/** REQUIRE_SECOND_FACTOR and its grace period. */
export interface SecondFactorPolicy {
  required: boolean;
  graceDays: number;
}

export interface SecondFactorDeps {
  users: UsersRepository;
  sessions: SessionRepository;
  secondFactors: SecondFactors;
  factors: FactorRepository;
  pendingLogins: PendingLogins;
  /** Guesses at codes, per account and address: a throttle of its own (login's limits shape). */
  codeThrottle: LoginThrottle;
  csrf: Csrf;
  cookie: CookieSettings;
  https: boolean;
  policy: SecondFactorPolicy;
  rememberMaxAgeMs: number;
  audit: Logger;
  now: () => number;
  onLogin?: (outcome: 'success' | 'failure' | 'throttled' | 'unavailable') => void;
  /** A session was just created (sid: the cookie's id): back-channel logout indexes it. */
  onSessionStarted?: (sid: string, auth: SessionAuth) => Promise<void>;
}

/** The handlers of a signed-in user's session (requireSession put it in `current`). */
export function sessionHelpers(deps: {
  current: WeakMap<Request, ValidSession>;
  now: () => number;
}) {
  return {
    me(req: Request): ValidSession {
      const session = deps.current.get(req);
      if (!session) throw new GatehouseError('UNAUTHENTICATED');
      return session;
    },
    userOf: (session: ValidSession) => ({
      id: session.auth.userId,
      username: session.auth.username,
    }),
    /**
     * Setting up a factor steps the session up (the user proved the factor), so a session must
     * have proven the password recently to do it: otherwise a stolen password-only cookie could
     * enrol the thief's authenticator and become aal2.
     */
    recentlyAuthenticated: (session: ValidSession) =>
      deps.now() - authenticationOfSession(session.auth).authTime <= RECENT_AUTHENTICATION_MS,
  };
}

/** How recently the password must have been proven to set up a second factor. */
export const RECENT_AUTHENTICATION_MS = 10 * 60_000;

export const bodyOf = (req: Request) =>
  (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;

export function page(res: Response, status: number, html: string): void {
  res.status(status).set('Cache-Control', NO_STORE).type('html').send(html);
}

/** The QR code of an otpauth:// URI, as inline SVG made here: no external service. */
export const qrSvg = (uri: string) => QRCode.toString(uri, { type: 'svg', margin: 2 });

export const FORM_EXPIRED: Failure = {
  code: 'CSRF_TOKEN_INVALID',
  message: 'This form expired. Please try again.',
};

const CODE_MESSAGES: Record<Exclude<Verification, { ok: true }>['reason'], string> = {
  missing: 'Enter the code from your authenticator app, or a recovery code.',
  invalid: 'That code is not valid. Check your app and try again.',
  replayed: 'That code was just used. Wait for the next one.',
  'unknown-credential': 'That security key is not registered for this account.',
  counter: 'That security key was refused: its counter went backwards (it may have been cloned).',
};

/**
 * Checking a code, the same everywhere (login, step-up, enrolment, the security page): the code
 * throttle first (per account and address, in Redis: every instance counts), then the code; a
 * refusal counts as a failure, a success clears the pair; every outcome is audited.
 */
export function createCodeCheck(deps: Pick<SecondFactorDeps, 'codeThrottle' | 'audit'>) {
  const audit = (event: string, req: Request, extra: Record<string, unknown>) =>
    deps.audit.info({ event, ip: req.ip, requestId: req.id, ...extra }, event);

  /** Throttled: the failure to answer, else undefined. */
  async function throttled(req: Request, user: Pick<User, 'id' | 'username'>, context: string) {
    const decision = await storeCall(() => deps.codeThrottle.check(user.username, req.ip ?? ''));
    if (decision.allowed) return undefined;
    audit('mfa.throttled', req, { username: user.username, userId: user.id, context });
    const retry = String(Math.max(1, decision.retryAfterSeconds));
    return {
      code: 'TOO_MANY_ATTEMPTS',
      message: `Too many codes tried. Try again in ${retry} seconds.`,
      headers: { 'Retry-After': retry },
    } satisfies Failure;
  }

  return {
    throttled,
    audit,
    /** `verify` under the throttle; `context` names the flow in the audit log. */
    async check<V extends Verification>(
      req: Request,
      user: Pick<User, 'id' | 'username'>,
      context: string,
      verify: () => Promise<V>,
    ): Promise<{ ok: true; verification: V & { ok: true } } | { ok: false; failure: Failure }> {
      const blocked = await throttled(req, user, context);
      if (blocked) return { ok: false, failure: blocked };
      const ip = req.ip ?? '';
      const verification = await storeCall(verify);
      if (!verification.ok) {
        await storeCall(() => deps.codeThrottle.recordFailure(user.username, ip));
        audit('mfa.failure', req, {
          username: user.username,
          userId: user.id,
          context,
          reason: verification.reason,
        });
        return {
          ok: false,
          failure: { code: 'INVALID_CODE', message: CODE_MESSAGES[verification.reason] },
        };
      }
      await deps.codeThrottle.recordSuccess(user.username, ip).catch(() => {});
      audit('mfa.success', req, {
        username: user.username,
        userId: user.id,
        context,
        method: verification.method,
      });
      if (verification.method === 'recovery_code')
        audit('mfa.recovery_code_used', req, {
          username: user.username,
          userId: user.id,
          context,
          left: verification.recoveryCodesLeft,
        });
      // Narrowed by `ok` above; TypeScript does not carry that into the type parameter.
      return { ok: true, verification: verification as V & { ok: true } };
    },
  };
}

/** The proof a request carries: `totp` and `recovery_code` fields (JSON or form). */
export function proofOf(fields: Record<string, unknown>): SecondFactorProof {
  return { totp: fields.totp, recovery_code: fields.recovery_code };
}

export const hasProof = (proof: SecondFactorProof) =>
  [proof.totp, proof.recovery_code].some((v) => typeof v === 'string' && v.trim() !== '');

/** The methods a verification adds (RFC 8176: a TOTP or a recovery code is `otp`). */
export const METHODS_OF_CODE: readonly Amr[] = ['otp'];

/** What a verification proved: `otp` for codes; `hwk` for WebAuthn, plus `user` when verified. */
export const methodsOf = (verification: Verification & { ok: true }): Amr[] =>
  verification.method === 'webauthn'
    ? ['hwk', ...(verification.userVerified ? (['user'] as const) : [])]
    : [...METHODS_OF_CODE];
