import { LRUCache } from 'lru-cache';
import {
  type Amr,
  type Authentication,
  authenticationOf,
  stepUp,
} from '../../../common/src/authentication.js';
import { GatehouseError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/logger.js';
import { type Sealer, UnreadableSealError } from './sealing.js';

/**
 * The session repository: the one owner of the session record. Everything that creates, reads,
 * slides, lists or ends a session goes through this interface (lucia v3's adapter is the model:
 * a handful of methods, one per thing a caller wants, no storage detail leaking out). Two
 * implementations pass the same contract (test/integration/session-repository-contract.ts):
 * Redis (session-repository-redis.ts: standalone, Cluster, Sentinel) and in-memory
 * (session-repository-memory.ts: a real second implementation, for unit-speed tests).
 *
 * Methods that take a `sid` take the cookie's id; a repository keeps only its stored id
 * (storedSessionId, the SHA-256), and that is the `id` in summaries and revocation events.
 */
export interface SessionRepository {
  /**
   * The login transaction, in one call: the session is indexed under its user as pending, then
   * created (never over an existing one), then confirmed live. A concurrent deleteUserSessions
   * either sees the pending entry (this call then undoes itself and throws LOGIN_INTERRUPTED,
   * 409) or runs after it and ends the session: no session ever outlives its index entry.
   * Nothing is left behind when it throws (SESSION_STORE_UNAVAILABLE when the store is down).
   */
  createSession(sid: string, auth: SessionAuth): Promise<void>;
  /**
   * The validate path: the session, or null. A session past its absolute timeout is deleted
   * (and published). The idle timeout slides, and "last seen" is noted, at most once per slide
   * interval per session; sliding never creates a session deleted meanwhile.
   */
  validateSession(sid: string): Promise<ValidSession | null>;
  /** What the session holds, without sliding anything (express-session's get); null: none. */
  getSession(sid: string): Promise<SessionAuth | null>;
  /** Rewrite a live session's record. Never creates one: false when the session is gone. */
  updateSession(sid: string, auth: SessionAuth): Promise<boolean>;
  /**
   * A step-up: the user proved `methods` again (a TOTP or recovery code: `['otp']`; the password
   * again: `['pwd']`), just now. The methods join the session's, its authTime becomes `now`, and
   * the change is told (onChanged: the gateways drop their cached validation of it, and keep its
   * WebSockets). The session keeps its id: see docs/security.md ("Step-up keeps the session id").
   * Never creates a session: null when it is gone. Returns the authentication it now has.
   */
  stepUp(sid: string, methods: readonly Amr[], now: number): Promise<Authentication | null>;
  /** End one session by the cookie's id; published when it existed. True when it existed. */
  deleteSession(sid: string, userId?: string): Promise<boolean>;
  /** End one session by its stored id (a SessionSummary's `id`). True when it existed. */
  deleteSessionById(id: string, userId?: string): Promise<boolean>;
  /** End every session of a user, or every one but `exceptSid`; published. How many ended. */
  deleteUserSessions(userId: string, exceptSid?: string): Promise<number>;
  /** The user's live sessions, newest activity first; entries of ended sessions are pruned. */
  listUserSessions(userId: string): Promise<SessionSummary[]>;
}

/** What a session holds: who, since when, from where, and how it was proven. Never a password. */
export interface SessionAuth {
  userId: string;
  username: string;
  groups: string[];
  email: string;
  /** ms since the epoch: the absolute timeout counts from here and nothing moves it. */
  createdAt: number;
  /**
   * How the user proved who they are (RFC 8176 methods: `['pwd']` for a password, `['otp',
   * 'pwd', 'mfa']` with a second factor): the login transaction stores what the login used.
   * Absent in records written before issue 14: read as a password (authenticationOfSession).
   */
  amr?: readonly Amr[];
  /** ms since the epoch: when the user last proved who they are (login or step-up). */
  authTime?: number;
  remember?: boolean;
  ip?: string;
  ua?: string;
}

/**
 * The session's Authentication (common/src/authentication.ts), derived again from its methods
 * (acr is never read from a record). A record without one was made by a password login.
 */
export function authenticationOfSession(auth: SessionAuth): Authentication {
  return authenticationOf(auth.amr ?? ['pwd'], auth.authTime ?? auth.createdAt);
}

/** The record after a step-up with `methods` at `now` (SessionRepository.stepUp). */
export function steppedUp(auth: SessionAuth, methods: readonly Amr[], now: number): SessionAuth {
  const next = stepUp(authenticationOfSession(auth), [...methods], now);
  return { ...auth, amr: next.amr, authTime: next.authTime };
}

export interface Lifetimes {
  idleSeconds: number;
  absoluteSeconds: number;
  /** "Remember me" limits; 0 turns the option off. */
  rememberIdleSeconds: number;
  rememberAbsoluteSeconds: number;
}

export interface ValidSession {
  /** The id the cookie carries: a secret, never stored. */
  sid: string;
  /** The session's stored name and its name on the revocation feed (storedSessionId(sid)). */
  id: string;
  auth: SessionAuth;
  /** ms since the epoch: when the session ends if it stays idle (never past the absolute limit). */
  expiresAt: number;
  absoluteExpiresAt: number;
}

export interface SessionSummary {
  /** The stored id (a hash of the session id), never the session id itself. */
  id: string;
  createdAt: number;
  lastSeenAt: number;
  ip: string;
  userAgent: string;
  expiresAt: number;
}

/** What every implementation is built from. */
export interface SessionRepositoryOptions {
  lifetimes: Lifetimes;
  now?: () => number;
  /**
   * Told about sessions ended before their time (deleted, found expired), after they are gone,
   * by stored id, so gateways drop them from their caches at once. The Redis repository
   * publishes them on the revocation channel by default (domain/revocation-channel.ts).
   */
  onRevoked?: (ids: readonly string[]) => Promise<void>;
  /**
   * Told about live sessions whose authentication changed (a step-up), by stored id, so gateways
   * drop their cached validation of them. The Redis repository publishes `changed` on the
   * revocation channel by default.
   */
  onChanged?: (ids: readonly string[]) => Promise<void>;
  /**
   * The idle timeout slides at most this often per session (and process): validate reads the
   * session every time, but writes only when the last slide is older than this. Default: 1 s, or
   * a twentieth of the idle timeout when that is shorter. A busy session may thus end up to this
   * much before its idle timeout, never after it.
   */
  slideIntervalMs?: number;
}

/** How long a pending index entry may exist before its session does (a login in progress). */
export const LOGIN_GRACE_MS = 10_000;

/** A login undone because "end all sessions" ran meanwhile (the user signs in again). */
export const loginInterrupted = () => new GatehouseError('LOGIN_INTERRUPTED');

/**
 * Milliseconds this session may still live: the idle allowance, capped by what is left of the
 * absolute lifetime. Stores set it as the record's expiry, so idle sessions are forgotten.
 */
export function remainingMs(auth: SessionAuth, lifetimes: Lifetimes, now: number): number {
  const idle = (auth.remember ? lifetimes.rememberIdleSeconds : lifetimes.idleSeconds) * 1000;
  return Math.min(idle, absoluteExpiry(auth, lifetimes) - now);
}

export function absoluteExpiry(auth: SessionAuth, lifetimes: Lifetimes): number {
  const absolute = auth.remember ? lifetimes.rememberAbsoluteSeconds : lifetimes.absoluteSeconds;
  return auth.createdAt + absolute * 1000;
}

/** The summary of a live session last seen at `lastSeenAt`. */
export function summaryOf(
  id: string,
  auth: SessionAuth,
  lastSeenAt: number,
  lifetimes: Lifetimes,
): SessionSummary {
  return {
    id,
    createdAt: auth.createdAt,
    lastSeenAt,
    ip: auth.ip ?? '',
    userAgent: auth.ua ?? '',
    expiresAt: Math.min(
      lastSeenAt + remainingMs(auth, lifetimes, lastSeenAt),
      absoluteExpiry(auth, lifetimes),
    ),
  };
}

/** Sessions whose last slide a process remembers; past it, the least recently slid are forgotten. */
const SLIDE_MEMORY = 100_000;

/**
 * "Slide at most once per interval", shared by both implementations: when this process last
 * slid each session (a hint: forgetting one costs one write, never correctness).
 */
export function createSlideMemory(options: SessionRepositoryOptions, max = SLIDE_MEMORY) {
  const { lifetimes } = options;
  const intervalMs =
    options.slideIntervalMs ??
    Math.min(1000, (Math.min(lifetimes.idleSeconds, lifetimes.rememberIdleSeconds) * 1000) / 20);
  const slidAt = new LRUCache<string, number>({ max });
  return {
    /** The time of the last slide of `id` when it is recent enough to skip this one. */
    recent(id: string, t: number): number | undefined {
      const last = slidAt.get(id);
      return last !== undefined && t - last < intervalMs && t >= last ? last : undefined;
    },
    slid(id: string, t: number) {
      slidAt.set(id, t);
    },
    forget(id: string) {
      slidAt.delete(id);
    },
  };
}

/**
 * What validateSession and updateSession do apart from the store, the same in both
 * implementations: the time a session has left (one past its timeout is deleted, which
 * publishes it, and has none), and the slide at most once per interval.
 */
export function createExpiry(
  options: SessionRepositoryOptions,
  deleteById: (id: string, userId: string) => Promise<boolean>,
) {
  const { lifetimes } = options;
  const now = options.now ?? Date.now;
  const slides = createSlideMemory(options);

  /** What `auth` has left at `t`, in ms; 0 once it ran out, after deleting the session `id`. */
  async function timeLeft(id: string, auth: SessionAuth, t = now()): Promise<number> {
    const left = remainingMs(auth, lifetimes, t);
    if (left > 0) return left;
    await deleteById(id, auth.userId);
    return 0;
  }

  return {
    slides,
    timeLeft,
    /**
     * validateSession once the record `auth` of `sid` (stored id `id`) is read: null when it ran
     * out; as last slid when that was recent; otherwise `slide` moves its expiry to `left` ms
     * from `t` and its "last seen" to `t`, in the store's own way.
     */
    async validate(
      sid: string,
      id: string,
      auth: SessionAuth,
      slide: (left: number, t: number) => Promise<unknown> | undefined,
    ): Promise<ValidSession | null> {
      const t = now();
      const left = await timeLeft(id, auth, t);
      if (left === 0) return null;
      const last = slides.recent(id, t);
      if (last !== undefined) return validSession(sid, id, auth, last, lifetimes);
      await slide(left, t);
      slides.slid(id, t);
      return validSession(sid, id, auth, t, lifetimes);
    },
  };
}

/** The ValidSession of `auth`, slid (or last slid) at `at`. */
export const validSession = (
  sid: string,
  id: string,
  auth: SessionAuth,
  at: number,
  lifetimes: Lifetimes,
): ValidSession => ({
  sid,
  id,
  auth,
  expiresAt: at + remainingMs(auth, lifetimes, at),
  absoluteExpiresAt: absoluteExpiry(auth, lifetimes),
});

/**
 * The record as stored: `{"auth": …}`. The `cookie` member carries nothing (the cookie's
 * attributes are the middleware's, its lifetime the record's expiry); it is written because
 * express-session needs one on every session it loads, and versions before the repository load
 * records through express-session (a rolling upgrade mixes them).
 */
export const recordJson = (auth: SessionAuth) =>
  JSON.stringify({ cookie: { originalMaxAge: null, expires: null, path: '/' }, auth });

/** The auth of a record's JSON (opened); null when it holds no valid one. */
export function parseRecord(raw: string | null): SessionAuth | null {
  if (!raw) return null;
  try {
    const record = JSON.parse(raw) as { auth?: SessionAuth };
    const auth = record.auth;
    if (!auth || typeof auth.userId !== 'string' || typeof auth.createdAt !== 'number') return null;
    // How it was authenticated must read back as an Authentication, or it is no session.
    if (auth.amr !== undefined || auth.authTime !== undefined) {
      if (!Array.isArray(auth.amr) || typeof auth.authTime !== 'number') return null;
      authenticationOfSession(auth);
    }
    return auth;
  } catch {
    return null;
  }
}

/**
 * A session record as stored at rest: sealed (domain/sealing.ts) with its stored id as context,
 * so a record copied under another session's name does not open. Null when there is no record or
 * it does not open (forged, swapped, written in clear by an older version, or under a key no
 * longer configured): that is no session, and `onUnreadable` says why.
 */
export function openRecord(
  sealer: Sealer,
  id: string,
  raw: string | null,
  onUnreadable?: (id: string, err: UnreadableSealError) => void,
): string | null {
  if (!raw) return null;
  try {
    return sealer.open(raw, id).plaintext;
  } catch (err) {
    if (!(err instanceof UnreadableSealError)) throw err;
    onUnreadable?.(id, err);
    return null;
  }
}

/** Log a session record that did not open (by stored id, never the session id). */
export const logUnreadable =
  (logger: Pick<Logger, 'warn'> | undefined) => (id: string, err: UnreadableSealError) =>
    logger?.warn(
      { session: id, reason: err.reason },
      'session record unreadable (forged, moved, or sealed with an unknown key): refused',
    );
