import {
  type Amr,
  type Authentication,
  authenticationOf,
  stepUp,
} from '../../../common/src/authentication.js';
import { GatehouseError } from '../../../common/src/errors.js';

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
  validateSession(sid: string): Promise<ValidSession<SessionAuth> | null>;
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
  /**
   * End one session by its stored id (a SessionSummary's `id`). With `userId`, only when it is
   * that user's (its entry in that user's index, removed first: one entry read, never a listing);
   * without, whoever's it is (back-channel logout). True when it existed (and was the user's).
   */
  deleteSessionById(id: string, userId?: string): Promise<boolean>;
  /** End every session of a user, or every one but `exceptSid`; published. How many ended. */
  deleteUserSessions(userId: string, exceptSid?: string): Promise<number>;
  /**
   * The user's live sessions, newest activity first (ties: stored id, descending); entries of
   * ended sessions met on the way are pruned. Without `page`, all of them (at most
   * `maxSessionsPerUser`); with it, at most `page.limit`, after the summary `page.after` (a
   * keyset cursor: the last summary of the previous page). A page shorter than its limit is the
   * last. A session used while someone pages moves to the front: later pages skip it (it is on
   * the first), and no page repeats one.
   */
  listUserSessions(userId: string, page?: SessionPage): Promise<SessionSummary[]>;
  /**
   * How many sessions are live now, all users, all instances: a count kept beside the records
   * (never a scan of the keyspace), for the active-sessions gauge.
   */
  countLiveSessions(): Promise<number>;
}

export interface SessionPage {
  limit: number;
  /** Where the previous page ended: its last summary's lastSeenAt and id. */
  after?: { lastSeenAt: number; id: string };
}

/** The order of listUserSessions: newest activity first, then stored id descending. */
export const listedBefore = (
  a: { lastSeenAt: number; id: string },
  b: { lastSeenAt: number; id: string },
): boolean => a.lastSeenAt > b.lastSeenAt || (a.lastSeenAt === b.lastSeenAt && a.id > b.id);

/** What a session holds: who, since when, from where, and how it was proven. Never a password. */
export interface SessionAuth {
  userId: string;
  /**
   * Who the user is (name, groups, email): the user record's, never stored with the session
   * (issue 16: validate reads the user anyway, and a group removed takes effect at once). A
   * login passes them, validate fills them in (createSessionValidator); a record read from the
   * store has them only when written before issue 16.
   */
  username?: string;
  groups?: string[];
  email?: string;
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
  /** Signed in through an OpenID Connect provider: which, and its session id (back-channel logout). */
  idp?: IdentityProviderSession;
}

/** Who the user is, from the user record: what validate adds to a session (ValidSession). */
export interface SessionIdentity {
  username: string;
  groups: string[];
  email: string;
}

export interface IdentityProviderSession {
  provider: string;
  /** The ID token's `sid`, when the provider sends one. */
  sid?: string;
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

/**
 * A session that validated. As the validator returns it (createSessionValidator), its auth
 * carries the user's identity; as the repository returns it (`ValidSession<SessionAuth>`), only
 * what the record holds.
 */
export interface ValidSession<A extends SessionAuth = SessionAuth & SessionIdentity> {
  /** The id the cookie carries: a secret, never stored. */
  sid: string;
  /** The session's stored name and its name on the revocation feed (storedSessionId(sid)). */
  id: string;
  auth: A;
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
  /**
   * At most this many sessions per user (SESSIONS_PER_USER_MAX; 0 or absent: no limit). A login
   * that goes over ends the user's least recently active sessions in its transaction, as a
   * revocation (onRevoked), and tells onCapped.
   */
  maxSessionsPerUser?: number;
  /** Told about sessions a login ended because its user had too many (maxSessionsPerUser). */
  onCapped?: (userId: string, ids: readonly string[]) => void;
}

/** How long a pending index entry may exist before its session does (a login in progress). */
export const LOGIN_GRACE_MS = 10_000;

/** A login undone because "end all sessions" ran meanwhile (the user signs in again). */
export const loginInterrupted = () => new GatehouseError('LOGIN_INTERRUPTED');
