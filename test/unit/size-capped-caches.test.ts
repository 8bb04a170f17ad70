/**
 * The caps of the size-capped caches (lru-cache under each): what goes first when one is full,
 * and that a cache's own bookkeeping (the validation cache's index by session) follows.
 */
import { describe, expect, it } from 'vitest';
import { authenticationOf } from '../../common/src/authentication.js';
import { storedSessionId } from '../../common/src/session-id.js';
import type { Validation } from '../../gateway/src/validate-answer.js';
import { createValidationCache } from '../../gateway/src/validation-cache.js';
import { createSlideMemory } from '../../session-service/src/domain/session-records.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const cookieOf = (sid: string) => `gatehouse=s%3A${sid}.signature`;
const answer: Validation = {
  user: { id: 'u1', username: 'alice', groups: [], email: '' },
  session: {
    createdAt: new Date(T0).toISOString(),
    expiresAt: new Date(T0 + 3_600_000).toISOString(),
  },
  authentication: authenticationOf(['pwd'], T0),
};

describe('the validation cache when full', () => {
  function fullCache() {
    const cache = createValidationCache({ ttlMs: 5000, maxEntries: 2, now: () => T0 });
    cache.enable('gatehouse');
    const remember = (sid: string) => {
      const lookup = cache.lookup(cookieOf(sid), undefined);
      if (lookup.outcome !== 'miss') throw new Error(`expected a miss, got ${lookup.outcome}`);
      return cache.store(lookup.ticket, answer);
    };
    return {
      cache,
      remember,
      outcome: (sid: string) => cache.lookup(cookieOf(sid), undefined).outcome,
    };
  }

  it('pushes out the least recently used entry, not the one read a moment ago', () => {
    const { cache, remember, outcome } = fullCache();
    remember('a');
    remember('b');
    expect(outcome('a')).toBe('hit'); // a is now the more recently used
    remember('c');
    expect(cache.size).toBe(2);
    expect(outcome('b')).toBe('miss');
    expect(outcome('a')).toBe('hit');
    expect(outcome('c')).toBe('hit');
  });

  it('a session pushed out and stored again is still dropped by its revocation', () => {
    const { cache, remember, outcome } = fullCache();
    remember('a');
    remember('b');
    remember('c'); // a goes
    remember('a'); // b goes
    cache.revoke([storedSessionId('a')]);
    expect(cache.size).toBe(1);
    expect(outcome('a')).toBe('miss');
    expect(outcome('c')).toBe('hit');
  });
});

describe('the slide memory when full', () => {
  const lifetimes = {
    idleSeconds: 3600,
    rememberIdleSeconds: 3600,
    absoluteSeconds: 86_400,
    rememberAbsoluteSeconds: 86_400,
  };

  it('forgets the least recently slid session first, and only it', () => {
    const memory = createSlideMemory({ lifetimes, slideIntervalMs: 1000 }, 2);
    memory.slid('a', T0);
    memory.slid('b', T0);
    expect(memory.recent('a', T0 + 10)).toBe(T0);
    memory.slid('c', T0);
    expect(memory.recent('b', T0 + 10)).toBeUndefined();
    expect(memory.recent('a', T0 + 10)).toBe(T0);
    expect(memory.recent('c', T0 + 10)).toBe(T0);
  });
});
