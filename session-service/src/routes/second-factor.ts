/**
 * The login's second step (and enrolment when REQUIRE_SECOND_FACTOR says so). Over 300 lines on
 * purpose: its handlers share one closure over the pending login (its cookie, its pages, its
 * single use); checking codes and the shared dependencies are code-check.ts.
 */
import type { Request, Response } from 'express';
import {
  type Amr,
  authenticationBody,
  authenticationOf,
} from '../../../common/src/authentication.js';
import { ERRORS } from '../../../common/src/errors.js';
import { NO_STORE, sendError } from '../../../common/src/http.js';
import type { PendingLogin } from '../domain/pending-logins.js';
import { PENDING_LOGIN_TTL_MS } from '../domain/pending-logins.js';
import type { Verification } from '../domain/second-factor.js';
import {
  authenticationOfSession,
  type IdentityProviderSession,
  type SessionAuth,
} from '../domain/session-repository.js';
import { storeCall } from '../domain/store-call.js';
import type { User } from '../domain/users.js';
import { startSession } from '../session-middleware.js';
import {
  continuePage,
  enrolPage,
  recoveryCodesPage,
  recoveryCodeUsedPage,
  secondStepPage,
} from '../views-second-factor.js';
import { isForm, seeOther } from './auth.js';

import {
  bodyOf,
  createCodeCheck,
  type Failure,
  FORM_EXPIRED,
  hasProof,
  methodsOf,
  page,
  proofOf,
  qrSvg,
  type SecondFactorDeps,
} from './code-check.js';

export type { Failure, SecondFactorDeps, SecondFactorPolicy } from './code-check.js';

/**
 * The login after its password was right: straight to a session, or to a second step. Owns the
 * pending login (its cookie, its pages) and the policy REQUIRE_SECOND_FACTOR.
 */
export function createLoginSteps(deps: SecondFactorDeps) {
  const codes = createCodeCheck(deps);
  const { audit } = codes;
  const pendingCookie = deps.https ? '__Secure-gatehouse-login' : 'gatehouse-login';
  // Sent back only to /auth/login/…: never to the app behind the gateway. Host-only, HttpOnly.
  const pendingAttrs = (req: Request) => ({
    httpOnly: true,
    sameSite: 'strict' as const,
    path: '/auth/login',
    secure: deps.https || req.secure,
  });
  const clearPending = (req: Request, res: Response) =>
    res.clearCookie(pendingCookie, pendingAttrs(req));

  async function pendingOf(req: Request): Promise<{ token: string; login: PendingLogin } | null> {
    const token = (req.cookies as Record<string, unknown> | undefined)?.[pendingCookie];
    const login = await deps.pendingLogins.get(token);
    return login && typeof token === 'string' ? { token, login } : null;
  }

  /** A session for `user`, proven by `methods` just now (the login transaction). */
  async function signIn(
    req: Request,
    user: Pick<User, 'id' | 'username' | 'groups' | 'email'>,
    options: {
      methods: readonly Amr[];
      remember: boolean;
      ip: string;
      ua: string;
      idp?: IdentityProviderSession | undefined;
    },
  ): Promise<SessionAuth> {
    const t = deps.now();
    const auth: SessionAuth = {
      userId: user.id,
      username: user.username,
      groups: user.groups,
      email: user.email,
      createdAt: t,
      amr: authenticationOf(options.methods, t).amr,
      authTime: t,
      ...(options.remember ? { remember: true } : {}),
      ip: options.ip,
      ua: options.ua,
      ...(options.idp ? { idp: options.idp } : {}),
    };
    try {
      await startSession(
        req,
        deps.sessions,
        auth,
        options.remember ? deps.rememberMaxAgeMs : undefined,
      );
    } catch (err) {
      deps.onLogin?.('unavailable');
      throw err;
    }
    await deps.onSessionStarted?.(req.sessionID, auth);
    audit('login.success', req, {
      username: user.username,
      userId: user.id,
      remember: options.remember,
      amr: auth.amr,
      ...(auth.idp ? { provider: auth.idp.provider } : {}),
    });
    deps.onLogin?.('success');
    return auth;
  }

  /** When the user's grace period to enrol ends (REQUIRE_SECOND_FACTOR), ms since the epoch. */
  async function enrolBy(userId: string): Promise<number> {
    const start = await deps.factors.graceStart(userId, deps.now());
    return start + deps.policy.graceDays * 86_400_000;
  }

  /**
   * `viaProvider`: the browser came back from an identity provider (a cross-site navigation).
   * A redirect would keep the request chain cross-site and the browser would withhold the
   * SameSite=Strict pending-login cookie on the next page; a page of ours that moves on makes it
   * a same-site navigation (continuePage).
   */
  async function startPending(
    req: Request,
    res: Response,
    login: PendingLogin,
    to: string,
    viaProvider = false,
  ) {
    const token = await deps.pendingLogins.create(login);
    res.cookie(pendingCookie, token, { ...pendingAttrs(req), maxAge: PENDING_LOGIN_TTL_MS });
    audit(
      login.needs === 'enrolment' ? 'login.mfa_enrolment_required' : 'login.mfa_required',
      req,
      {
        username: login.username,
        userId: login.userId,
      },
    );
    if (viaProvider) return page(res, 200, continuePage(to));
    seeOther(res, to);
  }

  /** The pending login's page again, with the failure (a form) or the error (JSON). */
  function refuse(req: Request, res: Response, failure: Failure, render: () => Promise<string>) {
    if (!isForm(req)) {
      sendError(req, res, failure.code, {
        message: failure.message,
        json: true,
        ...(failure.headers ? { headers: failure.headers } : {}),
      });
      return;
    }
    res.set(failure.headers ?? {});
    return render().then((html) => page(res, ERRORS[failure.code].status, html));
  }

  /** What a form sees once signed in: where it was going, or the recovery codes left first. */
  function afterSignIn(res: Response, rd: string, verification?: Verification & { ok: true }) {
    if (verification?.method === 'recovery_code')
      return page(
        res,
        200,
        recoveryCodeUsedPage({ left: verification.recoveryCodesLeft ?? 0, next: rd }),
      );
    seeOther(res, rd);
  }

  /** The second step's page: a code form when the user has TOTP, a key button when WebAuthn. */
  async function secondStepView(req: Request, res: Response, login: PendingLogin, error?: string) {
    const status = await storeCall(() => deps.secondFactors.status(login.userId));
    return secondStepPage({
      csrfToken: deps.csrf.token(req, res),
      totp: status.totp,
      webauthn: status.webauthn > 0,
      ...(error ? { error } : {}),
    });
  }

  async function enrolView(req: Request, res: Response, login: PendingLogin, error?: string) {
    const { secret, uri } = await deps.secondFactors.startEnrolment(login.userId, login.username);
    return enrolPage({
      action: '/auth/login/enrol',
      csrfToken: deps.csrf.token(req, res),
      secret,
      uri,
      qrSvg: await qrSvg(uri),
      required: true,
      ...(error ? { error } : {}),
    });
  }

  /** A wrong code on a pending login: counted there too; past its tries, the user starts over. */
  async function failPending(
    req: Request,
    res: Response,
    pending: { token: string; login: PendingLogin },
    failure: Failure,
    render: () => Promise<string>,
  ) {
    const alive =
      failure.code === 'TOO_MANY_ATTEMPTS' ||
      (await deps.pendingLogins.fail(pending.token, pending.login));
    deps.onLogin?.(failure.code === 'TOO_MANY_ATTEMPTS' ? 'throttled' : 'failure');
    if (!alive) {
      clearPending(req, res);
      return refuse(
        req,
        res,
        { code: 'INVALID_CODE', message: 'Too many wrong codes. Sign in again.' },
        async () =>
          secondStepPage({
            csrfToken: deps.csrf.token(req, res),
            totp: true,
            webauthn: false,
            error: 'Too many wrong codes. Sign in again.',
          }),
      );
    }
    return refuse(req, res, failure, render);
  }

  return {
    signIn,
    codes,
    enrolBy,

    /**
     * The password was right. A user with a second factor: JSON callers complete it in the same
     * call (`totp` or `recovery_code`, else 401 MFA_REQUIRED), forms go to the second step (a
     * pending login, never a session). Without one: a session, unless REQUIRE_SECOND_FACTOR's
     * grace period is over (enrol first: forms go to the enrolment step, JSON gets 403).
     */
    async afterPassword(
      req: Request,
      res: Response,
      ctx: {
        user: User;
        remember: boolean;
        rd: string;
        fields: Record<string, unknown>;
        /** The first step's methods when not a password (a provider's: oidc-claims.ts methodsOf). */
        methods?: Amr[];
        /** A browser that is not posting a form (a provider's callback): pages, not JSON. */
        browser?: boolean;
        idp?: IdentityProviderSession;
      },
    ) {
      const { user, remember, rd, fields, idp } = ctx;
      const first: Amr[] = ctx.methods ?? ['pwd'];
      const form = ctx.browser === true || isForm(req);
      const ip = req.ip ?? '';
      const ua = String(req.headers['user-agent'] ?? '').slice(0, 256);
      const pending = (needs: PendingLogin['needs']): PendingLogin => ({
        userId: user.id,
        username: user.username,
        needs,
        passwordAt: deps.now(),
        rd,
        remember,
        ip,
        ua,
        failures: 0,
        ...(ctx.methods ? { firstFactor: first } : {}),
        ...(idp ? { idp } : {}),
      });
      // The provider checked a second factor already (its amr or acr): no second step here.
      if (authenticationOf(first, 0).acr === 'aal2') {
        await signIn(req, user, { methods: first, remember, ip, ua, idp });
        return seeOther(res, rd);
      }
      const status = await storeCall(() => deps.secondFactors.status(user.id));

      if (status.totp || status.webauthn > 0) {
        if (form)
          return startPending(
            req,
            res,
            pending('second-factor'),
            '/auth/login/second-factor',
            ctx.browser,
          );
        const proof = proofOf(fields);
        if (!hasProof(proof)) {
          audit('login.mfa_required', req, { username: user.username, userId: user.id });
          const methods = [
            ...(status.totp ? ['totp'] : []),
            ...(status.recoveryCodesLeft > 0 ? ['recovery_code'] : []),
            ...(status.webauthn > 0 ? ['webauthn'] : []),
          ];
          res
            .status(ERRORS.MFA_REQUIRED.status)
            .set('Cache-Control', NO_STORE)
            .json({ error: 'MFA_REQUIRED', message: ERRORS.MFA_REQUIRED.message, methods });
          return;
        }
        const checked = await codes.check(req, user, 'login', () =>
          deps.secondFactors.verify(user.id, proof),
        );
        if (!checked.ok) {
          deps.onLogin?.(checked.failure.code === 'TOO_MANY_ATTEMPTS' ? 'throttled' : 'failure');
          return refuse(req, res, checked.failure, async () => '');
        }
        const auth = await signIn(req, user, {
          methods: [...first, 'otp'],
          remember,
          ip,
          ua,
          idp,
        });
        return res
          .status(200)
          .set('Cache-Control', NO_STORE)
          .json({
            user: { id: user.id, username: user.username, groups: user.groups, email: user.email },
            authentication: authenticationBody(authenticationOfSession(auth)),
            ...(checked.verification.method === 'recovery_code'
              ? { recoveryCodesLeft: checked.verification.recoveryCodesLeft }
              : {}),
          });
      }

      const deadline = deps.policy.required ? await storeCall(() => enrolBy(user.id)) : undefined;
      if (deadline !== undefined && deps.now() >= deadline) {
        if (form)
          return startPending(req, res, pending('enrolment'), '/auth/login/enrol', ctx.browser);
        audit('login.mfa_enrolment_required', req, { username: user.username, userId: user.id });
        return sendError(req, res, 'MFA_ENROLMENT_REQUIRED', { json: true });
      }
      const auth = await signIn(req, user, { methods: first, remember, ip, ua, idp });
      if (form)
        return seeOther(
          res,
          deadline === undefined ? rd : `/auth/security/totp?rd=${encodeURIComponent(rd)}`,
        );
      res.status(200).json({
        user: { id: user.id, username: user.username, groups: user.groups, email: user.email },
        authentication: authenticationBody(authenticationOfSession(auth)),
        ...(deadline === undefined
          ? {}
          : { secondFactor: { required: true, enrolBy: new Date(deadline).toISOString() } }),
      });
    },

    /** GET /auth/login/second-factor: the code form of a pending login. */
    async showSecondStep(req: Request, res: Response) {
      const pending = await storeCall(() => pendingOf(req));
      if (pending?.login.needs !== 'second-factor') return seeOther(res, '/auth/login');
      page(res, 200, await secondStepView(req, res, pending.login));
    },

    /** POST /auth/login/second-factor: the code; right, the session (used once). */
    submitSecondStep: (req: Request, res: Response) =>
      completePending(req, res, 'second-factor', {
        context: 'login',
        render: (login, error) => secondStepView(req, res, login, error),
        verify: (login) => deps.secondFactors.verify(login.userId, proofOf(bodyOf(req))),
        done: (login, verification) => afterSignIn(res, login.rd, verification),
      }),

    pendingOf,

    /**
     * POST /auth/login/webauthn: the pending login's second step with a security key or passkey
     * (`verify` checks the assertion against the challenge bound to the pending login); JSON in,
     * `{ location }` out.
     */
    submitWebauthnStep: <V extends Verification>(
      req: Request,
      res: Response,
      verify: (login: PendingLogin, token: string) => Promise<V>,
    ) =>
      completePending(req, res, 'second-factor', {
        context: 'login',
        render: (login, error) => secondStepView(req, res, login, error),
        verify,
        done: (login) =>
          res.status(200).set('Cache-Control', NO_STORE).json({ location: login.rd }),
      }),

    /** GET /auth/login/enrol: REQUIRE_SECOND_FACTOR past its grace: set one up to sign in. */
    async showEnrolStep(req: Request, res: Response) {
      const pending = await storeCall(() => pendingOf(req));
      if (pending?.login.needs !== 'enrolment') return seeOther(res, '/auth/login');
      page(res, 200, await enrolView(req, res, pending.login));
    },

    /** POST /auth/login/enrol: the first code confirms the factor; then the session. */
    submitEnrolStep: (req: Request, res: Response) =>
      completePending(req, res, 'enrolment', {
        context: 'enrol',
        render: (login, error) => enrolView(req, res, login, error),
        verify: async (login) => {
          const confirmed = await deps.secondFactors.confirmEnrolment(
            login.userId,
            bodyOf(req).totp,
          );
          if (confirmed.ok)
            audit('mfa.enrolled', req, {
              username: login.username,
              userId: login.userId,
              context: 'login',
            });
          return confirmed;
        },
        done: (login, verification) =>
          page(
            res,
            200,
            recoveryCodesPage({
              codes: verification.recoveryCodes,
              next: login.rd,
            }),
          ),
      }),
  };

  /**
   * The POST of a pending login's step: its form token, then `verify` under the code throttle
   * (a wrong code also counts against the pending login), then the pending login is used up (one
   * request wins), then the session (pwd + otp), then `done` answers.
   */
  async function completePending<V extends Verification>(
    req: Request,
    res: Response,
    needs: PendingLogin['needs'],
    step: {
      context: string;
      render: (login: PendingLogin, error?: string) => Promise<string> | string;
      verify: (login: PendingLogin, token: string) => Promise<V>;
      done: (login: PendingLogin, verification: V & { ok: true }) => unknown;
    },
  ) {
    const pending = await storeCall(() => pendingOf(req));
    if (pending?.login.needs !== needs) return seeOther(res, '/auth/login');
    const { login } = pending;
    const render = async (error?: string) => step.render(login, error);
    if (!deps.csrf.valid(req))
      return refuse(req, res, FORM_EXPIRED, () => render(FORM_EXPIRED.message));
    const user = { id: login.userId, username: login.username };
    const checked = await codes.check(req, user, step.context, () =>
      step.verify(login, pending.token),
    );
    if (!checked.ok)
      return failPending(req, res, pending, checked.failure, () => render(checked.failure.message));
    // Used once: of two requests racing with the same pending login, one gets the session.
    if (!(await storeCall(() => deps.pendingLogins.consume(pending.token))))
      return seeOther(res, '/auth/login');
    clearPending(req, res);
    const current = await freshUser(login);
    if (!current) return seeOther(res, '/auth/login');
    await signIn(req, current, {
      methods: [...(login.firstFactor ?? ['pwd']), ...methodsOf(checked.verification)],
      remember: login.remember,
      ip: login.ip,
      ua: login.ua,
      idp: login.idp,
    });
    return step.done(login, checked.verification);
  }

  /** The user as the users file says now (disabled or removed meanwhile: no session). */
  async function freshUser(login: PendingLogin) {
    const user = await deps.users.findById(login.userId);
    return user && !user.disabled ? user : null;
  }
}

export type LoginSteps = ReturnType<typeof createLoginSteps>;
