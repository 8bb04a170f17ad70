import { createHash, randomBytes } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { RedisClient } from '../../../common/src/redis.js';
import { APPEND_FAILURE, HIT_WINDOW, READ_FAILURES, READ_WINDOW } from './throttle-scripts.js';
import { usernameKey } from './usernames.js';

/**
 * Login throttle shared by every session-service instance through Redis (OWASP Authentication
 * cheat sheet: login throttling with exponential backoff, without a permanent lockout).
 *
 * Policy (defaults; all configurable through `limits`):
 *
 * - Account + address pair: failures are kept in a sliding 15-minute log. The n-th failure
 *   counted in the 15 minutes up to and including the newest one, for n >= 5, blocks the pair
 *   for min(2^(n-5) * 30 s, 15 min) from that failure: 30 s, 60 s, 120 s, ... capped at 900 s.
 *   A successful login deletes the pair's log.
 * - Account from any address: the same sliding log and backoff shape with a ceiling of 50
 *   failures per 15 minutes: failure n >= 50 blocks the account for min(2^(n-50) * 30 s, 15 min)
 *   from every address. This stops distributed guessing. Success does not clear it (nor the
 *   address counters): logging in to an account one owns must not launder guesses at others.
 *   An attacker can hold this block only by keeping above 50 failures per 15 minutes from its
 *   own addresses, each of which is itself pair- and address-limited; the block then ends at
 *   most 15 minutes after the attacker stops.
 * - Client address: at most 20 attempts (every `check`, allowed or not, success or not) per
 *   minute, and at most 100 failures per 15 minutes. Both are fixed windows that open at the
 *   address's first attempt (or failure); once over the limit the address is blocked for the rest
 *   of that window. IPv6 addresses count per /64 (`ipv6PrefixLength`), since one client usually
 *   holds a whole /64; IPv4-mapped IPv6 addresses count as the IPv4 address.
 *
 * `check` runs before a password is verified; its decision is the longest block in force (the
 * Retry-After), with the reason that gives it. Account names are normalised (usernameKey: every look-alike spelling is one account) and
 * only a hash of them reaches Redis, as for addresses. The throttle never looks users up, so an
 * unknown account is throttled exactly like a known one and a 429 says nothing about existence.
 * Time comes from `now()`; keys carry real Redis TTLs so nothing outlives its window. Every Redis
 * command or script touches a single key (Redis Cluster safe). Redis errors propagate unchanged:
 * the caller answers 503 (fail closed).
 *
 * Known limit: `check` and `recordFailure` are separate steps, so guesses already in flight when
 * a block lands are still verified (bounded by the 20-per-minute address burst). They are counted,
 * which is also the only way the backoff reaches its cap: a client that waits out each block sees
 * its oldest failures leave the 15-minute window first (30+60+120+240+480 s > 15 min), so the
 * longest block a patient client meets is 480 s, and it averages about 6 failures per pair per
 * 15 minutes (about 600 a day), within the account ceiling of 50 per 15 minutes.
 */

export interface ThrottleLimits {
  /** Failures per account + address pair within the failure window before backoff starts. */
  pairFailures: number;
  /** Failures per account from all addresses within the failure window before backoff starts. */
  accountFailures: number;
  /** Length of the failure window (pair and account sliding logs, address failure window). */
  failureWindowSeconds: number;
  /** First backoff block; it doubles with every further failure. */
  backoffBaseSeconds: number;
  /** Longest backoff block. */
  backoffMaxSeconds: number;
  /** Attempts (checks) per address within the attempt window. */
  addressAttempts: number;
  addressAttemptWindowSeconds: number;
  /** Failures per address within the failure window. */
  addressFailures: number;
  /** IPv6 addresses are counted per network of this many leading bits. */
  ipv6PrefixLength: number;
}

export const DEFAULT_THROTTLE_LIMITS: Readonly<ThrottleLimits> = Object.freeze({
  pairFailures: 5,
  accountFailures: 50,
  failureWindowSeconds: 15 * 60,
  backoffBaseSeconds: 30,
  backoffMaxSeconds: 15 * 60,
  addressAttempts: 20,
  addressAttemptWindowSeconds: 60,
  addressFailures: 100,
  ipv6PrefixLength: 64,
});

/**
 * The same throttle for guesses at second-factor codes (TOTP, recovery codes), under keys of its
 * own: a pair is held back after 5 wrong codes as for passwords, but the account after 10 from
 * any address (a 6-digit code, 3 of which are valid at a time, is guessed far sooner than a
 * password; only someone who already has the password gets to guess).
 */
export const CODE_THROTTLE_LIMITS: Readonly<Partial<ThrottleLimits>> = Object.freeze({
  pairFailures: 5,
  accountFailures: 10,
});

export interface ThrottleDecision {
  allowed: boolean;
  retryAfterSeconds: number;
  reason?: 'account' | 'address' | 'pair';
}

export interface LoginThrottle {
  /** Before verifying a password; counts toward the address burst. */
  check(account: string, address: string): Promise<ThrottleDecision>;
  recordFailure(account: string, address: string): Promise<void>;
  recordSuccess(account: string, address: string): Promise<void>;
}

export interface LoginThrottleOptions {
  redis: RedisClient;
  /** Key prefix; keys live under `${prefix}throttle:`. Default 'gh:'. */
  prefix?: string;
  /** Milliseconds since the epoch. */
  now?: () => number;
  limits?: Partial<ThrottleLimits>;
}

export interface ThrottleKeys {
  /** Sorted set: failure times (ms) of this account from this address. */
  pair: string;
  /** Sorted set: failure times (ms) of this account from any address. */
  account: string;
  /** Hash {start, count}: attempts from this address in the current attempt window. */
  addressAttempts: string;
  /** Hash {start, count}: failures from this address in the current failure window. */
  addressFailures: string;
}

/** sha256 hex, first 32 characters: keys never hold a username (or an address). */
function digest(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 32);
}

/**
 * One key for every spelling of an account (`Alice`, `ＡＬＩＣＥ`, `al<ZWSP>ice` are `alice`), as
 * the users file sees them: guesses cannot be spread over look-alikes to dodge the account limit.
 */
export function normaliseAccount(account: string): string {
  return usernameKey(account);
}

/**
 * The client a limit counts: an IPv4 address as is; an IPv4-mapped IPv6 address as its IPv4
 * address; any other IPv6 address as its network of `prefixLength` bits (ipaddr.js), written
 * `2001:db8:1:2:0:0:0:0/64`. Anything else (no address at all, say) is counted as the trimmed,
 * lowercased text, so such clients share a bucket.
 */
export function normaliseAddress(address: string, prefixLength: number): string {
  let text = address.trim().toLowerCase();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  // node:net decides what is an address: ipaddr.js also takes forms such as `0x7f.1` for IPv4.
  if (isIPv4(text) || !isIPv6(text)) return text;
  const ip = ipaddr.IPv6.parse(text);
  if (ip.isIPv4MappedAddress()) return ip.toIPv4Address().toString();
  ip.zoneId = undefined; // `fe80::1%eth0` is fe80::1 to a limit
  const network = ipaddr.IPv6.networkAddressFromCIDR(`${ip.toNormalizedString()}/${prefixLength}`);
  return `${network.toNormalizedString()}/${prefixLength}`;
}

/** Where the throttle keeps its counters for this account and address (for tests and tooling). */
export function throttleKeys(
  account: string,
  address: string,
  options: { prefix?: string; ipv6PrefixLength?: number } = {},
): ThrottleKeys {
  const base = `${options.prefix ?? 'gh:'}throttle:`;
  const acct = digest(normaliseAccount(account));
  const addr = digest(
    normaliseAddress(address, options.ipv6PrefixLength ?? DEFAULT_THROTTLE_LIMITS.ipv6PrefixLength),
  );
  return {
    pair: `${base}pair:${acct}:${addr}`,
    account: `${base}account:${acct}`,
    addressAttempts: `${base}address:${addr}:attempts`,
    addressFailures: `${base}address:${addr}:failures`,
  };
}

function toNumber(value: unknown): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  if (!Number.isFinite(n)) throw new Error(`unexpected reply from a throttle script: ${value}`);
  return n;
}

function pairOf(reply: unknown): [number, number] {
  if (!Array.isArray(reply) || reply.length !== 2) {
    throw new Error('unexpected reply from a throttle script');
  }
  return [toNumber(reply[0]), toNumber(reply[1])];
}

function resolveLimits(overrides: Partial<ThrottleLimits> = {}): ThrottleLimits {
  const limits: ThrottleLimits = { ...DEFAULT_THROTTLE_LIMITS };
  for (const [name, value] of Object.entries(overrides) as [keyof ThrottleLimits, unknown][]) {
    if (value === undefined) continue;
    if (!(name in DEFAULT_THROTTLE_LIMITS)) throw new RangeError(`unknown throttle limit ${name}`);
    const valid =
      typeof value === 'number' &&
      Number.isInteger(value) &&
      (name === 'ipv6PrefixLength' ? value >= 0 && value <= 128 : value > 0);
    if (!valid) throw new RangeError(`throttle limit ${name} must be a positive integer`);
    limits[name] = value;
  }
  return limits;
}

export function createLoginThrottle(options: LoginThrottleOptions): LoginThrottle {
  const { redis } = options;
  const now = options.now ?? Date.now;
  const limits = resolveLimits(options.limits);
  const prefix = options.prefix ?? 'gh:';
  const windowMs = limits.failureWindowSeconds * 1000;
  const attemptWindowMs = limits.addressAttemptWindowSeconds * 1000;
  const baseMs = limits.backoffBaseSeconds * 1000;
  const maxMs = limits.backoffMaxSeconds * 1000;
  // Every entry is at most as old as the newest failure and every block ends within maxMs of it.
  const logTtlMs = Math.max(windowMs, maxMs);
  // Past threshold + log2(max / base) failures the backoff is capped, so older entries add nothing.
  const stepsToCap = Math.max(0, Math.ceil(Math.log2(maxMs / baseMs)));
  const pairKeep = limits.pairFailures + stepsToCap;
  const accountKeep = limits.accountFailures + stepsToCap;

  const keysFor = (account: string, address: string) =>
    throttleKeys(account, address, { prefix, ipv6PrefixLength: limits.ipv6PrefixLength });

  /** Block (ms) after the n-th counted failure against a threshold. */
  const backoffMs = (n: number, threshold: number) =>
    n < threshold ? 0 : Math.min(baseMs * 2 ** (n - threshold), maxMs);

  async function appendFailure(key: string, t: number, keep: number): Promise<void> {
    const member = `${t}:${randomBytes(6).toString('hex')}`;
    const args = [String(t), String(t - windowMs), member, String(-1 - keep), String(logTtlMs)];
    toNumber(await redis.eval(APPEND_FAILURE, { keys: [key], arguments: args }));
  }

  /** ms until the failures logged under `key` allow another attempt (0: none blocked). */
  async function logBlockMs(key: string, t: number, threshold: number): Promise<number> {
    const [n, newest] = pairOf(await redis.eval(READ_FAILURES, { keys: [key] }));
    return Math.max(0, newest + backoffMs(n, threshold) - t);
  }

  async function hitWindow(key: string, t: number, ms: number): Promise<[number, number]> {
    return pairOf(await redis.eval(HIT_WINDOW, { keys: [key], arguments: [String(t), `${ms}`] }));
  }

  async function readWindow(key: string, t: number, ms: number): Promise<[number, number]> {
    return pairOf(await redis.eval(READ_WINDOW, { keys: [key], arguments: [String(t), `${ms}`] }));
  }

  return {
    async check(account, address) {
      const t = Math.floor(now());
      const keys = keysFor(account, address);
      const [pairMs, accountMs, [attempts, attemptsLeftMs], [failures, failuresLeftMs]] =
        await Promise.all([
          logBlockMs(keys.pair, t, limits.pairFailures),
          logBlockMs(keys.account, t, limits.accountFailures),
          hitWindow(keys.addressAttempts, t, attemptWindowMs),
          readWindow(keys.addressFailures, t, windowMs),
        ]);
      const addressMs = Math.max(
        attempts > limits.addressAttempts ? attemptsLeftMs : 0,
        failures >= limits.addressFailures ? failuresLeftMs : 0,
      );
      const blocks: [NonNullable<ThrottleDecision['reason']>, number][] = [
        ['pair', pairMs],
        ['account', accountMs],
        ['address', addressMs],
      ];
      let decision: ThrottleDecision = { allowed: true, retryAfterSeconds: 0 };
      let longest = 0;
      for (const [reason, ms] of blocks) {
        if (ms > longest) {
          longest = ms;
          decision = { allowed: false, retryAfterSeconds: Math.ceil(ms / 1000), reason };
        }
      }
      return decision;
    },

    async recordFailure(account, address) {
      const t = Math.floor(now());
      const keys = keysFor(account, address);
      await Promise.all([
        appendFailure(keys.pair, t, pairKeep),
        appendFailure(keys.account, t, accountKeep),
        hitWindow(keys.addressFailures, t, windowMs),
      ]);
    },

    async recordSuccess(account, address) {
      await redis.del(keysFor(account, address).pair);
    },
  };
}
