import type { NextFunction, Request, Response } from 'express';
import { ERRORS, type ErrorCode, GatehouseError } from '../../../common/src/errors.js';
import { NO_STORE, sendError, wantsHtml } from '../../../common/src/http.js';
import type { Logger } from '../../../common/src/logger.js';
import type { Csrf } from '../csrf.js';
import { provenSameOrigin } from '../csrf.js';
import { PASSWORD_MAX, type PasswordVerifier } from '../domain/passwords.js';
import { safeRedirect } from '../domain/redirects.js';
import type { SessionAuth, SessionRepository } from '../domain/session-repository.js';
import { storeCall } from '../domain/store-call.js';
import type { LoginThrottle } from '../domain/throttle.js';
import type { UsersRepository } from '../domain/users.js';
import type { DirectoryLogin } from '../identity-recheck.js';
import type { CookieSettings } from '../session-middleware.js';
import { cookieAttributes } from '../session-middleware.js';
import { confirmLogoutPage, type LoginProvider, loginPage } from '../views.js';
import type { LoginSteps } from './second-factor.js';

export type LoginOutcome = 'success' | 'failure' | 'throttled' | 'unavailable';

export interface AuthDeps {
  users: UsersRepository;
  verifier: PasswordVerifier;
  sessions: SessionRepository;
  throttle: LoginThrottle;
  csrf: Csrf;
  cookie: CookieSettings;
  allowedRedirectHosts: readonly string[];
  allowedOrigins: readonly string[];
  rememberMe: boolean;
  /** After a right password: a session, or the second step (routes/second-factor.ts). */
  steps: Pick<LoginSteps, 'afterPassword'>;
  audit: Logger;
  onLogin?: (outcome: LoginOutcome) => void;
  /** The LDAP directory's password check, for usernames the users file does not have. */
  directoryLogin?: DirectoryLogin;
  /** IDENTITY_SOURCES_FILE's passwordForm: false offers providers only. */
  passwordForm?: boolean;
  /** OpenID Connect providers, offered as "Sign in with <name>". */
  providers?: readonly LoginProvider[];
  /** After a logout of a provider's session: its end-session page, or null. */
  providerLogoutUrl?: (auth: SessionAuth) => Promise<string | null>;
}

const GENERIC_FAILURE = 'Invalid username or password.';

export const isForm = (req: Request) =>
  req.is('application/x-www-form-urlencoded') === 'application/x-www-form-urlencoded';

/** A refused sign-in: its code, the message shown, answer headers (such as Retry-After). */
interface Failure {
  code: ErrorCode;
  message: string;
  headers?: Record<string, string>;
}

/** Drop the request's session so express-session sets no cookie for something never saved. */
function forgetSession(req: Request): void {
  Reflect.deleteProperty(req, 'session');
}

/** Clear the session cookie with the attributes it was set with. */
export function clearSessionCookie(req: Request, res: Response, cookie: CookieSettings): void {
  const attrs = cookieAttributes(cookie);
  res.clearCookie(cookie.name, {
    ...attrs,
    secure: attrs.secure === 'auto' ? req.secure : attrs.secure,
  });
}

/**
 * 303 to `location` exactly as given. res.redirect would re-encode it (encodeurl turns a literal
 * `%` into `%25` and `"`, `<`, `{` into escapes), and the deep link would come back changed.
 * safeRedirect only returns printable ASCII or a URL's href, both safe in a header as they are.
 */
export function seeOther(res: Response, location: string): void {
  res.status(303).set('Location', location).type('text').send('See Other');
}

export function createAuthHandlers(deps: AuthDeps) {
  const rdOf = (value: unknown) => safeRedirect(value, deps.allowedRedirectHosts);

  function renderLogin(
    req: Request,
    res: Response,
    status: number,
    view: { rd: string; username?: string; error?: string },
  ) {
    res
      .status(status)
      .set('Cache-Control', NO_STORE)
      .type('html')
      .send(
        loginPage({
          rememberMe: deps.rememberMe,
          csrfToken: deps.csrf.token(req, res),
          passwordForm: deps.passwordForm !== false,
          providers: deps.providers ?? [],
          ...view,
        }),
      );
  }

  /**
   * A form gets the login page again, with the message, under the code's status (a page, not an
   * error body); a JSON caller gets the error answer, JSON whatever it accepts.
   */
  function fail(
    req: Request,
    res: Response,
    { code, message, headers = {} }: Failure,
    view: { rd: string; username?: string },
  ) {
    if (isForm(req)) {
      res.set(headers);
      return renderLogin(req, res, ERRORS[code].status, { ...view, error: message });
    }
    sendError(req, res, code, { message, headers, json: true });
  }

  const audit = (event: string, req: Request, extra: Record<string, unknown> = {}) =>
    deps.audit.info({ event, ip: req.ip, requestId: req.id, ...extra }, event);

  return {
    showLogin(req: Request, res: Response) {
      renderLogin(req, res, 200, { rd: rdOf(req.query.rd) });
    },

    async login(req: Request, res: Response) {
      // Providers only (passwordForm: false): no password is checked here at all.
      if (deps.passwordForm === false) throw new GatehouseError('NOT_FOUND');
      const form = isForm(req);
      if (!form && req.is('application/json') !== 'application/json') {
        throw new GatehouseError('UNSUPPORTED_MEDIA_TYPE');
      }
      const fields = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<
        string,
        unknown
      >;
      const { username, password } = fields;
      const rd = rdOf(fields.rd);
      const ip = req.ip ?? '';
      const account = typeof username === 'string' ? username : '';

      // Throttle first: malformed, forged and over-long attempts count like wrong passwords.
      // The throttle lives in Redis: when it cannot answer, fail closed (503), never skip it.
      const decision = await storeCall(() => deps.throttle.check(account, ip));
      if (!decision.allowed) {
        audit('login.throttled', req, { username: account, reason: decision.reason });
        deps.onLogin?.('throttled');
        const retry = String(Math.max(1, decision.retryAfterSeconds));
        return fail(
          req,
          res,
          {
            code: 'TOO_MANY_ATTEMPTS',
            message: `Too many sign-in attempts. Try again in ${retry} seconds.`,
            headers: { 'Retry-After': retry },
          },
          { rd },
        );
      }
      const refuse = async (failure: Failure, reason: string) => {
        await storeCall(() => deps.throttle.recordFailure(account, ip));
        audit('login.failure', req, { username: account, reason });
        deps.onLogin?.('failure');
        return fail(req, res, failure, { rd, username: account });
      };

      if (form && !deps.csrf.valid(req)) {
        return refuse(
          { code: 'CSRF_TOKEN_INVALID', message: 'Your sign-in form expired. Please try again.' },
          'csrf',
        );
      }
      if (
        typeof username !== 'string' ||
        typeof password !== 'string' ||
        username.length === 0 ||
        password.length === 0
      ) {
        return refuse(
          { code: 'BAD_REQUEST', message: 'Enter a username and a password.' },
          'malformed',
        );
      }
      // Refuse over-long input before hashing it (ASVS 2.1.2: up to 1024 accepted, never truncated).
      if (
        password.length > PASSWORD_MAX * 2 ||
        [...password].length > PASSWORD_MAX ||
        username.length > 256
      ) {
        return refuse(
          { code: 'BAD_REQUEST', message: 'Username or password is too long.' },
          'too_long',
        );
      }

      const found = await deps.users.findByUsername(username);
      // A users-file entry is checked here; an identity source's user only by its source.
      const local = found && !found.source ? found : null;
      // Always one argon2id verification: unknown, disabled and wrong-password cost the same.
      const passwordOk = await deps.verifier.verify(local?.passwordHash ?? null, password);
      let user = local && !local.disabled && passwordOk ? local : null;
      // No users-file entry: the directory's (LDAP). It down is 503 DIRECTORY_UNAVAILABLE,
      // never "invalid password"; a wrong password there counts like one here.
      if (!local && deps.directoryLogin) user = await deps.directoryLogin(username, password);
      if (!user) {
        return refuse({ code: 'INVALID_CREDENTIALS', message: GENERIC_FAILURE }, 'credentials');
      }

      const remember =
        deps.rememberMe &&
        (fields.remember === '1' || fields.remember === true || fields.remember === 'on');
      // The password was right: whatever comes next (a session, or a second step), the pair's
      // failures are cleared.
      await deps.throttle.recordSuccess(account, ip).catch(() => {});
      // A session now, or a second step first (routes/second-factor.ts).
      await deps.steps.afterPassword(req, res, { user, remember, rd, fields });
    },

    /** Error middleware after the login route: a body that never parsed is still a failure. */
    countUnparsable(err: unknown, req: Request, _res: Response, next: NextFunction) {
      const type = (err as { type?: string }).type ?? '';
      if (req.method !== 'POST' || (!type.startsWith('entity.') && !type.startsWith('parameters.')))
        return next(err);
      audit('login.failure', req, { reason: 'unparsable' });
      deps.onLogin?.('failure');
      deps.throttle.recordFailure('', req.ip ?? '').then(
        () => next(err),
        () => next(err),
      );
    },

    async logout(req: Request, res: Response) {
      const form = isForm(req);
      // A form must carry our token or come provably from our own origin (a backend's
      // "Sign out" button cannot know our token); otherwise ask for confirmation.
      if (form && !deps.csrf.valid(req) && !provenSameOrigin(req, deps.allowedOrigins)) {
        return res
          .status(200)
          .set('Cache-Control', NO_STORE)
          .type('html')
          .send(confirmLogoutPage(deps.csrf.token(req, res)));
      }
      const auth = req.session?.auth;
      const sid = req.sessionID;
      if (auth && sid) {
        // 503 when Redis is down: never a false "you are logged out".
        await deps.sessions.deleteSession(sid, auth.userId);
        audit('logout', req, { username: auth.username, userId: auth.userId });
      }
      forgetSession(req);
      clearSessionCookie(req, res, deps.cookie);
      res.set('Cache-Control', NO_STORE);
      // The back button after logout shows nothing private.
      res.set('Clear-Site-Data', '"cache"');
      if (form || (wantsHtml(req) && !req.is('application/json'))) {
        // Signed in through a provider that offers it: sign out there too (RP-initiated logout).
        const next = auth ? await deps.providerLogoutUrl?.(auth) : null;
        return res.redirect(303, next ?? '/auth/login');
      }
      res.status(204).end();
    },
  };
}
