import type { NextFunction, Request, Response } from 'express';
import { bearerToken, secretMatches } from '../../../common/src/constant-time.js';
import { GatehouseError } from '../../../common/src/errors.js';
import { NO_STORE, sendError, wantsHtml } from '../../../common/src/http.js';
import type { Logger } from '../../../common/src/logger.js';
import type { Csrf } from '../csrf.js';
import { createSessionHandles } from '../domain/session-handles.js';
import type {
  SessionPage,
  SessionRepository,
  SessionSummary,
  ValidSession,
} from '../domain/session-repository.js';
import type { UsersRepository } from '../domain/users.js';
import type { SessionValidator } from '../domain/validate-session.js';
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

/** Sessions per page of a list: `?limit=` defaults to this… */
export const SESSIONS_PAGE_DEFAULT = 50;
/** …and is capped at this. */
export const SESSIONS_PAGE_MAX = 200;

/**
 * The page a list request asks for: `?limit=` (1 to 200, default 50; more is read as 200) and
 * `?cursor=` (the `next` of the previous page: `<lastSeenAt>.<handle>`, opaque to clients).
 * Null when either is malformed (400).
 */
function pageOf(
  query: Request['query'],
  idOf: (handle: string) => string | undefined,
): SessionPage | null {
  const { limit: rawLimit, cursor } = query;
  let limit = SESSIONS_PAGE_DEFAULT;
  if (rawLimit !== undefined) {
    if (typeof rawLimit !== 'string' || !/^\d{1,6}$/.test(rawLimit) || Number(rawLimit) < 1)
      return null;
    limit = Math.min(Number(rawLimit), SESSIONS_PAGE_MAX);
  }
  if (cursor === undefined) return { limit };
  const match = typeof cursor === 'string' ? /^(\d{1,15})\.([A-Za-z0-9_-]+)$/.exec(cursor) : null;
  const id = match ? idOf(match[2] as string) : undefined;
  if (!match || id === undefined) return null;
  return { limit, after: { lastSeenAt: Number(match[1]), id } };
}

/** Per-user session management: list, revoke one, end all others. Admin API beside it. */
export function createSessionsHandlers(deps: SessionsDeps) {
  // The handle is the stored id encrypted (domain/session-handles.ts): never a usable session
  // id, and turned back into the stored id without listing anything.
  const handles = createSessionHandles(deps.secrets);
  const { handleOf } = handles;
  const audit = (event: string, req: Request, extra: Record<string, unknown>) =>
    deps.audit.info({ event, ip: req.ip, requestId: req.id, ...extra }, event);
  const cursorOf = (s: SessionSummary) => `${s.lastSeenAt}.${handleOf(s.id)}`;

  /**
   * One page of the user's sessions (newest activity first) and the cursor of the next, if any
   * (one more is read to know). `currentId`: the caller's session, by its stored id.
   */
  async function listFor(userId: string, page: SessionPage, currentId?: string) {
    const list = await deps.sessions.listUserSessions(userId, { ...page, limit: page.limit + 1 });
    const shown = list.slice(0, page.limit);
    const last = shown.at(-1);
    const next = list.length > page.limit && last ? cursorOf(last) : null;
    const sessions = shown.map((s) => ({
      id: handleOf(s.id),
      createdAt: s.createdAt,
      lastSeenAt: s.lastSeenAt,
      expiresAt: s.expiresAt,
      ip: s.ip,
      userAgent: s.userAgent,
      current: s.id === currentId,
    }));
    return { sessions, next };
  }

  /** The page a request asks for; null after answering 400 when it is malformed. */
  function requestedPage(req: Request, res: Response): SessionPage | null {
    const page = pageOf(req.query, (handle) => handles.idsOf(handle)[0]);
    if (!page) sendError(req, res, 'BAD_REQUEST', { message: 'Invalid limit or cursor.' });
    return page;
  }

  /**
   * End the session the handle names, when it is `userId`'s: one index entry removed and one
   * record deleted (deleteSessionById checks the owner), never a listing. Its stored id, or null.
   */
  async function endByHandle(handle: string, userId: string): Promise<string | null> {
    for (const id of handles.idsOf(handle))
      if (await deps.sessions.deleteSessionById(id, userId)) return id;
    return null;
  }
  const publicView = (s: Awaited<ReturnType<typeof listFor>>['sessions'][number]) => ({
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
    const ended = await endByHandle(handle, session.auth.userId);
    if (ended === null) return sendError(req, res, 'SESSION_NOT_FOUND');
    const current = ended === session.id;
    audit('session.revoke', req, {
      username: session.auth.username,
      userId: session.auth.userId,
      session: handleOf(ended),
      current,
    });
    if (current) clearSessionCookie(req, res, deps.cookie);
    return current;
  }

  return {
    requireSession,
    requireToken,

    async list(req: Request, res: Response) {
      const session = me(req);
      const page = requestedPage(req, res);
      if (!page) return;
      const { sessions, next } = await listFor(session.auth.userId, page, session.id);
      if (wantsHtml(req)) {
        const notice =
          typeof req.query.revoked === 'string'
            ? `Ended ${Number(req.query.revoked) || 0} other session(s).`
            : undefined;
        return res.type('html').send(
          sessionsPage({
            username: session.auth.username,
            sessions,
            ...(next ? { next: `/auth/sessions?cursor=${encodeURIComponent(next)}` } : {}),
            csrfToken: deps.csrf.token(req, res),
            ...(notice ? { notice } : {}),
          }),
        );
      }
      res.json({ sessions: sessions.map(publicView), next });
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
      const page = requestedPage(req, res);
      if (!page) return;
      const { sessions, next } = await listFor(user.id, page);
      res.json({
        user: { id: user.id, username: user.username, disabled: user.disabled },
        sessions: sessions.map(publicView),
        next,
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
      const ended = await endByHandle(String(req.params.id ?? ''), user.id);
      if (ended === null) return sendError(req, res, 'SESSION_NOT_FOUND');
      audit('admin.revoke', req, {
        username: user.username,
        userId: user.id,
        session: handleOf(ended),
      });
      res.status(204).end();
    },
  };
}
