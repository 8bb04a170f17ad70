import { LRUCache } from 'lru-cache';
import type { Logger } from '../../../common/src/logger.js';
import { storedSessionId } from '../../../common/src/session-id.js';
import { type Sealer, UnreadableSealError } from './sealing.js';
import {
  authenticationOfSession,
  type Lifetimes,
  type SessionAuth,
  type SessionRepositoryOptions,
  type SessionSummary,
  type ValidSession,
} from './session-repository.js';

/**
 * The parts the session repository's implementations (session-repository-redis.ts, -memory.ts)
 * share: expiry and sliding, the record's JSON and its sealing, summaries. The interface and the
 * record's shape are session-repository.ts.
 */
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
    ): Promise<ValidSession<SessionAuth> | null> {
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
): ValidSession<SessionAuth> => ({
  sid,
  id,
  auth,
  expiresAt: at + remainingMs(auth, lifetimes, at),
  absoluteExpiresAt: absoluteExpiry(auth, lifetimes),
});

/** The longest user-agent a record keeps (userAgentSummary). */
export const USER_AGENT_MAX = 64;

/**
 * What a record keeps of a user-agent: "Chrome 126 on Linux", "Firefox 127 on Windows", as the
 * sessions page shows it (a full browser user-agent is 110 to 200 bytes, most of it the same in
 * every session); anything else is cut to 64 characters (control characters dropped). Applied to
 * a summary, it gives the summary back.
 */
export function userAgentSummary(ua: string): string {
  const browser =
    match(ua, /\bEdgA?\/(\d+)/, 'Edge') ??
    match(ua, /\bEdg(?:e|iOS)?\/(\d+)/, 'Edge') ??
    match(ua, /\bOPR\/(\d+)/, 'Opera') ??
    match(ua, /\bSamsungBrowser\/(\d+)/, 'Samsung Internet') ??
    match(ua, /\b(?:Firefox|FxiOS)\/(\d+)/, 'Firefox') ??
    match(ua, /\b(?:Chrome|CriOS)\/(\d+)/, 'Chrome') ??
    (/\bSafari\//.test(ua) ? match(ua, /\bVersion\/(\d+)/, 'Safari') : undefined);
  const os = /\b(?:iPhone|iPad|iPod)\b/.test(ua)
    ? 'iOS'
    : /\bAndroid\b/.test(ua)
      ? 'Android'
      : /\bWindows\b/.test(ua)
        ? 'Windows'
        : /\bMac OS X\b|\bMacintosh\b/.test(ua)
          ? 'macOS'
          : /\bCrOS\b/.test(ua)
            ? 'ChromeOS'
            : /\bLinux\b/.test(ua)
              ? 'Linux'
              : undefined;
  if (browser) return os ? `${browser} on ${os}` : browser;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: dropping them is the point
  return ua.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, USER_AGENT_MAX);
}

const match = (ua: string, pattern: RegExp, name: string): string | undefined => {
  const version = pattern.exec(ua)?.[1];
  return version === undefined ? undefined : `${name} ${version}`;
};

/**
 * The record as stored: `{"auth": …}`, with only what the session itself knows (issue 16): who
 * (the user id, not their name, groups or email: validate reads those from the user record),
 * when, how (amr, authTime, remember, the identity provider), from where (address, user-agent
 * summary). The `cookie` member carries nothing (the cookie's attributes are the middleware's, its
 * lifetime the record's expiry); it is written because express-session needs one on every
 * session it loads, and versions before the repository load records through express-session (a
 * rolling upgrade mixes them).
 */
export const recordJson = (auth: SessionAuth) =>
  JSON.stringify({
    cookie: { originalMaxAge: null, expires: null, path: '/' },
    auth: storedAuth(auth),
  });

/** The members of `auth` a record keeps (recordJson), in a fixed order: both repositories. */
export function storedAuth(auth: SessionAuth): SessionAuth {
  const { userId, createdAt, amr, authTime, remember, ip, ua, idp } = auth;
  return {
    userId,
    createdAt,
    ...(amr !== undefined ? { amr } : {}),
    ...(authTime !== undefined ? { authTime } : {}),
    ...(remember !== undefined ? { remember } : {}),
    ...(ip !== undefined ? { ip } : {}),
    ...(ua !== undefined ? { ua: userAgentSummary(ua) } : {}),
    ...(idp !== undefined ? { idp } : {}),
  };
}

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

/**
 * Ending one session, by its cookie's id or by its stored id, given an implementation's delete by
 * stored id (SessionRepository.deleteSession and deleteSessionById).
 */
export function endOneSession(deleteById: (id: string, userId?: string) => Promise<boolean>) {
  return {
    deleteSession: (sid: string, userId?: string) => deleteById(storedSessionId(sid), userId),
    deleteSessionById: deleteById,
  };
}

/**
 * The live-session count (SessionRepository.countLiveSessions) is kept in this many sorted sets
 * ("shards"), so a Cluster spreads its writes over several masters and no set grows past a
 * sixteenth of the sessions.
 */
export const LIVE_SHARDS = 16;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** The shard of a stored id (base64url of a SHA-256: its first character is uniform). */
export const liveShardOf = (id: string): number =>
  Math.max(0, BASE64URL.indexOf(id.charAt(0))) % LIVE_SHARDS;
/**
 * A stored id as a member of its live-session shard: its first 16 characters (96 bits; two live
 * sessions sharing them, about one chance in 10^16 at 10^6 sessions, would count as one). Shorter
 * members keep the count's memory small beside the record.
 */
export const liveMember = (id: string): string => id.slice(0, 16);

/** An entry older than this, in the per-user index, is certainly ended (clock skew allowed). */
export const deadBefore = (lifetimes: Lifetimes, t: number): number =>
  t - Math.max(lifetimes.idleSeconds, lifetimes.rememberIdleSeconds) * 1000 - 60_000;

/** The stored id of the session deleteUserSessions keeps (the caller's own), if any. */
export const storedIdExcept = (exceptSid: string | undefined) =>
  exceptSid === undefined ? undefined : storedSessionId(exceptSid);
