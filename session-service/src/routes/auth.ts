import type { NextFunction, Request, Response } from 'express';
import { AppError, StoreUnavailableError } from '../../../common/src/errors.js';
import { NO_STORE, wantsHtml } from '../../../common/src/http.js';
import type { Logger } from '../../../common/src/logger.js';
import { PASSWORD_MAX, type PasswordVerifier } from '../domain/passwords.js';
import { safeRedirect } from '../domain/redirects.js';
import type { SessionAuth, SessionStore } from '../domain/sessions.js';
import type { UsersRepository } from '../domain/users.js';
import type { CookieSettings, GatehouseRedisStore } from '../session-middleware.js';
import { cookieAttributes } from '../session-middleware.js';
import { loggedOutPage, loginPage } from '../views.js';

export interface AuthDeps {
  users: UsersRepository;
  verifier: PasswordVerifier;
  sessions: SessionStore;
  store: GatehouseRedisStore;
  cookie: CookieSettings;
  allowedRedirectHosts: readonly string[];
  rememberMe: boolean;
  rememberMaxAgeMs: number;
  audit: Logger;
  onLogin?: (outcome: 'success' | 'failure' | 'throttled' | 'unavailable') => void;
}

const GENERIC_FAILURE = 'Invalid username or password.';

const isForm = (req: Request) =>
  req.is('application/x-www-form-urlencoded') === 'application/x-www-form-urlencoded';

function promisify(fn: (cb: (err?: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
}

/** Drop the request's session so express-session sets no cookie for something never saved. */
function forgetSession(req: Request): void {
  Reflect.deleteProperty(req, 'session');
}

export function createAuthHandlers(deps: AuthDeps) {
  const rdOf = (value: unknown) => safeRedirect(value, deps.allowedRedirectHosts);

  function renderLogin(res: Response, status: number, view: Parameters<typeof loginPage>[0]) {
    res
      .status(status)
      .set('Cache-Control', NO_STORE)
      .type('html')
      .send(loginPage({ rememberMe: deps.rememberMe, ...view }));
  }

  function fail(
    req: Request,
    res: Response,
    status: number,
    code: string,
    message: string,
    view: { rd: string; username?: string },
  ) {
    if (isForm(req)) return renderLogin(res, status, { ...view, error: message });
    res.status(status).set('Cache-Control', NO_STORE).json({ error: code, message });
  }

  return {
    showLogin(req: Request, res: Response) {
      renderLogin(res, 200, { rd: rdOf(req.query.rd) });
    },

    async login(req: Request, res: Response) {
      const body: unknown = req.body;
      const form = isForm(req);
      if (!form && req.is('application/json') !== 'application/json') {
        throw new AppError(
          'UNSUPPORTED_MEDIA_TYPE',
          415,
          'Send application/json or application/x-www-form-urlencoded.',
        );
      }
      const fields = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
      const { username, password } = fields;
      const rd = rdOf(fields.rd);
      const ip = req.ip ?? '';
      if (
        typeof username !== 'string' ||
        typeof password !== 'string' ||
        username.length === 0 ||
        password.length === 0
      ) {
        deps.audit.info(
          { event: 'login.failure', reason: 'malformed', ip, requestId: req.id },
          'login failure',
        );
        deps.onLogin?.('failure');
        return fail(req, res, 400, 'BAD_REQUEST', 'Enter a username and a password.', { rd });
      }
      // Refuse over-long input before hashing it (ASVS 2.1.2: up to 1024 accepted, never truncated).
      if (
        password.length > PASSWORD_MAX * 2 ||
        [...password].length > PASSWORD_MAX ||
        username.length > 256
      ) {
        deps.audit.info(
          { event: 'login.failure', reason: 'too_long', ip, requestId: req.id },
          'login failure',
        );
        deps.onLogin?.('failure');
        return fail(req, res, 400, 'BAD_REQUEST', 'Username or password is too long.', { rd });
      }

      const user = await deps.users.findByUsername(username);
      // Always one argon2id verification: unknown, disabled and wrong-password cost the same.
      const passwordOk = await deps.verifier.verify(user?.passwordHash ?? null, password);
      if (!user || user.disabled || !passwordOk) {
        deps.audit.info(
          { event: 'login.failure', username, ip, requestId: req.id },
          'login failure',
        );
        deps.onLogin?.('failure');
        return fail(req, res, 401, 'INVALID_CREDENTIALS', GENERIC_FAILURE, { rd, username });
      }

      const remember =
        deps.rememberMe &&
        (fields.remember === '1' || fields.remember === true || fields.remember === 'on');
      const auth: SessionAuth = {
        userId: user.id,
        username: user.username,
        groups: user.groups,
        email: user.email,
        createdAt: Date.now(),
        ...(remember ? { remember: true } : {}),
        ip,
        ua: String(req.headers['user-agent'] ?? '').slice(0, 256),
      };
      try {
        // A new id on every login: the pre-login id (or one planted by an attacker) never
        // becomes authenticated (OWASP Session Management: renew the ID on privilege change).
        await promisify((cb) => req.session.regenerate(cb));
        req.session.auth = auth;
        if (remember) req.session.cookie.maxAge = deps.rememberMaxAgeMs;
        deps.store.expectCreate(req.sessionID);
        // Saved before we answer: the cookie never points at a session Redis does not hold.
        await promisify((cb) => req.session.save(cb));
        await deps.sessions.register(req.sessionID, auth);
      } catch (err) {
        const sid = req.sessionID;
        forgetSession(req);
        await deps.sessions.destroy(sid).catch(() => {});
        deps.onLogin?.('unavailable');
        throw err instanceof AppError ? err : new StoreUnavailableError(err);
      }
      deps.audit.info(
        { event: 'login.success', username: user.username, userId: user.id, ip, requestId: req.id },
        'login success',
      );
      deps.onLogin?.('success');
      res.set('Cache-Control', NO_STORE);
      if (form) return res.redirect(303, rd);
      res.status(200).json({
        user: { id: user.id, username: user.username, groups: user.groups, email: user.email },
      });
    },

    async logout(req: Request, res: Response) {
      const auth = req.session?.auth;
      const sid = req.sessionID;
      if (auth && sid) {
        // 503 when Redis is down: never a false "you are logged out".
        await deps.sessions.destroy(sid, auth.userId);
        deps.audit.info(
          {
            event: 'logout',
            username: auth.username,
            userId: auth.userId,
            ip: req.ip,
            requestId: req.id,
          },
          'logout',
        );
      }
      forgetSession(req);
      const attrs = cookieAttributes(deps.cookie);
      res.clearCookie(deps.cookie.name, {
        ...attrs,
        secure: attrs.secure === 'auto' ? req.secure : attrs.secure,
      });
      res.set('Cache-Control', NO_STORE);
      // Clear-Site-Data: the back button after logout shows nothing private.
      res.set('Clear-Site-Data', '"cache"');
      if (isForm(req) || (wantsHtml(req) && !req.is('application/json')))
        return res.redirect(303, '/auth/login');
      res.status(204).end();
    },

    loggedOut(_req: Request, res: Response) {
      res.set('Cache-Control', NO_STORE).type('html').send(loggedOutPage());
    },
  };
}

export type AsyncHandler = (
  req: Request,
  res: Response,
  next: NextFunction,
) => Promise<unknown> | unknown;
