import { randomBytes } from 'node:crypto';
import type { Request } from 'express';
import session, { type SessionData } from 'express-session';
import type {
  SessionAuth,
  SessionIdentity,
  SessionRepository,
} from './domain/session-repository.js';

declare module 'express-session' {
  interface SessionData {
    auth: SessionAuth;
  }
}

type Callback = (err?: unknown, data?: SessionData | null) => void;

/** What express-session needs on every session it loads; the record keeps none of it. */
const LOADED_COOKIE = { originalMaxAge: null, expires: null, path: '/' };

/**
 * express-session's Store contract (get, set, destroy, touch) over the session repository, and
 * nothing else: the repository owns the key format, the sealed record, the index and revocation.
 *
 * `set` only ever updates (the repository's updateSession: never creates). Creating a session is
 * the login transaction's (SessionRepository.createSession: indexed, created only where nothing
 * exists, confirmed), which the login route calls before it saves; so a request that loaded a
 * session before a logout, and saves it afterwards, writes nothing (no resurrection:
 * connect-redis #286, express-session #793), and a session id planted by an attacker is never
 * made into a session by a save. The only sessions express-session ever saves here are
 * authenticated ones (saveUninitialized is off), so a session without `auth` is never written.
 *
 * `touch` is a validate: sliding the idle timeout is what validate does, under the same
 * at-most-once-a-second rule. Failures reach express-session as GatehouseError('SESSION_STORE_UNAVAILABLE') (503).
 *
 * The record keeps no identity (issue 16): `get` fills the user's name, groups and email in from
 * `identify` (the users repository), as validate does, so `req.session.auth.username` stays the
 * user's (the logout audit line reads it). A save writes them nowhere.
 */
export class SessionRepositoryStore extends session.Store {
  constructor(
    private readonly repository: SessionRepository,
    private readonly identify?: (userId: string) => Promise<SessionIdentity | null>,
  ) {
    super();
  }

  private async loadSession(sid: string): Promise<SessionData | null> {
    const auth = await this.repository.getSession(sid);
    if (!auth) return null;
    const user = this.identify ? await this.identify(auth.userId) : null;
    const identity = user
      ? { username: user.username, groups: user.groups, email: user.email }
      : {};
    return { cookie: { ...LOADED_COOKIE }, auth: { ...auth, ...identity } } as SessionData;
  }

  override get(sid: string, cb: Callback): void {
    this.loadSession(sid).then((data) => cb(null, data), cb);
  }

  override set(sid: string, sess: SessionData, cb?: (err?: unknown) => void): void {
    const done = sess.auth ? this.repository.updateSession(sid, sess.auth) : Promise.resolve();
    done.then(
      () => cb?.(),
      (err: unknown) => cb?.(err),
    );
  }

  override destroy(sid: string, cb?: (err?: unknown) => void): void {
    // A login over an existing session (regenerate) ends the old one here; the repository
    // publishes that, so the gateways' caches drop it too.
    this.repository.deleteSession(sid).then(
      () => cb?.(),
      (err: unknown) => cb?.(err),
    );
  }

  override touch(sid: string, _sess: SessionData, cb?: (err?: unknown) => void): void {
    this.repository.validateSession(sid).then(
      () => cb?.(),
      (err: unknown) => cb?.(err),
    );
  }
}

export interface CookieSettings {
  name: string;
  secure: boolean | 'auto';
  domain?: string;
}

/** Secure defaults in one object (lucia's habit); Secure follows the request when not forced. */
export function cookieAttributes(settings: CookieSettings) {
  return {
    httpOnly: true,
    sameSite: 'lax' as const,
    path: '/',
    secure: settings.secure,
    ...(settings.domain ? { domain: settings.domain } : {}),
  };
}

export function createSessionMiddleware(options: {
  store: session.Store;
  secrets: string[];
  cookie: CookieSettings;
}) {
  const middleware = session({
    name: options.cookie.name,
    secret: options.secrets,
    store: options.store,
    // 256 random bits (express-session's default has 192): what the store keeps is its SHA-256.
    genid: () => randomBytes(32).toString('base64url'),
    resave: false,
    saveUninitialized: false,
    rolling: false,
    unset: 'destroy',
    // A browser-session cookie by default; "remember me" gives it a Max-Age at login.
    cookie: { ...cookieAttributes(options.cookie), maxAge: undefined },
  });
  // When loading the session fails (Redis down), express-session has already called next(err);
  // with a sessionID left on the request, its end-of-response hook tries to destroy that
  // session and calls next(err) a second time after our 503 went out, and Express then destroys
  // the keep-alive connection the gateway reuses (a 502 on the gateway's next /auth request).
  return ((req, res, next) =>
    middleware(req, res, (err?: unknown) => {
      if (err) Reflect.deleteProperty(req, 'sessionID');
      next(err);
    })) as typeof middleware;
}

function promisify(fn: (cb: (err?: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
}

/**
 * A login, in express-session's terms: a new id (the pre-login id, or one planted by an attacker,
 * never becomes authenticated: OWASP Session Management, renew the ID on privilege change), then
 * the repository's login transaction, so the session is stored before we answer and the cookie
 * never points at nothing. express-session then saves it once as the answer ends, an update-only
 * write of the same record (after regenerate it cannot know the record is there; saving here too
 * would only write it twice). On failure the request keeps no session, so no cookie goes out.
 */
export async function startSession(
  req: Request,
  repository: SessionRepository,
  auth: SessionAuth,
  maxAgeMs?: number,
): Promise<void> {
  try {
    await promisify((cb) => req.session.regenerate(cb));
    req.session.auth = auth;
    if (maxAgeMs !== undefined) req.session.cookie.maxAge = maxAgeMs;
    await repository.createSession(req.sessionID, auth);
  } catch (err) {
    Reflect.deleteProperty(req, 'session');
    throw err;
  }
}
