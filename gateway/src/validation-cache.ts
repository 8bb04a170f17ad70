import { parse as parseCookie } from 'cookie';
import { decodeJwt } from 'jose';
import { LRUCache } from 'lru-cache';
import { MAX_COOKIE_BYTES } from '../../common/src/limits.js';
import { storedSessionId } from '../../common/src/session-id.js';
import type { Validation } from './validate-answer.js';

/**
 * The gateway's cache of positive validate answers, keyed by the session cookie's value (the very
 * string validate reads, parsed by the same `cookie` package) and the route audience.
 *
 * Correctness (docs/performance.md):
 * - only 200 answers are kept, never 401 or 503;
 * - an entry lives at most `ttlMs`, never past the session's `expiresAt` (minus a margin for
 *   clocks) nor within `jwtMarginMs` of the signed identity's `exp`;
 * - it is on only while the revocation stream is connected (`enable`); `disable` flushes it, and
 *   so does every (re)connection, since events may have been missed meanwhile;
 * - `revoke(ids)` drops every entry of those sessions; an answer still in flight when its
 *   session was revoked (or the cache flushed) is not stored (`begin`/`store` tickets).
 *
 * Sessions are named here as in Redis and on the revocation feed: by their stored id, the SHA-256
 * of the cookie's session id (common/src/session-id.ts), computed only on a miss, never on a hit.
 * Access tokens (`lookupToken`) are kept the same way, keyed by the token and the audience, and
 * named by their stored id, the SHA-256 of the token: the id a token's revocation is published
 * under, so `revoke` drops a revoked token's entries exactly as a session's.
 */
export interface CacheOptions {
  /** Longest life of an entry; 0 disables the cache. */
  ttlMs: number;
  /** Most entries kept; the least recently used go first. */
  maxEntries: number;
  /** An entry ends this long before the session's expiresAt (clock differences). */
  expiryMarginMs?: number;
  /** An entry ends when the JWT it carries has less than this left. */
  jwtMarginMs?: number;
  now?: () => number;
}

interface Entry {
  /** The session's stored id (storedSessionId). */
  sid: string;
  validation: Validation;
  until: number;
}

/** What a miss needs to store its answer later. */
export interface Ticket {
  key: string;
  /** The session's stored id (storedSessionId), as revocation events name it. */
  sid: string;
  epoch: number;
  /** When the miss began. */
  at: number;
}

export type CacheLookup =
  | { outcome: 'hit'; validation: Validation }
  | { outcome: 'miss'; ticket: Ticket }
  /** Not cacheable: cache off, no session cookie, or one validate would refuse anyway. */
  | { outcome: 'bypass' };

/** Revocations remembered for answers in flight; past this many the cache is flushed instead. */
const MAX_RECENT_REVOCATIONS = 50_000;
const RECENT_REVOCATION_MS = 60_000;

/** The session id inside an express-session cookie value (`s:<sid>.<signature>`, decoded). */
export function sessionIdOf(value: string): string | null {
  if (!value.startsWith('s:')) return null;
  const dot = value.lastIndexOf('.');
  return dot > 2 ? value.slice(2, dot) : null;
}

/** `exp` (seconds) of a compact JWT, without verifying it (it came from the session-service). */
export function jwtExpiry(jwt: string): number | null {
  try {
    const { exp } = decodeJwt(jwt);
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : null;
  } catch {
    return null;
  }
}

export type ValidationCache = ReturnType<typeof createValidationCache>;

export function createValidationCache(options: CacheOptions) {
  const now = options.now ?? Date.now;
  const expiryMarginMs = options.expiryMarginMs ?? 1000;
  const jwtMarginMs = options.jwtMarginMs ?? 10_000;
  /** sid -> keys of its entries (one per audience the session used), for `revoke`. */
  const bySid = new Map<string, Set<string>>();
  /**
   * key -> entry, capped by lru-cache. Expiry stays ours (`until`, from the session's and the
   * JWT's end, on the injectable clock); `dispose` runs on every way out (evicted, replaced,
   * deleted, cleared), so the index above never names a key that is gone.
   */
  const entries = new LRUCache<string, Entry>({
    max: Math.max(1, options.maxEntries),
    dispose: (entry, key) => {
      const keys = bySid.get(entry.sid);
      keys?.delete(key);
      if (keys?.size === 0) bySid.delete(entry.sid);
    },
  });
  /** sid -> epoch of its revocation, for answers in flight (see `store`). */
  const recent = new Map<string, { epoch: number; at: number }>();
  /** Moves on at every revocation and flush: a ticket older than a revocation cannot store. */
  let epoch = 0;
  /** Nothing issued before this epoch may store (the last flush). */
  let floor = 0;
  /** The cookie validate reads (from the stream's hello); null while the stream is down. */
  let cookieName: string | null = null;
  /** The last hello's cookie name, kept while the stream is down (storedIdIn). */
  let lastCookieName: string | null = null;
  const stats = { hits: 0, misses: 0, bypasses: 0 };

  function flush() {
    entries.clear();
    bySid.clear();
    recent.clear();
    epoch += 1;
    floor = epoch;
  }

  /** The session cookie's value and the session id in it, as validate would read them. */
  function cookieIn(
    cookieHeader: string | undefined,
    name = cookieName,
  ): { value: string; rawSid: string } | null {
    if (!name || options.ttlMs <= 0 || !cookieHeader) return null;
    if (cookieHeader.length > MAX_COOKIE_BYTES) return null; // validate refuses it too
    let value: string | undefined;
    try {
      value = parseCookie(cookieHeader)[name];
    } catch {
      return null;
    }
    const rawSid = value ? sessionIdOf(value) : null;
    return value && rawSid ? { value, rawSid } : null;
  }

  /** The session cookie's value and its session's stored id (what `revoke` takes). */
  function sessionIn(cookieHeader: string | undefined): { value: string; sid: string } | null {
    const cookie = cookieIn(cookieHeader);
    return cookie ? { value: cookie.value, sid: storedSessionId(cookie.rawSid) } : null;
  }

  return {
    stats,
    get enabled() {
      return options.ttlMs > 0 && cookieName !== null;
    },
    get size() {
      return entries.size;
    },

    sessionIn,

    /**
     * The stored id of the session this Cookie header carries, as revocation events name it,
     * read with the last hello's cookie name even while the stream is down (open WebSockets are
     * grouped by it, websocket-checks.ts); null before any hello or without a session cookie.
     */
    storedIdIn(cookieHeader: string | undefined): string | null {
      const cookie = cookieIn(cookieHeader, cookieName ?? lastCookieName);
      return cookie ? storedSessionId(cookie.rawSid) : null;
    },

    lookup(cookieHeader: string | undefined, audience: string | undefined): CacheLookup {
      const session = cookieIn(cookieHeader);
      if (!session) {
        stats.bypasses += 1;
        return { outcome: 'bypass' };
      }
      const { value, rawSid } = session;
      const key = `${audience ?? ''}\u0000${value}`;
      const entry = entries.get(key);
      if (entry) {
        if (entry.until > now()) {
          stats.hits += 1;
          return { outcome: 'hit', validation: entry.validation };
        }
        entries.delete(key);
      }
      stats.misses += 1;
      return { outcome: 'miss', ticket: { key, sid: storedSessionId(rawSid), epoch, at: now() } };
    },

    /**
     * The same for an access token (`Authorization: Bearer gatehouse_…`): keyed apart from
     * cookies, named by the token's stored id (what its revocation names). On only while the
     * revocation stream is connected, as for sessions.
     */
    lookupToken(token: string, audience: string | undefined): CacheLookup {
      if (!cookieName || options.ttlMs <= 0) {
        stats.bypasses += 1;
        return { outcome: 'bypass' };
      }
      const key = `\u0001${audience ?? ''}\u0000${token}`;
      const entry = entries.get(key);
      if (entry) {
        if (entry.until > now()) {
          stats.hits += 1;
          return { outcome: 'hit', validation: entry.validation };
        }
        entries.delete(key);
      }
      stats.misses += 1;
      return { outcome: 'miss', ticket: { key, sid: storedSessionId(token), epoch, at: now() } };
    },

    /** Keep a positive answer of the miss `ticket`, unless it may be stale already. */
    store(ticket: Ticket, validation: Validation): boolean {
      const t = now();
      if (!cookieName || ticket.epoch < floor) return false;
      // Older than what `recent` remembers: a revocation of it may be forgotten already.
      if (t - ticket.at >= RECENT_REVOCATION_MS) return false;
      const revoked = recent.get(ticket.sid);
      if (revoked && revoked.epoch > ticket.epoch) return false;
      let until = t + options.ttlMs;
      const expiresAt = Date.parse(validation.session?.expiresAt ?? '');
      if (!Number.isFinite(expiresAt)) return false;
      until = Math.min(until, expiresAt - expiryMarginMs);
      if (validation.jwt) {
        const exp = jwtExpiry(validation.jwt);
        if (exp === null) return false;
        until = Math.min(until, exp * 1000 - jwtMarginMs);
      }
      if (until <= t) return false;
      entries.set(ticket.key, { sid: ticket.sid, validation, until });
      let keys = bySid.get(ticket.sid);
      if (!keys) {
        keys = new Set();
        bySid.set(ticket.sid, keys);
      }
      keys.add(ticket.key);
      return true;
    },

    /** These sessions (stored ids) ended: drop their entries and refuse answers in flight. */
    revoke(sids: readonly string[]) {
      epoch += 1;
      const t = now();
      for (const sid of sids) {
        for (const key of [...(bySid.get(sid) ?? [])]) entries.delete(key);
        recent.delete(sid);
        recent.set(sid, { epoch, at: t });
      }
      // Forget revocations no answer in flight can predate; when too many remain, flush.
      for (const [sid, r] of recent) {
        if (t - r.at < RECENT_REVOCATION_MS) break;
        recent.delete(sid);
      }
      if (recent.size > MAX_RECENT_REVOCATIONS) flush();
    },

    /** The stream is connected (again): start from nothing, keyed on validate's cookie. */
    enable(name: string) {
      flush();
      cookieName = name;
      lastCookieName = name;
    },

    /** The stream is down: events may be missed, so nothing is served from the cache. */
    disable() {
      cookieName = null;
      flush();
    },
  };
}
