/**
 * The gateway's cache of validate answers (gateway/src/validation-cache.ts) on a clock the test
 * moves: what is kept, for how long, and what a revocation or a lost revocation stream drops.
 * The same cache behind real gateway processes: test/integration/gateway-cache.test.ts.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { authenticationOf } from '../../common/src/authentication.js';
import { storedSessionId } from '../../common/src/session-id.js';
import type { Validation } from '../../gateway/src/validate-answer.js';
import {
  type CacheLookup,
  createValidationCache,
  jwtExpiry,
  sessionIdOf,
  type Ticket,
  type ValidationCache,
} from '../../gateway/src/validation-cache.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const HOUR = 3_600_000;

/** A cookie header carrying session `sid` the way express-session signs it (`s:<sid>.<sig>`). */
const cookieOf = (sid: string, name = 'gatehouse') => `${name}=s%3A${sid}.signature; theme=dark`;

/** A compact JWT (unsigned: the cache reads `exp` only, it never verifies). */
function jwtExpiringAt(ms: number): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'EdDSA' })}.${part({ sub: 'alice', exp: Math.floor(ms / 1000) })}.c2ln`;
}

function validation(options: { expiresAt?: number | string; jwt?: string } = {}): Validation {
  const expiresAt =
    typeof options.expiresAt === 'string'
      ? options.expiresAt
      : new Date(options.expiresAt ?? T0 + HOUR).toISOString();
  return {
    user: { id: 'u1', username: 'alice', groups: ['staff'], email: 'alice@example.com' },
    session: { createdAt: new Date(T0).toISOString(), expiresAt },
    authentication: authenticationOf(['pwd', 'otp'], T0 - 60_000),
    ...(options.jwt ? { jwt: options.jwt } : {}),
  };
}

function ticketOf(lookup: CacheLookup): Ticket {
  if (lookup.outcome !== 'miss') throw new Error(`expected a miss, got ${lookup.outcome}`);
  return lookup.ticket;
}

let now: number;
let cache: ValidationCache;

function newCache(options: { ttlMs?: number; maxEntries?: number } = {}) {
  cache = createValidationCache({
    ttlMs: options.ttlMs ?? 5000,
    maxEntries: options.maxEntries ?? 100,
    expiryMarginMs: 1000,
    jwtMarginMs: 10_000,
    now: () => now,
  });
  cache.enable('gatehouse');
  return cache;
}

/** Miss, store the answer, and say whether it was kept. */
function remember(cookie: string, answer = validation(), audience?: string): boolean {
  return cache.store(ticketOf(cache.lookup(cookie, audience)), answer);
}

beforeEach(() => {
  now = T0;
  newCache();
});

describe('when nothing may be cached', () => {
  it('bypasses while the revocation stream is not connected (before enable, after disable)', () => {
    const off = createValidationCache({ ttlMs: 5000, maxEntries: 10, now: () => now });
    expect(off.enabled).toBe(false);
    expect(off.lookup(cookieOf('a'), undefined).outcome).toBe('bypass');
    cache.disable();
    expect(cache.enabled).toBe(false);
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('bypass');
  });

  it('bypasses with a TTL of 0', () => {
    newCache({ ttlMs: 0 });
    expect(cache.enabled).toBe(false);
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('bypass');
  });

  it.each([
    ['no Cookie header', undefined],
    ['no session cookie', 'theme=dark'],
    ['another cookie name', cookieOf('a', 'sid')],
    ['an unsigned value', 'gatehouse=plain'],
    ['no signature', 'gatehouse=s%3Aabc'],
    ['more cookie bytes than validate reads', `${cookieOf('a')}; pad=${'x'.repeat(9000)}`],
  ])('bypasses a request with %s', (_what, header) => {
    expect(cache.lookup(header, undefined).outcome).toBe('bypass');
    expect(cache.stats.bypasses).toBe(1);
  });
});

describe('a positive answer', () => {
  it('is served from the cache until the TTL ends, then asked again', () => {
    expect(remember(cookieOf('a'))).toBe(true);
    now += 4999;
    const hit = cache.lookup(cookieOf('a'), undefined);
    expect(hit.outcome).toBe('hit');
    expect(hit.outcome === 'hit' && hit.validation.user.username).toBe('alice');
    // how the session signed in comes back with it: route requirements are checked on hits too
    expect(hit.outcome === 'hit' && hit.validation.authentication).toEqual({
      amr: ['pwd', 'otp', 'mfa'],
      acr: 'aal2',
      authTime: T0 - 60_000,
    });
    now += 1;
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('miss');
    expect(cache.size).toBe(0);
    expect(cache.stats).toEqual({ hits: 1, misses: 2, bypasses: 0 });
  });

  it('is kept per audience: a route asks for its own signed identity', () => {
    remember(cookieOf('a'), validation({ jwt: jwtExpiringAt(T0 + HOUR) }), 'finance');
    expect(cache.lookup(cookieOf('a'), 'finance').outcome).toBe('hit');
    expect(cache.lookup(cookieOf('a'), 'app').outcome).toBe('miss');
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('miss');
  });

  it('never outlives the session: it ends a margin before expiresAt', () => {
    expect(remember(cookieOf('a'), validation({ expiresAt: T0 + 3000 }))).toBe(true);
    now = T0 + 1999;
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('hit');
    now = T0 + 2000;
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('miss');
  });

  it('never outlives its signed identity: it ends a margin before exp', () => {
    expect(remember(cookieOf('a'), validation({ jwt: jwtExpiringAt(T0 + 12_000) }), 'app')).toBe(
      true,
    );
    now = T0 + 1999;
    expect(cache.lookup(cookieOf('a'), 'app').outcome).toBe('hit');
    now = T0 + 2000;
    expect(cache.lookup(cookieOf('a'), 'app').outcome).toBe('miss');
  });

  it.each([
    ['a session ending within the margin', validation({ expiresAt: T0 + 1000 })],
    ['an expiresAt that is no date', validation({ expiresAt: 'soon' })],
    ['a signed identity ending within the margin', validation({ jwt: jwtExpiringAt(T0 + 9000) })],
    ['a signed identity that is no JWT', validation({ jwt: 'not.a.jwt' })],
  ])('is not kept with %s', (_what, answer) => {
    expect(remember(cookieOf('a'), answer)).toBe(false);
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('miss');
  });

  it('is not kept when it took a minute or more to come back', () => {
    const ticket = ticketOf(cache.lookup(cookieOf('a'), undefined));
    now += 60_000;
    expect(cache.store(ticket, validation())).toBe(false);
  });

  it('pushes out the oldest entry past maxEntries', () => {
    newCache({ maxEntries: 2 });
    remember(cookieOf('a'));
    remember(cookieOf('b'));
    remember(cookieOf('c'));
    expect(cache.size).toBe(2);
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('miss');
    expect(cache.lookup(cookieOf('b'), undefined).outcome).toBe('hit');
    expect(cache.lookup(cookieOf('c'), undefined).outcome).toBe('hit');
  });
});

describe('when a session is revoked', () => {
  it('drops every entry of that session (all audiences), and only those', () => {
    remember(cookieOf('a'));
    remember(cookieOf('a'), validation({ jwt: jwtExpiringAt(T0 + HOUR) }), 'app');
    remember(cookieOf('b'));
    cache.revoke([storedSessionId('a')]);
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('miss');
    expect(cache.lookup(cookieOf('a'), 'app').outcome).toBe('miss');
    expect(cache.lookup(cookieOf('b'), undefined).outcome).toBe('hit');
  });

  it('names sessions by their stored id (SHA-256), never by the id in the cookie', () => {
    remember(cookieOf('a'));
    cache.revoke(['a']);
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('hit');
    expect(cache.sessionIn(cookieOf('a'))).toEqual({
      value: 's:a.signature',
      sid: storedSessionId('a'),
    });
  });

  it('does not keep an answer that was in flight when the revocation came', () => {
    const inFlight = ticketOf(cache.lookup(cookieOf('a'), undefined));
    const other = ticketOf(cache.lookup(cookieOf('b'), undefined));
    cache.revoke([storedSessionId('a')]);
    expect(cache.store(inFlight, validation())).toBe(false);
    expect(cache.store(other, validation())).toBe(true);
    // asked again after the revocation: this answer is fresh (the session-service said 200)
    expect(remember(cookieOf('a'))).toBe(true);
  });
});

describe('when the revocation stream drops or reconnects', () => {
  it('flushes, and keeps no answer asked for before', () => {
    remember(cookieOf('a'));
    const inFlight = ticketOf(cache.lookup(cookieOf('b'), undefined));
    cache.disable();
    cache.enable('gatehouse');
    expect(cache.size).toBe(0);
    expect(cache.store(inFlight, validation())).toBe(false);
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('miss');
  });

  it('keys on the cookie name the stream announced', () => {
    cache.enable('sid');
    expect(cache.lookup(cookieOf('a'), undefined).outcome).toBe('bypass');
    expect(cache.lookup(cookieOf('a', 'sid'), undefined).outcome).toBe('miss');
  });
});

describe('reading cookies and tokens', () => {
  it.each([
    ['s:abc.sig', 'abc'],
    ['s:a.b.sig', 'a.b'],
    ['s:.sig', null],
    ['abc.sig', null],
    ['s:abc', null],
  ])('sessionIdOf(%j) is %j', (value, sid) => {
    expect(sessionIdOf(value)).toBe(sid);
  });

  it('reads exp of a JWT without verifying it, and null for anything else', () => {
    expect(jwtExpiry(jwtExpiringAt(T0))).toBe(T0 / 1000);
    expect(jwtExpiry('not.a.jwt')).toBeNull();
    const noExp = `${Buffer.from('{}').toString('base64url')}.${Buffer.from('{"sub":"a"}').toString('base64url')}.c2ln`;
    expect(jwtExpiry(noExp)).toBeNull();
  });
});
