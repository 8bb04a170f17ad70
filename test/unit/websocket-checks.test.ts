/**
 * When the gateway checks open WebSockets again (gateway/src/websocket-checks.ts), on a fake
 * clock and without sockets: once per session per interval, at phases spread over the interval,
 * with bounded concurrency and no check skipped; a revocation event closes a session's sockets at
 * once, a `changed` event checks them at once. The same against real processes and 2,000
 * sessions: test/e2e/websocket-scale.test.ts.
 */
import type { IncomingMessage } from 'node:http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { storedSessionId } from '../../common/src/session-id.js';
import type { RevocationFeed, RevocationListener } from '../../gateway/src/revocation-stream.js';
import { createValidationCache } from '../../gateway/src/validation-cache.js';
import type { Admission, Admit } from '../../gateway/src/websocket.js';
import {
  type CheckedSocket,
  createSessionChecks,
  UNAVAILABLE_ROUNDS,
} from '../../gateway/src/websocket-checks.js';
import { silentLogger } from '../helpers/logger.js';

const INTERVAL = 2000;
const OK: Admission = {
  ok: true,
  routeId: 'r',
  target: {} as Extract<Admission, { ok: true }>['target'],
};

function socket(sid: string) {
  const s = {
    req: { headers: { cookie: `gatehouse=${sid}` } } as unknown as IncomingMessage,
    requestId: sid,
    closing: false,
    closed: undefined as { code: number; reason: string; at: number } | undefined,
    close(code: number, reason: string) {
      s.closing = true;
      s.closed = { code, reason, at: Date.now() };
    },
  };
  return s satisfies CheckedSocket;
}

function fakeFeed() {
  const listeners = new Set<RevocationListener>();
  const feed: RevocationFeed = {
    sessionOf: (cookie) => cookie?.split('=')[1] ?? null,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return {
    feed,
    emit: (event: 'revoke' | 'changed', sids: string[]) => {
      for (const l of listeners) l(event, sids);
    },
  };
}

/** An admit that answers after `latencyMs` (fake time) and records each call. */
function fakeAdmit(latencyMs: number, answer: (sid: string) => Admission = () => OK) {
  const calls: Array<{ sid: string; at: number }> = [];
  let running = 0;
  let peak = 0;
  const admit: Admit = async (req, options) => {
    const sid = String(req.headers.cookie).split('=')[1] ?? '';
    const key = `validate ${sid}`;
    let pending = options.cache?.get(key) as Promise<void> | undefined;
    if (!pending) {
      calls.push({ sid, at: Date.now() });
      running += 1;
      peak = Math.max(peak, running);
      pending = new Promise<void>((r) => setTimeout(r, latencyMs)).finally(() => {
        running -= 1;
      });
      options.cache?.set(key, pending);
    }
    await pending;
    return answer(sid);
  };
  return { admit, calls, peak: () => peak };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('checking open WebSockets again', () => {
  it('checks each of 5,000 sessions once per interval, spread over it, one validate per session', async () => {
    const { admit, calls, peak } = fakeAdmit(5);
    const checks = createSessionChecks({ admit, logger: silentLogger, intervalMs: INTERVAL });
    const n = 5000;
    // two sockets per session for the first 100: still one validate per check
    for (let i = 0; i < n; i++) {
      checks.track(socket(`s${i}`));
      if (i < 100) checks.track(socket(`s${i}`));
    }
    expect(checks.sessions).toBe(n);
    await vi.advanceTimersByTimeAsync(INTERVAL); // settle the first phases
    const start = Date.now();
    calls.length = 0;
    await vi.advanceTimersByTimeAsync(INTERVAL * 3);
    const perSession = new Map<string, number>();
    for (const c of calls) perSession.set(c.sid, (perSession.get(c.sid) ?? 0) + 1);
    // every session three times in three intervals: none skipped, none doubled
    expect(perSession.size).toBe(n);
    expect(Math.min(...perSession.values())).toBe(3);
    expect(Math.max(...perSession.values())).toBe(3);
    // spread: per 100 ms window about n/20, never a burst of n
    const windows = new Array((INTERVAL * 3) / 100).fill(0);
    // (start, start + 3 intervals]: three of each phase
    for (const c of calls) windows[Math.ceil((c.at - start) / 100) - 1] += 1;
    const mean = (n * 3) / windows.length;
    expect(Math.max(...windows)).toBeLessThan(mean * 2);
    expect(Math.min(...windows)).toBeGreaterThan(mean / 2);
    expect(peak()).toBeLessThanOrEqual(64);
  });

  it('keeps at most maxConcurrent checks running, and checks a session due while running right after', async () => {
    // validate slower than the interval: each session is due again while its check runs
    const { admit, calls, peak } = fakeAdmit(INTERVAL * 1.5);
    const checks = createSessionChecks({
      admit,
      logger: silentLogger,
      intervalMs: INTERVAL,
      maxConcurrent: 8,
    });
    for (let i = 0; i < 4; i++) checks.track(socket(`s${i}`));
    await vi.advanceTimersByTimeAsync(INTERVAL * 10);
    expect(peak()).toBeLessThanOrEqual(4);
    // back to back: about 10 / 1.5 checks each, none skipped for being busy
    for (let i = 0; i < 4; i++)
      expect(calls.filter((c) => c.sid === `s${i}`).length).toBeGreaterThanOrEqual(6);
    const many = createSessionChecks({
      admit,
      logger: silentLogger,
      intervalMs: INTERVAL,
      maxConcurrent: 8,
    });
    const before = peak();
    for (let i = 0; i < 100; i++) many.track(socket(`m${i}`));
    checks.close();
    await vi.advanceTimersByTimeAsync(INTERVAL * 3);
    expect(peak()).toBeLessThanOrEqual(Math.max(before, 8 + 4));
    many.close();
  });

  it('closes a session ended without any event within one interval plus one validate', async () => {
    let ended = false;
    const { admit } = fakeAdmit(50, () =>
      ended ? { ok: false, status: 401, code: 'UNAUTHENTICATED' } : OK,
    );
    const checks = createSessionChecks({ admit, logger: silentLogger, intervalMs: INTERVAL });
    const sockets = Array.from({ length: 200 }, (_, i) => socket(`s${i}`));
    const untracks = sockets.map((s) => checks.track(s));
    await vi.advanceTimersByTimeAsync(INTERVAL * 1.3);
    ended = true;
    const at = Date.now();
    await vi.advanceTimersByTimeAsync(INTERVAL + 100);
    for (const s of sockets) {
      expect(s.closed?.reason).toBe('session ended');
      expect((s.closed?.at ?? Infinity) - at).toBeLessThanOrEqual(INTERVAL + 50 + INTERVAL / 50);
    }
    for (const u of untracks) u();
    expect(checks.sessions).toBe(0);
  });

  it('closes every socket of a revoked session at once from the feed, and no other', async () => {
    const { feed, emit } = fakeFeed();
    const { admit, calls } = fakeAdmit(5);
    const checks = createSessionChecks({ admit, logger: silentLogger, intervalMs: INTERVAL, feed });
    const sockets = Array.from({ length: 1000 }, (_, i) => socket(`s${i % 500}`));
    for (const s of sockets) checks.track(s);
    expect(checks.sessions).toBe(500);
    await vi.advanceTimersByTimeAsync(INTERVAL);
    const before = calls.length;
    emit('revoke', ['s7', 'unknown']);
    // synchronously, before any timer or validate
    const closed = sockets.filter((s) => s.closed);
    expect(closed.map((s) => s.requestId)).toEqual(['s7', 's7']);
    expect(
      closed.every((s) => s.closed?.code === 1008 && s.closed.reason === 'session ended'),
    ).toBe(true);
    expect(calls.length).toBe(before);
    // `changed`: that session is checked now, not at its phase
    emit('changed', ['s9']);
    await vi.advanceTimersByTimeAsync(6);
    expect(calls.slice(before).map((c) => c.sid)).toContain('s9');
    checks.close();
    emit('revoke', ['s9']);
    expect(sockets.find((s) => s.requestId === 's9')?.closed).toBeUndefined();
  });

  it('indexes a socket opened before the feed named the cookie at its next check', async () => {
    const { feed, emit } = fakeFeed();
    let known = false;
    const late: RevocationFeed = { ...feed, sessionOf: (c) => (known ? feed.sessionOf(c) : null) };
    const { admit } = fakeAdmit(5);
    const checks = createSessionChecks({
      admit,
      logger: silentLogger,
      intervalMs: INTERVAL,
      feed: late,
    });
    const s = socket('early');
    checks.track(s);
    known = true;
    await vi.advanceTimersByTimeAsync(INTERVAL + 10);
    emit('revoke', ['early']);
    expect(s.closed?.reason).toBe('session ended');
  });

  it(`closes with 1013 after ${UNAVAILABLE_ROUNDS} unavailable checks in a row, not before`, async () => {
    const { admit } = fakeAdmit(5, () => ({
      ok: false,
      status: 503,
      code: 'SESSION_SERVICE_UNAVAILABLE',
    }));
    const checks = createSessionChecks({ admit, logger: silentLogger, intervalMs: INTERVAL });
    const s = socket('a');
    checks.track(s);
    await vi.advanceTimersByTimeAsync(INTERVAL * (UNAVAILABLE_ROUNDS - 1));
    expect(s.closed).toBeUndefined();
    await vi.advanceTimersByTimeAsync(INTERVAL * 1.1);
    expect(s.closed?.code).toBe(1013);
    checks.close();
  });
});

describe('naming a socket’s session as the feed does (validation-cache.ts storedIdIn)', () => {
  it('is the SHA-256 of the cookie’s session id, with the last hello’s cookie name, also while down', () => {
    const cache = createValidationCache({ ttlMs: 2000, maxEntries: 10 });
    const cookie = 'theme=dark; gatehouse=s%3Aabc.signature';
    expect(cache.storedIdIn(cookie)).toBeNull(); // no hello yet: the cookie's name is unknown
    cache.enable('gatehouse');
    expect(cache.storedIdIn(cookie)).toBe(storedSessionId('abc'));
    cache.disable();
    expect(cache.storedIdIn(cookie)).toBe(storedSessionId('abc'));
    expect(cache.storedIdIn('theme=dark')).toBeNull();
    expect(cache.storedIdIn('gatehouse=unsigned')).toBeNull();
  });
});

describe('an upgrade in flight when its session is revoked', () => {
  it('is closed as it opens when the revocation came after its admission began, not before', async () => {
    const { feed, emit } = fakeFeed();
    const { admit } = fakeAdmit(5);
    const checks = createSessionChecks({ admit, logger: silentLogger, intervalMs: INTERVAL, feed });
    const before = performance.now();
    emit('revoke', ['late']);
    const inFlight = socket('late');
    checks.track(inFlight, before);
    // an older revocation (a session id reused is impossible; the admission began after it)
    const fresh = socket('late');
    checks.track(fresh, performance.now() + 1);
    await Promise.resolve();
    expect(inFlight.closed).toMatchObject({ code: 1008, reason: 'session ended' });
    expect(fresh.closed).toBeUndefined();
    checks.close();
  });
});
