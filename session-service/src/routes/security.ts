/**
 * Step-up and the account's security pages. Over 300 lines on purpose: the handlers share one
 * closure (the session in hand, the recent-authentication rule, the pages they answer with);
 * checking codes and the shared dependencies are code-check.ts.
 */
import type { Request, Response } from 'express';
import { type Amr, authenticationBody } from '../../../common/src/authentication.js';
import { ERRORS } from '../../../common/src/errors.js';
import { sendError, wantsHtml } from '../../../common/src/http.js';
import type { Logger } from '../../../common/src/logger.js';
import type { Csrf } from '../csrf.js';
import { PASSWORD_MAX, type PasswordVerifier } from '../domain/passwords.js';
import { safeRedirect } from '../domain/redirects.js';
import type { SecondFactors } from '../domain/second-factor.js';
import type { SessionRepository, ValidSession } from '../domain/session-repository.js';
import { storeCall } from '../domain/store-call.js';
import type { LoginThrottle } from '../domain/throttle.js';
import type { UsersRepository } from '../domain/users.js';
import type { Webauthn } from '../domain/webauthn.js';
import type { DirectoryLogin } from '../identity-recheck.js';
import {
  enrolPage,
  recoveryCodesPage,
  recoveryCodeUsedPage,
  type StepUpNeed,
  stepUpPage,
  webauthnRequiredPage,
} from '../views-second-factor.js';
import { isForm, seeOther } from './auth.js';
import {
  bodyOf,
  type Failure,
  METHODS_OF_CODE,
  page,
  proofOf,
  qrSvg,
  type SecondFactorPolicy,
  sessionHelpers,
} from './code-check.js';
import type { LoginSteps } from './second-factor.js';
import { createSecurityView, lastRequiredFactor } from './security-keys.js';

export interface SecurityDeps {
  users: UsersRepository;
  verifier: PasswordVerifier;
  sessions: SessionRepository;
  secondFactors: SecondFactors;
  webauthn: Webauthn;
  steps: LoginSteps;
  /** The password throttle (a re-authentication is a password guess like any). */
  throttle: LoginThrottle;
  csrf: Csrf;
  policy: SecondFactorPolicy;
  allowedRedirectHosts: readonly string[];
  audit: Logger;
  now: () => number;
  /** The caller's session, set by requireSession (routes/sessions.ts). */
  current: WeakMap<Request, ValidSession>;
  /** A directory user's password is the directory's to check (identity-recheck.ts). */
  directoryLogin?: DirectoryLogin | undefined;
}

export { RECENT_AUTHENTICATION_MS } from './code-check.js';

const NEEDS = ['second-factor', 'webauthn', 'recent-authentication'] as const;
type Need = (typeof NEEDS)[number];
const needOf = (value: unknown): Need | null =>
  value === undefined || value === ''
    ? 'second-factor'
    : (NEEDS as readonly unknown[]).includes(value)
      ? (value as Need)
      : null;

/**
 * The step-up page (`/auth/step-up?rd=&need=`) and the account's security pages (`/auth/security`:
 * enrol TOTP, regenerate recovery codes, turn it off). Every page needs a session (requireSession
 * before these handlers); forms carry the CSRF token bound to it.
 */
export function createSecurityHandlers(deps: SecurityDeps) {
  const { codes } = deps.steps;
  const { audit } = codes;
  const rdOf = (value: unknown) => safeRedirect(value, deps.allowedRedirectHosts);
  const { me, userOf, recentlyAuthenticated } = sessionHelpers(deps);
  const reauthenticateTo = (back: string) =>
    `/auth/step-up?need=recent-authentication&rd=${encodeURIComponent(back)}`;

  /** A form gets its page again with the message; JSON the error. */
  async function refuse(
    req: Request,
    res: Response,
    failure: Failure,
    render: (error: string) => Promise<string> | string,
  ) {
    res.set(failure.headers ?? {});
    if (!wantsHtml(req) || req.is('application/json') === 'application/json')
      return sendError(req, res, failure.code, { message: failure.message, json: true });
    page(res, ERRORS[failure.code].status, await render(failure.message));
  }

  async function enrolView(
    req: Request,
    res: Response,
    session: ValidSession,
    rd: string,
    error?: string,
  ) {
    const { secret, uri } = await deps.secondFactors.startEnrolment(
      session.auth.userId,
      session.auth.username,
    );
    const enrolBy = deps.policy.required
      ? await deps.steps.enrolBy(session.auth.userId)
      : undefined;
    return enrolPage({
      action: '/auth/security/totp',
      csrfToken: deps.csrf.token(req, res),
      secret,
      uri,
      qrSvg: await qrSvg(uri),
      rd,
      ...(enrolBy !== undefined ? { enrolBy } : {}),
      ...(error ? { error } : {}),
    });
  }

  const securityView = createSecurityView(deps);

  function stepUpView(
    req: Request,
    res: Response,
    need: StepUpNeed,
    rd: string,
    withCode: boolean,
    withKey: boolean,
    error?: string,
  ) {
    return stepUpPage({
      need,
      rd,
      csrfToken: deps.csrf.token(req, res),
      username: me(req).auth.username,
      withCode,
      withKey,
      ...(error ? { error } : {}),
    });
  }

  return {
    /** GET /auth/step-up?rd=&need=: what the gateway sends a session that needs more. */
    async showStepUp(req: Request, res: Response) {
      const session = me(req);
      const rd = rdOf(req.query.rd);
      const need = needOf(req.query.need);
      if (need === null)
        return sendError(req, res, 'BAD_REQUEST', {
          message: 'need must be second-factor, webauthn or recent-authentication.',
        });
      // A provider's user proves a recent sign-in at the provider (prompt=login, max_age=0).
      if (need === 'recent-authentication' && session.auth.idp)
        return seeOther(
          res,
          `/auth/oidc/${encodeURIComponent(session.auth.idp.provider)}/reauth?rd=${encodeURIComponent(rd)}`,
        );
      const status = await storeCall(() => deps.secondFactors.status(session.auth.userId));
      const [enrolled, withKey] = [status.totp, status.webauthn > 0];
      if (need === 'webauthn') {
        // JSON clients cannot run the ceremony from here; a browser without a key adds one first.
        if (!wantsHtml(req)) return sendError(req, res, 'WEBAUTHN_REQUIRED');
        if (!withKey) return page(res, ERRORS.WEBAUTHN_REQUIRED.status, webauthnRequiredPage(rd));
        return page(res, 200, stepUpView(req, res, need, rd, false, true));
      }
      // No factor yet: enrol first; confirming it is the step-up, then back to rd (no loop).
      if (need === 'second-factor' && !enrolled && !withKey)
        return seeOther(res, `/auth/security/totp?rd=${encodeURIComponent(rd)}`);
      page(res, 200, stepUpView(req, res, need, rd, enrolled, withKey));
    },

    /** POST /auth/step-up: the code (and the password, for recent-authentication); then rd. */
    async submitStepUp(req: Request, res: Response) {
      const session = me(req);
      const fields = bodyOf(req);
      const rd = rdOf(fields.rd);
      const need = needOf(fields.need);
      if (need === null || need === 'webauthn')
        return sendError(req, res, need === 'webauthn' ? 'WEBAUTHN_REQUIRED' : 'BAD_REQUEST');
      const user = userOf(session);
      const status = await storeCall(() => deps.secondFactors.status(user.id));
      const [enrolled, withKey] = [status.totp, status.webauthn > 0];
      const render = (error: string) => stepUpView(req, res, need, rd, enrolled, withKey, error);
      if (need === 'second-factor' && !enrolled) {
        if (!withKey) return seeOther(res, `/auth/security/totp?rd=${encodeURIComponent(rd)}`);
        // Only a security key: its own endpoint (POST /auth/step-up/webauthn), never no proof.
        return refuse(
          req,
          res,
          { code: 'INVALID_CODE', message: 'Use your security key or passkey.' },
          render,
        );
      }
      const methods: Amr[] = [];
      if (need === 'recent-authentication') {
        const ip = req.ip ?? '';
        const decision = await storeCall(() => deps.throttle.check(user.username, ip));
        if (!decision.allowed) {
          const retry = String(Math.max(1, decision.retryAfterSeconds));
          audit('step_up.throttled', req, { username: user.username, userId: user.id });
          return refuse(
            req,
            res,
            {
              code: 'TOO_MANY_ATTEMPTS',
              message: `Too many attempts. Try again in ${retry} seconds.`,
              headers: { 'Retry-After': retry },
            },
            render,
          );
        }
        const password = fields.password;
        const record = await deps.users.findById(user.id);
        const ok =
          typeof password === 'string' &&
          password.length > 0 &&
          [...password].length <= PASSWORD_MAX &&
          (record?.source === 'ldap' && deps.directoryLogin
            ? (await deps.directoryLogin(record.username, password))?.id === record.id
            : await deps.verifier.verify(
                record?.source ? null : (record?.passwordHash ?? null),
                password,
              ));
        if (!ok || !record || record.disabled) {
          await storeCall(() => deps.throttle.recordFailure(user.username, ip));
          audit('step_up.failure', req, {
            username: user.username,
            userId: user.id,
            need,
            reason: 'password',
          });
          return refuse(
            req,
            res,
            { code: 'INVALID_CREDENTIALS', message: 'That password is not right.' },
            render,
          );
        }
        methods.push('pwd');
      }
      let used: { left: number } | undefined;
      if (enrolled) {
        const checked = await codes.check(req, user, 'step-up', () =>
          deps.secondFactors.verify(user.id, proofOf(fields)),
        );
        if (!checked.ok) return refuse(req, res, checked.failure, render);
        methods.push(...METHODS_OF_CODE);
        if (checked.verification.method === 'recovery_code')
          used = { left: checked.verification.recoveryCodesLeft ?? 0 };
      }
      const auth = await deps.sessions.stepUp(session.sid, methods, deps.now());
      if (!auth) return sendError(req, res, 'UNAUTHENTICATED');
      audit('step_up.success', req, {
        username: user.username,
        userId: user.id,
        need,
        amr: auth.amr,
      });
      if (req.is('application/json') === 'application/json')
        return res.json({
          authentication: authenticationBody(auth),
          ...(used ? { recoveryCodesLeft: used.left } : {}),
        });
      if (used) return page(res, 200, recoveryCodeUsedPage({ left: used.left, next: rd }));
      seeOther(res, rd);
    },

    /** GET /auth/security: what the user has, and what they can change. */
    async showSecurity(req: Request, res: Response) {
      const session = me(req);
      if (!wantsHtml(req)) {
        const status = await storeCall(() => deps.secondFactors.status(session.auth.userId));
        return res.json(status);
      }
      const { removed, 'key-removed': keyRemoved, 'key-renamed': keyRenamed } = req.query;
      const ended = (n: unknown) => `Ended ${Number(n) || 0} other session(s).`;
      const notice =
        typeof removed === 'string'
          ? `Two-factor authentication is off. ${ended(removed)}`
          : typeof keyRemoved === 'string'
            ? `The security key or passkey is removed: it signs nobody in. ${ended(keyRemoved)}`
            : typeof keyRenamed === 'string'
              ? 'The security key or passkey is renamed.'
              : undefined;
      page(res, 200, await securityView(req, res, session, notice ? { notice } : {}));
    },

    /** GET /auth/security/totp?rd=: the QR code and the first-code form (an enrolled user: back). */
    async showEnrol(req: Request, res: Response) {
      const session = me(req);
      const rd = req.query.rd === undefined ? '/auth/security' : rdOf(req.query.rd);
      if (await storeCall(() => deps.secondFactors.enrolled(session.auth.userId)))
        return seeOther(res, rd);
      if (!recentlyAuthenticated(session))
        return seeOther(res, reauthenticateTo(`/auth/security/totp?rd=${encodeURIComponent(rd)}`));
      page(res, 200, await enrolView(req, res, session, rd));
    },

    /**
     * POST /auth/security/totp: the first code turns TOTP on, steps the session up (the user just
     * proved the factor), and shows the recovery codes once; then rd.
     */
    async submitEnrol(req: Request, res: Response) {
      const session = me(req);
      const fields = bodyOf(req);
      const rd = fields.rd === undefined ? '/auth/security' : rdOf(fields.rd);
      const user = userOf(session);
      if (!recentlyAuthenticated(session)) {
        const back = reauthenticateTo(`/auth/security/totp?rd=${encodeURIComponent(rd)}`);
        if (isForm(req)) return seeOther(res, back);
        return sendError(req, res, 'REAUTHENTICATION_REQUIRED', { json: true });
      }
      const checked = await codes.check(req, user, 'enrol', () =>
        deps.secondFactors.confirmEnrolment(user.id, fields.totp),
      );
      if (!checked.ok)
        return refuse(req, res, checked.failure, (error) =>
          enrolView(req, res, session, rd, error),
        );
      const { recoveryCodes } = checked.verification;
      audit('mfa.enrolled', req, { username: user.username, userId: user.id, context: 'account' });
      await deps.sessions.stepUp(session.sid, METHODS_OF_CODE, deps.now());
      if (req.is('application/json') === 'application/json') return res.json({ recoveryCodes });
      page(res, 200, recoveryCodesPage({ codes: recoveryCodes, next: rd }));
    },

    /** POST /auth/security/recovery-codes: a current code, then ten new codes (the old ones end). */
    async regenerateRecoveryCodes(req: Request, res: Response) {
      const session = me(req);
      const user = userOf(session);
      const checked = await codes.check(req, user, 'recovery-codes', () =>
        deps.secondFactors.verify(user.id, { totp: bodyOf(req).totp }),
      );
      if (!checked.ok)
        return refuse(req, res, checked.failure, (error) =>
          securityView(req, res, session, { error }),
        );
      const recoveryCodes = await storeCall(() =>
        deps.secondFactors.regenerateRecoveryCodes(user.id),
      );
      audit('mfa.recovery_codes_regenerated', req, { username: user.username, userId: user.id });
      if (req.is('application/json') === 'application/json') return res.json({ recoveryCodes });
      page(res, 200, recoveryCodesPage({ codes: recoveryCodes, next: '/auth/security' }));
    },

    /**
     * POST /auth/security/totp/remove: a current code (TOTP or recovery), then TOTP and recovery
     * codes are gone and the user's other sessions end (whoever else holds one may be who the
     * factor kept out).
     */
    async removeTotp(req: Request, res: Response) {
      const session = me(req);
      const user = userOf(session);
      const fields = bodyOf(req);
      const last = await lastRequiredFactor(deps, user.id, 'totp');
      if (last)
        return refuse(req, res, last, (error) => securityView(req, res, session, { error }));
      const code = fields.code ?? fields.totp ?? fields.recovery_code;
      const checked = await codes.check(req, user, 'remove', async () => {
        const asTotp = await deps.secondFactors.verify(user.id, { totp: code });
        return asTotp.ok ? asTotp : deps.secondFactors.verify(user.id, { recovery_code: code });
      });
      if (!checked.ok)
        return refuse(req, res, checked.failure, (error) =>
          securityView(req, res, session, { error }),
        );
      await storeCall(() => deps.secondFactors.remove(user.id));
      const revoked = await deps.sessions.deleteUserSessions(user.id, session.sid);
      audit('mfa.removed', req, { username: user.username, userId: user.id, revoked, by: 'user' });
      if (req.is('application/json') === 'application/json') return res.json({ revoked });
      seeOther(res, `/auth/security?removed=${revoked}`);
    },
  };
}
