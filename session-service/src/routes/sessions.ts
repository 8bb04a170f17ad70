import type { NextFunction, Request, Response } from 'express';
import { bearerToken, secretMatches } from '../../../common/src/constant-time.js';
import { GatehouseError } from '../../../common/src/errors.js';
import { NO_STORE, sendError, wantsHtml } from '../../../common/src/http.js';
import type { Logger } from '../../../common/src/logger.js';
import type { Csrf } from '../csrf.js';
import type { SessionRepository, ValidSession } from '../domain/session-repository.js';
import type { UsersRepository } from '../domain/users.js';
import { type SessionValidator, sessionHandle } from '../domain/validate-session.js';
import type { CookieSettings } from '../session-middleware.js';
import { sessionsPage } from '../views.js';
import { clearSessionCookie, isForm } from './auth.js';
import { readSessionId } from './validate.js';

export interface SessionsDeps {
  validateSession: SessionValidator;
  sessions: SessionRepository;
  users: UsersRepository;
  csrf: Csrf;
  cookie: CookieSettings;
  secrets: readonly string[];
  adminToken?: string;
  audit: Logger;
  /** For csrf-csrf: the session a request belongs to (set by `requireSession`). */
  current: WeakMap<Request, ValidSession>;
}

/** Per-user session management: list, revoke one, end all others. Admin API beside it. */
export function createSessionsHandlers(deps: SessionsDeps) {
  // The handle is an HMAC of the stored id (the index holds no session ids to derive it from).
  const handleOf = (id: string) => sessionHandle(id, deps.secrets[0] ?? '');
  const audit = (event: string, req: Request, extra: Record<string, unknown>) =>
    deps.audit.info({ event, ip: req.ip, requestId: req.id, ...extra }, event);

  /** `currentId`: the caller's session, by its stored id (ValidSession.id). */
  async function listFor(userId: string, currentId?: string) {
    const list = await deps.sessions.listUserSessions(userId);
    return list.map((s) => ({
      id: handleOf(s.id),
      createdAt: s.createdAt,
      lastSeenAt: s.lastSeenAt,
      expiresAt: s.expiresAt,
      ip: s.ip,
      userAgent: s.userAgent,
      current: s.id === currentId,
      storedId: s.id,
    }));
  }
  const publicView = (s: Awaited<ReturnType<typeof listFor>>[number]) => ({
    id: s.id,
    createdAt: new Date(s.createdAt).toISOString(),
    lastSeenAt: new Date(s.lastSeenAt).toISOString(),
    expiresAt: new Date(s.expiresAt).toISOString(),
    ip: s.ip,
    userAgent: s.userAgent,
    current: s.current,
  });

  /** Only the cookie identifies the caller; a browser without a session goes to the login page. */
  async function requireSession(req: Request, res: Response, next: NextFunction) {
    res.set('Cache-Control', NO_STORE);
    const sid = readSessionId(req.headers.cookie, deps.cookie.name, deps.secrets);
    const session = sid ? await deps.validateSession(sid) : null;
    if (!session) {
      if (wantsHtml(req) && req.method === 'GET')
        return res.redirect(302, `/auth/login?rd=${encodeURIComponent(req.originalUrl)}`);
      return sendError(req, res, 'UNAUTHENTICATED');
    }
    deps.current.set(req, session);
    next();
  }

  /** HTML forms carry our token (bound to this session); JSON callers are covered by Fetch Metadata. */
  function requireToken(req: Request, _res: Response, next: NextFunction) {
    if (isForm(req) && !deps.csrf.valid(req)) return next(new GatehouseError('CSRF_TOKEN_INVALID'));
    next();
  }

  const me = (req: Request) => {
    const session = deps.current.get(req);
    if (!session) throw new GatehouseError('UNAUTHENTICATED');
    return session;
  };

  async function revokeOne(req: Request, res: Response) {
    const session = me(req);
    const handle = String(req.params.id ?? '');
    const target = (await listFor(session.auth.userId, session.id)).find((s) => s.id === handle);
    if (!target) return sendError(req, res, 'SESSION_NOT_FOUND');
    await deps.sessions.deleteSessionById(target.storedId, session.auth.userId);
    audit('session.revoke', req, {
      username: session.auth.username,
      userId: session.auth.userId,
      session: handle,
      current: target.current,
    });
    if (target.current) clearSessionCookie(req, res, deps.cookie);
    return target.current;
  }

  return {
    requireSession,
    requireToken,

    async list(req: Request, res: Response) {
      const session = me(req);
      const sessions = await listFor(session.auth.userId, session.id);
      if (wantsHtml(req)) {
        const notice =
          typeof req.query.revoked === 'string'
            ? `Ended ${Number(req.query.revoked) || 0} other session(s).`
            : undefined;
        return res.type('html').send(
          sessionsPage({
            username: session.auth.username,
            sessions,
            csrfToken: deps.csrf.token(req, res),
            ...(notice ? { notice } : {}),
          }),
        );
      }
      res.json({ sessions: sessions.map(publicView) });
    },

    async revokeJson(req: Request, res: Response) {
      await revokeOne(req, res);
      if (!res.headersSent) res.status(204).end();
    },

    async revokeForm(req: Request, res: Response) {
      const wasCurrent = await revokeOne(req, res);
      if (res.headersSent) return;
      res.redirect(303, wasCurrent ? '/auth/login' : '/auth/sessions');
    },

    async logoutAll(req: Request, res: Response) {
      const session = me(req);
      const body = (req.body ?? {}) as Record<string, unknown>;
      const all = body.all === true || body.all === '1' || body.all === 'true';
      const revoked = await deps.sessions.deleteUserSessions(
        session.auth.userId,
        all ? undefined : session.sid,
      );
      audit('session.logout_all', req, {
        username: session.auth.username,
        userId: session.auth.userId,
        revoked,
        includingCurrent: all,
      });
      if (all) clearSessionCookie(req, res, deps.cookie);
      if (isForm(req))
        return res.redirect(303, all ? '/auth/login' : `/auth/sessions?revoked=${revoked}`);
      res.json({ revoked });
    },

    /** Admin API: `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time. */
    requireAdmin(req: Request, res: Response, next: NextFunction) {
      res.set('Cache-Control', NO_STORE);
      if (!deps.adminToken) return sendError(req, res, 'NOT_FOUND');
      if (!secretMatches(bearerToken(req.get('authorization')), deps.adminToken)) {
        deps.audit.warn({ event: 'admin.denied', ip: req.ip, requestId: req.id }, 'admin.denied');
        return sendError(req, res, 'UNAUTHENTICATED', {
          message: 'A valid admin token is required.',
          headers: { 'WWW-Authenticate': 'Bearer' },
        });
      }
      next();
    },

    async adminList(req: Request, res: Response) {
      const user = await deps.users.findByUsername(String(req.params.username));
      if (!user) return sendError(req, res, 'USER_NOT_FOUND');
      res.json({
        user: { id: user.id, username: user.username, disabled: user.disabled },
        sessions: (await listFor(user.id)).map(publicView),
      });
    },

    async adminRevokeAll(req: Request, res: Response) {
      const user = await deps.users.findByUsername(String(req.params.username));
      if (!user) return sendError(req, res, 'USER_NOT_FOUND');
      const revoked = await deps.sessions.deleteUserSessions(user.id);
      audit('admin.revoke_all', req, { username: user.username, userId: user.id, revoked });
      res.json({ revoked });
    },

    async adminRevokeOne(req: Request, res: Response) {
      const user = await deps.users.findByUsername(String(req.params.username));
      if (!user) return sendError(req, res, 'USER_NOT_FOUND');
      const target = (await listFor(user.id)).find((s) => s.id === req.params.id);
      if (!target) return sendError(req, res, 'SESSION_NOT_FOUND');
      await deps.sessions.deleteSessionById(target.storedId, user.id);
      audit('admin.revoke', req, { username: user.username, userId: user.id, session: target.id });
      res.status(204).end();
    },
  };
}
