/**
 * WebAuthn's JSON endpoints, each pair an options call and a verify call (static/webauthn.js runs
 * the browser's side): adding a key on the security page, the login's second step, a step-up, and
 * a passkey sign-in without a password. Every challenge is bound to what asked for it (the
 * session, the pending login, or the passkey sign-in's own cookie) and taken once.
 */
import { randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import type { Amr } from '../../../common/src/authentication.js';
import { GatehouseError } from '../../../common/src/errors.js';
import { NO_STORE, sendError } from '../../../common/src/http.js';
import { ownOrigin } from '../csrf.js';
import { WEBAUTHN_CHALLENGE_TTL_MS } from '../domain/factors.js';
import { safeRedirect } from '../domain/redirects.js';
import type { ValidSession } from '../domain/session-repository.js';
import { storeCall } from '../domain/store-call.js';
import type { LoginThrottle } from '../domain/throttle.js';
import type { UsersRepository } from '../domain/users.js';
import {
  bindingOf,
  type RelyingParty,
  relyingPartyOf,
  type Webauthn,
  type WebauthnUse,
} from '../domain/webauthn.js';
import {
  bodyOf,
  type Failure,
  methodsOf,
  type SecondFactorDeps,
  sessionHelpers,
} from './code-check.js';
import type { LoginSteps } from './second-factor.js';

export interface WebauthnDeps {
  webauthn: Webauthn;
  steps: LoginSteps;
  users: UsersRepository;
  sessions: SecondFactorDeps['sessions'];
  /** The password throttle: a passkey sign-in is a sign-in like any (per address). */
  throttle: LoginThrottle;
  csrf: SecondFactorDeps['csrf'];
  /** PUBLIC_URL: the RP ID and origin; unset, the request's own origin (development). */
  publicUrl: string | undefined;
  https: boolean;
  allowedRedirectHosts: readonly string[];
  now: () => number;
  current: WeakMap<Request, ValidSession>;
}

const WRONG_KEY = 'That security key or passkey was not accepted. Try again.';

export function createWebauthnHandlers(deps: WebauthnDeps) {
  const { codes } = deps.steps;
  const { audit } = codes;
  const rdOf = (value: unknown) => safeRedirect(value, deps.allowedRedirectHosts);
  const passkeyCookie = deps.https ? '__Secure-gatehouse-passkey' : 'gatehouse-passkey';
  const passkeyAttrs = (req: Request) => ({
    httpOnly: true,
    sameSite: 'strict' as const,
    path: '/auth/login/passkey',
    secure: deps.https || req.secure,
  });

  const rpOf = (req: Request): RelyingParty => {
    const rp = relyingPartyOf(deps.publicUrl, ownOrigin(req));
    if (!rp) throw new GatehouseError('BAD_REQUEST');
    return rp;
  };
  const { me, userOf, recentlyAuthenticated } = sessionHelpers(deps);
  const json = (res: Response, body: unknown) =>
    res.status(200).set('Cache-Control', NO_STORE).json(body);
  const fail = (req: Request, res: Response, failure: Failure) => {
    res.set(failure.headers ?? {});
    const message = failure.code === 'INVALID_CODE' ? webauthnMessage(failure) : failure.message;
    return sendError(req, res, failure.code, { message, json: true });
  };
  const webauthnMessage = (failure: Failure) =>
    /counter|not registered/.test(failure.message) ? failure.message : WRONG_KEY;

  /** Verify an assertion; a counter that went backwards is audited on its own (a cloned key?). */
  async function authenticate(req: Request, binding: string): Promise<WebauthnUse> {
    const used = await deps.webauthn.authenticate(
      rpOf(req),
      binding,
      bodyOf(req).credential as never,
    );
    if (!used.ok && used.reason === 'counter')
      audit('webauthn.counter_regression', req, {
        userId: used.userId,
        credentialId: used.credentialId,
      });
    return used;
  }

  return {
    /** POST /auth/security/webauthn/options: options to add a key (a recent sign-in needed). */
    async registrationOptions(req: Request, res: Response) {
      const session = me(req);
      if (!recentlyAuthenticated(session))
        return sendError(req, res, 'REAUTHENTICATION_REQUIRED', { json: true });
      const options = await storeCall(() =>
        deps.webauthn.registrationOptions(
          rpOf(req),
          userOf(session),
          bindingOf('register', session.sid),
        ),
      );
      json(res, options);
    },

    /**
     * POST /auth/security/webauthn `{ name, credential }`: the key is added and the session steps
     * up with it (as enrolling TOTP does; hence the recent sign-in).
     */
    async register(req: Request, res: Response) {
      const session = me(req);
      const user = userOf(session);
      if (!recentlyAuthenticated(session))
        return sendError(req, res, 'REAUTHENTICATION_REQUIRED', { json: true });
      const fields = bodyOf(req);
      const credential = await storeCall(() =>
        deps.webauthn.register(
          rpOf(req),
          user.id,
          bindingOf('register', session.sid),
          fields.credential as never,
          typeof fields.name === 'string' ? fields.name : '',
        ),
      );
      if (!credential) {
        audit('webauthn.registration_failed', req, { username: user.username, userId: user.id });
        return sendError(req, res, 'INVALID_CODE', { message: WRONG_KEY, json: true });
      }
      audit('mfa.enrolled', req, {
        username: user.username,
        userId: user.id,
        context: 'account',
        method: 'webauthn',
        credentialId: credential.id,
        backupEligible: credential.backupEligible,
      });
      await deps.sessions.stepUp(session.sid, ['hwk'], deps.now());
      json(res, {
        location: '/auth/security',
        credential: { id: credential.id, name: credential.name },
      });
    },

    /** POST /auth/step-up/webauthn/options: options for the user's own keys. */
    async stepUpOptions(req: Request, res: Response) {
      const session = me(req);
      const options = await storeCall(() =>
        deps.webauthn.authenticationOptions(
          rpOf(req),
          bindingOf('step-up', session.sid),
          session.auth.userId,
        ),
      );
      json(res, options);
    },

    /** POST /auth/step-up/webauthn `{ rd, credential }`: the session gains hwk (and user). */
    async stepUp(req: Request, res: Response) {
      const session = me(req);
      const user = userOf(session);
      const rd = rdOf(bodyOf(req).rd);
      const checked = await codes.check(req, user, 'step-up', () =>
        authenticate(req, bindingOf('step-up', session.sid)),
      );
      if (!checked.ok) return fail(req, res, checked.failure);
      const auth = await deps.sessions.stepUp(
        session.sid,
        methodsOf(checked.verification),
        deps.now(),
      );
      if (!auth) return sendError(req, res, 'UNAUTHENTICATED', { json: true });
      audit('step_up.success', req, { username: user.username, userId: user.id, amr: auth.amr });
      json(res, { location: rd });
    },

    /** POST /auth/login/webauthn/options: the pending login's user's keys. */
    async secondStepOptions(req: Request, res: Response) {
      const pending = await storeCall(() => deps.steps.pendingOf(req));
      if (pending?.login.needs !== 'second-factor')
        return sendError(req, res, 'UNAUTHENTICATED', { json: true });
      const options = await storeCall(() =>
        deps.webauthn.authenticationOptions(
          rpOf(req),
          bindingOf('pending', pending.token),
          pending.login.userId,
        ),
      );
      json(res, options);
    },

    /** POST /auth/login/webauthn `{ credential }`: completes the pending login (pwd + hwk). */
    secondStep: (req: Request, res: Response) =>
      deps.steps.submitWebauthnStep(req, res, (_login, token) =>
        authenticate(req, bindingOf('pending', token)),
      ),

    /**
     * POST /auth/login/passkey/options: a discoverable-credential request (no user named, user
     * verification required), its challenge bound to a cookie of its own.
     */
    async passkeyOptions(req: Request, res: Response) {
      const token = randomBytes(32).toString('base64url');
      const options = await storeCall(() =>
        deps.webauthn.authenticationOptions(rpOf(req), bindingOf('passkey', token)),
      );
      res.cookie(passkeyCookie, token, { ...passkeyAttrs(req), maxAge: WEBAUTHN_CHALLENGE_TTL_MS });
      json(res, options);
    },

    /**
     * POST /auth/login/passkey `{ rd, credential }`: the user the passkey's user handle names,
     * signed in with hwk + user (aal2) and no password; throttled per address as logins are.
     */
    async passkey(req: Request, res: Response) {
      if (!deps.csrf.valid(req)) return sendError(req, res, 'CSRF_TOKEN_INVALID', { json: true });
      const token = (req.cookies as Record<string, unknown> | undefined)?.[passkeyCookie];
      res.clearCookie(passkeyCookie, passkeyAttrs(req));
      const ip = req.ip ?? '';
      // The account is the passkey's, known only after verifying: the address is what is
      // throttled (one shared "account" would let anyone lock every passkey sign-in out).
      const account = `passkey@${ip}`;
      const decision = await storeCall(() => deps.throttle.check(account, ip));
      if (!decision.allowed) {
        const retry = String(Math.max(1, decision.retryAfterSeconds));
        audit('login.throttled', req, { method: 'passkey' });
        return sendError(req, res, 'TOO_MANY_ATTEMPTS', {
          message: `Too many attempts. Try again in ${retry} seconds.`,
          headers: { 'Retry-After': retry },
          json: true,
        });
      }
      const used =
        typeof token === 'string' && token.length <= 64
          ? await storeCall(() => authenticate(req, bindingOf('passkey', token)))
          : ({ ok: false, reason: 'invalid' } satisfies WebauthnUse as WebauthnUse);
      const user = used.ok ? await deps.users.findById(used.userId) : null;
      if (!used.ok || !user || user.disabled || !used.userVerified) {
        await storeCall(() => deps.throttle.recordFailure(account, ip));
        audit('login.failure', req, {
          method: 'passkey',
          userId: used.userId,
          reason: used.ok ? (user ? 'user-verification' : 'unknown-user') : used.reason,
        });
        return sendError(req, res, 'INVALID_CREDENTIALS', {
          message: used.ok || used.reason !== 'counter' ? WRONG_KEY : COUNTER_MESSAGE,
          json: true,
        });
      }
      await deps.throttle.recordSuccess(account, ip).catch(() => {});
      const methods: Amr[] = ['hwk', 'user'];
      await deps.steps.signIn(req, user, {
        methods,
        remember: false,
        ip,
        ua: String(req.headers['user-agent'] ?? '').slice(0, 256),
      });
      json(res, { location: rdOf(bodyOf(req).rd) });
    },
  };
}

const COUNTER_MESSAGE =
  'That security key was refused: its counter went backwards (it may have been cloned).';
