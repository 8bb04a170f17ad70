/**
 * Dimension 6: a login flood from n distinct addresses and usernames (10^4 at most), each one
 * failed login, through TRUST_PROXY: the bench is a trusted loopback peer and says who the client
 * is in X-Forwarded-For. Per size, on one session-service and Redis (throttle keys removed
 * between sizes): Redis bytes and throttle keys before and after, bytes and keys per address,
 * and every throttle key's TTL (none may live forever). Not alternated: memory is not noisy.
 */
import { JSON_HEADERS } from '../../test/helpers/login.js';
import type { RedisServer } from '../../test/helpers/redis.js';
import { writeUsers } from './bulk.js';
import type { ScaleOptions } from './options.js';
import { type DimensionResult, round, seriesFromRows } from './result.js';
import { say } from './rounds.js';
import { createStack, sleep } from './stack.js';

const PATTERN = 'gh:throttle:*';

async function throttleKeys(redis: RedisServer): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of redis.client.scanIterator({ MATCH: PATTERN, COUNT: 1000 }))
    keys.push(...batch);
  return keys;
}

const usedMemory = async (redis: RedisServer) =>
  Number(/used_memory:(\d+)/.exec(await redis.client.info('memory'))?.[1] ?? 0);

const addressOf = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/** n failed logins, each from its own address and username, `concurrency` at a time. */
async function flood(url: string, first: number, n: number, concurrency = 16) {
  const statuses = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = first + next++;
      for (;;) {
        const res = await fetch(`${url}/auth/login`, {
          method: 'POST',
          headers: { ...JSON_HEADERS, 'x-forwarded-for': addressOf(i) },
          body: JSON.stringify({ username: `flood-${i}`, password: 'not the password' }),
        });
        const body = await res.text();
        // The hasher's queue full: the answer says to try again, as a client would.
        if (res.status === 503 && body.includes('BUSY')) {
          await sleep(50);
          continue;
        }
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        break;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return statuses;
}

export async function floodDimension(opts: ScaleOptions): Promise<DimensionResult> {
  const t0 = Date.now();
  const sizes = opts.sizes.flood;
  const stack = createStack();
  try {
    const users = await writeUsers(10);
    const redis = await stack.redis();
    const service = await stack.sessionService('session-service', {
      REDIS_URL: redis.url,
      USERS_FILE: users.path,
      TRUST_PROXY: 'loopback',
    });
    const rows = [];
    let first = 0;
    for (const size of sizes) {
      const stale = await throttleKeys(redis);
      if (stale.length > 0) await redis.client.unlink(stale);
      const before = await usedMemory(redis);
      const t = Date.now();
      const statuses = await flood(service.url, first, size);
      const seconds = (Date.now() - t) / 1000;
      first += size;
      const after = await usedMemory(redis);
      const keys = await throttleKeys(redis);
      const ttls = await Promise.all(keys.map((k) => redis.client.pTTL(k)));
      // PTTL -1: a key with no TTL (what must never exist); -2: a key that expired between the
      // SCAN and the PTTL (a 60 s attempt window during a long flood), gone as it should be.
      const withoutTtl = ttls.filter((x) => x === -1).length;
      const refused = statuses.get(401) ?? 0;
      say(
        `  ${size} addresses: ${seconds.toFixed(0)} s, ${keys.length} throttle keys, statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
      );
      rows.push({
        size,
        loginsPerSecond: round(size / seconds, 0),
        refused401: refused,
        otherStatuses: size - refused,
        keys: keys.length,
        keysPerAddress: round(keys.length / size, 2),
        bytesPerAddress: round((after - before) / size, 0),
        redisMiB: round(after / 1048576, 1),
        keysWithoutTtl: withoutTtl,
        maxTtlSeconds: round(Math.max(0, ...ttls) / 1000, 0),
      });
    }
    return {
      dimension: 'flood',
      title: 'Login flood from distinct addresses and usernames',
      unit: 'addresses (one failed login each)',
      bound:
        'throttle memory O(distinct addresses and accounts seen within the throttle window), constant bytes per address, every key with a TTL: it is all gone one window after the flood',
      columns: [
        { key: 'size', label: 'addresses' },
        { key: 'loginsPerSecond', label: 'logins/s' },
        { key: 'refused401', label: '401' },
        { key: 'otherStatuses', label: 'other' },
        { key: 'keys', label: 'throttle keys' },
        { key: 'keysPerAddress', label: 'keys/address', digits: 2 },
        { key: 'bytesPerAddress', label: 'B/address' },
        { key: 'keysWithoutTtl', label: 'keys without TTL' },
        { key: 'maxTtlSeconds', label: 'max TTL s' },
      ],
      rows,
      panels: [
        {
          yLabel: 'Redis bytes per address',
          series: [seriesFromRows('used_memory delta / n', rows, 'bytesPerAddress')],
        },
        {
          yLabel: 'throttle keys per address',
          series: [seriesFromRows('keys / n', rows, 'keysPerAddress')],
        },
      ],
      notes: [
        'X-Forwarded-For from the loopback peer (TRUST_PROXY=loopback, the default): each login counts for its own address and an unknown username (argon2id runs on a dummy hash, so it costs what a real failure costs)',
      ],
      seconds: Math.round((Date.now() - t0) / 1000),
    };
  } finally {
    await stack.stop();
  }
}
