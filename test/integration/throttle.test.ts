/**
 * The login throttle on a real Redis with an injected clock: the pair, the account, the client
 * address, decisions and keys. Over 300 lines: one describe per rule, all on the same clock and
 * failure helpers.
 */
import { createClient } from 'redis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../common/src/redis.js';
import {
  createLoginThrottle,
  type LoginThrottle,
  type ThrottleDecision,
  type ThrottleLimits,
  throttleKeys,
} from '../../session-service/src/domain/throttle.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const START = Date.UTC(2030, 0, 1);

let server: RedisServer;
/** A plain node-redis client: the throttle takes it as a RedisClient, the assertions need more. */
let redis: RedisServer['client'];
let clock = START;

function throttle(limits: Partial<ThrottleLimits> = {}): LoginThrottle {
  return createLoginThrottle({ redis, now: () => clock, limits });
}

/** One login attempt that fails: asserts the throttle let it through first. */
async function failOnce(t: LoginThrottle, account: string, address: string): Promise<void> {
  expect(await t.check(account, address)).toEqual({ allowed: true, retryAfterSeconds: 0 });
  await t.recordFailure(account, address);
}

async function fail(t: LoginThrottle, account: string, address: string, times: number) {
  for (let i = 0; i < times; i++) await failOnce(t, account, address);
}

async function allKeys(): Promise<string[]> {
  return (await redis.keys('*')).sort();
}

beforeAll(async () => {
  server = await startRedis();
  redis = server.client;
});

afterAll(async () => {
  await server?.stop();
});

beforeEach(async () => {
  clock = START;
  await redis.flushAll();
});

describe('account + address pair', () => {
  it('allows four failures, then the fifth blocks the pair for 30 seconds', async () => {
    const t = throttle();
    await fail(t, 'alice', '203.0.113.7', 4);
    expect(await t.check('alice', '203.0.113.7')).toEqual({ allowed: true, retryAfterSeconds: 0 });

    await t.recordFailure('alice', '203.0.113.7');
    expect(await t.check('alice', '203.0.113.7')).toEqual({
      allowed: false,
      retryAfterSeconds: 30,
      reason: 'pair',
    });
    clock += 29 * SECOND;
    expect(await t.check('alice', '203.0.113.7')).toMatchObject({
      allowed: false,
      retryAfterSeconds: 1,
    });
    clock += SECOND;
    expect((await t.check('alice', '203.0.113.7')).allowed).toBe(true);
  });

  it('doubles the block after each further failure once the previous block has passed', async () => {
    const t = throttle();
    await fail(t, 'alice', '203.0.113.7', 5);
    for (const seconds of [30, 60, 120]) {
      expect(await t.check('alice', '203.0.113.7')).toMatchObject({
        allowed: false,
        retryAfterSeconds: seconds,
      });
      clock += seconds * SECOND;
      await failOnce(t, 'alice', '203.0.113.7');
    }
    expect((await t.check('alice', '203.0.113.7')).retryAfterSeconds).toBe(240);
  });

  it('doubles the block for failures that land during a block and caps it at 900 seconds', async () => {
    // Attempts already in flight when the block lands are verified and counted.
    const t = throttle();
    const seen: number[] = [];
    for (let n = 1; n <= 12; n++) {
      await t.recordFailure('alice', '203.0.113.7');
      seen.push((await t.check('alice', '203.0.113.7')).retryAfterSeconds);
      clock += SECOND;
    }
    expect(seen).toEqual([0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900, 900]);
  });

  it('does not block the same account from a different address', async () => {
    const t = throttle();
    await fail(t, 'alice', '203.0.113.7', 5);
    expect((await t.check('alice', '203.0.113.7')).reason).toBe('pair');
    expect(await t.check('alice', '198.51.100.20')).toEqual({
      allowed: true,
      retryAfterSeconds: 0,
    });
  });

  it('clears the pair after a successful login', async () => {
    const t = throttle();
    await fail(t, 'alice', '203.0.113.7', 4);
    await t.recordSuccess('alice', '203.0.113.7');
    await fail(t, 'alice', '203.0.113.7', 4);
    expect((await t.check('alice', '203.0.113.7')).allowed).toBe(true);
  });

  it('forgets failures older than the 15-minute window', async () => {
    const t = throttle();
    await fail(t, 'alice', '203.0.113.7', 4);
    clock += 15 * MINUTE;
    await fail(t, 'alice', '203.0.113.7', 4);
    expect((await t.check('alice', '203.0.113.7')).allowed).toBe(true);
    // The window slides: the four failures just now are still counted.
    clock += 14 * MINUTE;
    await t.recordFailure('alice', '203.0.113.7');
    expect(await t.check('alice', '203.0.113.7')).toMatchObject({ allowed: false, reason: 'pair' });
  });

  it('counts case and Unicode variants of an account name as the same account', async () => {
    const t = throttle();
    await fail(t, 'Zoe\u0308', '203.0.113.7', 2); // "Zoë", decomposed
    await fail(t, 'ZO\u00cb', '203.0.113.7', 2); // "ZOË", precomposed
    await t.recordFailure('zo\u00eb', '203.0.113.7');
    expect((await t.check('zoë', '203.0.113.7')).reason).toBe('pair');
  });

  it('counts an IPv6 /64 as one client and an IPv4-mapped address as its IPv4 address', async () => {
    const t = throttle();
    await fail(t, 'alice', '2001:db8:1:2::1', 2);
    await fail(t, 'alice', '2001:db8:1:2:ffff:1:2:3', 3);
    expect((await t.check('alice', '2001:DB8:1:2::99')).reason).toBe('pair');
    expect((await t.check('alice', '2001:db8:1:3::1')).allowed).toBe(true);

    await fail(t, 'bob', '::ffff:192.0.2.1', 5);
    expect((await t.check('bob', '192.0.2.1')).reason).toBe('pair');
  });
});

describe('account from any address', () => {
  it('blocks the account from every address after 50 failures spread over many addresses', async () => {
    const t = throttle();
    for (let i = 1; i <= 12; i++) await fail(t, 'alice', `198.51.100.${i}`, 4);
    // 48 failures: still allowed from a new address.
    expect((await t.check('alice', '192.0.2.99')).allowed).toBe(true);
    await fail(t, 'alice', '198.51.100.13', 2);

    expect(await t.check('alice', '192.0.2.99')).toEqual({
      allowed: false,
      retryAfterSeconds: 30,
      reason: 'account',
    });
    expect((await t.check('bob', '192.0.2.99')).allowed).toBe(true);
  });

  it('applies the same backoff shape above the ceiling and lifts it when the block has passed', async () => {
    const t = throttle({ accountFailures: 10 });
    for (let i = 1; i <= 5; i++) await fail(t, 'alice', `198.51.100.${i}`, 2);
    expect((await t.check('alice', '192.0.2.99')).retryAfterSeconds).toBe(30);
    clock += 30 * SECOND;
    await failOnce(t, 'alice', '198.51.100.6');
    expect(await t.check('alice', '192.0.2.99')).toEqual({
      allowed: false,
      retryAfterSeconds: 60,
      reason: 'account',
    });
    clock += 60 * SECOND;
    expect((await t.check('alice', '192.0.2.99')).allowed).toBe(true);
  });

  it('is not cleared by a successful login, which only clears its own pair', async () => {
    const t = throttle({ accountFailures: 10 });
    for (let i = 1; i <= 5; i++) await fail(t, 'alice', `198.51.100.${i}`, 2);
    await t.recordSuccess('alice', '198.51.100.1');
    expect((await t.check('alice', '192.0.2.99')).reason).toBe('account');
  });
});

describe('client address', () => {
  it('blocks the 21st attempt within a minute across different accounts until the minute ends', async () => {
    const t = throttle();
    for (let i = 1; i <= 20; i++) {
      expect((await t.check(`user${i}`, '203.0.113.7')).allowed).toBe(true);
      clock += SECOND;
    }
    expect(await t.check('user21', '203.0.113.7')).toEqual({
      allowed: false,
      retryAfterSeconds: 40,
      reason: 'address',
    });
    expect((await t.check('user1', '198.51.100.1')).allowed).toBe(true);
    clock = START + MINUTE;
    expect((await t.check('user22', '203.0.113.7')).allowed).toBe(true);
  });

  it('blocks an address after 100 failures in 15 minutes for the rest of the window', async () => {
    const t = throttle();
    for (let i = 0; i < 100; i++) {
      await failOnce(t, `user${Math.floor(i / 4)}`, '203.0.113.7');
      clock += 3 * SECOND; // stays under the 20-per-minute burst
    }
    // The window opened at START with the first failure; 300 s of it are gone.
    expect(await t.check('someone-new', '203.0.113.7')).toEqual({
      allowed: false,
      retryAfterSeconds: 600,
      reason: 'address',
    });
    clock = START + 15 * MINUTE;
    expect((await t.check('someone-new', '203.0.113.7')).allowed).toBe(true);
  });

  it('is not cleared by a successful login', async () => {
    const t = throttle({ addressFailures: 8 });
    for (let i = 0; i < 8; i++) await failOnce(t, `user${i}`, '203.0.113.7');
    await t.recordSuccess('attacker-own-account', '203.0.113.7');
    expect((await t.check('attacker-own-account', '203.0.113.7')).reason).toBe('address');
  });
});

describe('decisions', () => {
  it('reports the longest block in force', async () => {
    const t = throttle({ addressAttempts: 5 });
    await fail(t, 'alice', '203.0.113.7', 5);
    // Pair: 30 s left; address burst: the 6th attempt this minute, 60 s left.
    expect(await t.check('alice', '203.0.113.7')).toEqual({
      allowed: false,
      retryAfterSeconds: 60,
      reason: 'address',
    });
  });

  it('treats any account name alike: the throttle has no notion of whether it exists', async () => {
    // "alice" may be a real user and "no-such-user-4f2a" not; the throttle never looks them up.
    const decisions = async (account: string, address: string) => {
      const t = throttle();
      const seen: ThrottleDecision[] = [];
      for (let i = 0; i < 7; i++) {
        seen.push(await t.check(account, address));
        await t.recordFailure(account, address);
      }
      return seen;
    };
    const known = await decisions('alice', '203.0.113.7');
    const unknown = await decisions('no-such-user-4f2a', '198.51.100.7');
    expect(unknown).toEqual(known);

    const shape = (key: string) => key.replace(/[0-9a-f]{32}/g, 'H');
    const keys = await allKeys();
    const of = (account: string, address: string) =>
      Object.values(throttleKeys(account, address)).filter((k) => keys.includes(k));
    expect(of('alice', '203.0.113.7').map(shape)).toEqual(
      of('no-such-user-4f2a', '198.51.100.7').map(shape),
    );
  });

  it('propagates Redis errors so the caller can fail closed', async () => {
    const broken = createClient({ url: server.url }) as RedisClient;
    broken.on('error', () => {});
    await broken.connect();
    broken.destroy();
    const t = createLoginThrottle({ redis: broken, now: () => clock });
    await expect(t.check('alice', '203.0.113.7')).rejects.toThrow();
    await expect(t.recordFailure('alice', '203.0.113.7')).rejects.toThrow();
    await expect(t.recordSuccess('alice', '203.0.113.7')).rejects.toThrow();
  });

  it('rejects limits that are not positive integers', () => {
    expect(() => throttle({ pairFailures: 0 })).toThrow(RangeError);
    expect(() => throttle({ backoffBaseSeconds: 1.5 })).toThrow(RangeError);
  });
});

describe('keys', () => {
  it('lives under the prefix, expires, and holds no username or address', async () => {
    const t = createLoginThrottle({ redis, now: () => clock, prefix: 'test:' });
    await fail(t, 'Alice.Smith', '203.0.113.7', 5);
    await t.check('Alice.Smith', '2001:db8::1');
    await t.recordFailure('Alice.Smith', '2001:db8::1');

    const keys = await allKeys();
    expect(keys.length).toBe(7);
    for (const key of keys) {
      expect(key.startsWith('test:throttle:')).toBe(true);
      expect(key.toLowerCase()).not.toContain('alice');
      expect(key).not.toContain('203.0.113');
      expect(key).not.toContain('2001');
      expect(await redis.pTTL(key)).toBeGreaterThan(0);
    }
    // Values hold only times and counts.
    for (const key of keys) {
      const values =
        (await redis.type(key)) === 'zset'
          ? await redis.zRange(key, 0, -1)
          : Object.values(await redis.hGetAll(key));
      for (const value of values) expect(value.toLowerCase()).not.toContain('alice');
    }
  });

  it('keeps the pair and account logs no longer than the window or the longest block', async () => {
    const t = throttle();
    await fail(t, 'alice', '203.0.113.7', 3);
    const keys = throttleKeys('alice', '203.0.113.7');
    for (const key of [keys.pair, keys.account, keys.addressFailures]) {
      const ttl = await redis.pTTL(key);
      expect(ttl).toBeGreaterThan(14 * MINUTE);
      expect(ttl).toBeLessThanOrEqual(15 * MINUTE);
    }
    const attempts = await redis.pTTL(keys.addressAttempts);
    expect(attempts).toBeGreaterThan(0);
    expect(attempts).toBeLessThanOrEqual(MINUTE);
  });
});
