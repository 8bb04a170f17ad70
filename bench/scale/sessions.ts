/**
 * Dimension 1: live sessions in Redis, 10^3 → 10^6. One Redis per size, filled through the
 * session repository's createSession (bulk.ts), with its own session-service and two gateways
 * (validation cache on and off) in front of a hello-world. Per round and size: validate direct,
 * through the gateway, through the gateway without its cache, over 256 of the size's sessions.
 * Then per size: Redis bytes per session (MEMORY USAGE of a sample of records, of the per-user
 * indexes and of the live-session count, and INFO's used_memory delta / n), and how long a fresh
 * session-service takes to answer its first /metrics (the active-sessions gauge) and what it
 * counts. The origin app's record is measured the same way (bench/baseline-app.ts).
 */
import type { StoredUser } from '../../session-service/src/domain/users.js';
import type { ServiceProcess } from '../../test/helpers/processes.js';
import type { RedisServer } from '../../test/helpers/redis.js';
import { median } from '../load.js';
import { bulkSessions, writeUsers } from './bulk.js';
import type { ScaleOptions } from './options.js';
import { type DimensionResult, round, seriesFromRows, seriesOf } from './result.js';
import { figuresOf, load, orderOf, type Rounds, record, say } from './rounds.js';
import { BROWSER_UA, createStack, QUIET, type Stack, sleep } from './stack.js';

/** Sessions are spread over this many users (n / 1,000 sessions each at most). */
const OWNERS = 1_000;
const SAMPLE = 256;

interface SizeStack {
  size: number;
  redis: RedisServer;
  service: ServiceProcess;
  cached: ServiceProcess;
  uncached: ServiceProcess;
  cookies: string[];
  bytes: Record<string, number | null>;
}

/** Record + per-user index + live-count entry, per session (MEMORY USAGE); null when unmeasured. */
const sumOf = (b: Record<string, number | null>) =>
  b.record && b.indexPerSession !== null && b.livePerSession !== null
    ? b.record + (b.indexPerSession ?? 0) + (b.livePerSession ?? 0)
    : null;

const usedMemory = async (redis: RedisServer) =>
  Number(/used_memory:(\d+)/.exec(await redis.client.info('memory'))?.[1] ?? 0);

/** Median MEMORY USAGE over up to `n` keys matching `pattern` (SCAN), and how many were seen. */
async function memoryOf(redis: RedisServer, pattern: string, n: number) {
  const keys: string[] = [];
  for await (const batch of redis.client.scanIterator({ MATCH: pattern, COUNT: 1000 })) {
    keys.push(...batch);
    if (keys.length >= n) break;
  }
  const sizes = await Promise.all(keys.slice(0, n).map((k) => redis.client.memoryUsage(k)));
  return { keys: keys.slice(0, n), bytes: median(sizes.map((x) => Number(x ?? 0))) };
}

async function startSize(
  stack: Stack,
  size: number,
  users: { path: string; users: StoredUser[] },
  upstream: string,
): Promise<SizeStack> {
  const redis = await stack.redis();
  const service = await stack.sessionService(`session-service (${size} sessions)`, {
    REDIS_URL: redis.url,
    USERS_FILE: users.path,
  });
  const gw = (name: string, env: Record<string, string>) =>
    stack.gateway(`gateway ${name} (${size})`, {
      SESSION_SERVICE_URL: service.url,
      UPSTREAM_URL: upstream,
      ...env,
    });
  const [cached, uncached] = await Promise.all([
    gw('cached', {}),
    gw('uncached', { VALIDATE_CACHE_TTL_MS: '0' }),
  ]);
  const before = await usedMemory(redis);
  const bulk = await bulkSessions({
    redisUrl: redis.url,
    serviceUrl: service.url,
    users: users.users,
  });
  const started = Date.now();
  // One session was made by the login; the rest through the repository.
  const all = await bulk.create(size - 1, (done) => say(`  ${size}: ${done} sessions created`));
  const rate = Math.round((size - 1) / Math.max(0.001, (Date.now() - started) / 1000));
  await bulk.close();
  const after = await usedMemory(redis);
  const record = await memoryOf(redis, 'gh:sess:*', 200);
  const index = await memoryOf(redis, 'gh:user:*', 50);
  const cards = await Promise.all(index.keys.map((k) => redis.client.zCard(k)));
  const live = await memoryOf(redis, 'gh:sessions:live:*', 16);
  const liveCards = await Promise.all(live.keys.map((k) => redis.client.zCard(k)));
  const liveTotal = liveCards.reduce((a, b) => a + b, 0);
  say(`  ${size} sessions ready (${rate} created/s)`);
  return {
    size,
    redis,
    service,
    cached,
    uncached,
    // A sample spread over the whole set.
    cookies: all
      .filter((_, i) => i % Math.max(1, Math.floor(all.length / SAMPLE)) === 0)
      .slice(0, SAMPLE),
    bytes: {
      record: record.bytes,
      indexPerSession: cards.length ? round(index.bytes / Math.max(1, median(cards)), 0) : null,
      livePerSession: liveTotal ? round((live.bytes * live.keys.length) / liveTotal, 0) : null,
      infoPerSession: round((after - before) / size, 0),
      createdPerSecond: rate,
    },
  };
}

/** A fresh session-service on `s`'s Redis: ms from its start to its first /metrics answer. */
async function firstMetrics(stack: Stack, s: SizeStack, usersFile: string) {
  const t0 = Date.now();
  const fresh = await stack.sessionService(`fresh session-service (${s.size})`, {
    REDIS_URL: s.redis.url,
    USERS_FILE: usersFile,
  });
  const healthy = Date.now();
  const res = await fetch(`${fresh.url}/metrics`);
  const text = await res.text();
  const answered = Date.now();
  await fresh.stop();
  const counted = /^gatehouse_sessions_active(?:\{[^}]*\})? (\S+)/m.exec(text)?.[1];
  return {
    startMs: healthy - t0,
    firstMetricsMs: answered - healthy,
    counted: counted === undefined ? null : Number(counted),
  };
}

/** The origin app's record (bench/baseline-app.ts), measured as ours: MEMORY USAGE of one. */
async function originRecordBytes(stack: Stack, redis: RedisServer): Promise<number | null> {
  const { startService } = await import('../../test/helpers/processes.js');
  const baseline = await startService({
    name: 'baseline',
    entry: 'bench/baseline-app.ts',
    portVariable: 'PORT',
    healthPath: '/healthz',
    env: { ...QUIET, REDIS_URL: redis.url },
  });
  stack.onStop(() => baseline.stop());
  const res = await fetch(`${baseline.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': BROWSER_UA },
    body: JSON.stringify({ username: 'user0' }),
  });
  await res.arrayBuffer();
  const keys = await redis.client.keys('baseline:*');
  return keys[0] ? Number(await redis.client.memoryUsage(keys[0])) : null;
}

export async function sessionsDimension(opts: ScaleOptions): Promise<DimensionResult> {
  const t0 = Date.now();
  const sizes = opts.sizes.sessions;
  const stack = createStack();
  try {
    const users = await writeUsers(OWNERS);
    const hello = await stack.hello();
    const stacks: SizeStack[] = [];
    for (const size of sizes) stacks.push(await startSize(stack, size, users, hello.url));
    const rounds: Rounds = new Map();
    const secs = opts.duration;
    for (const s of stacks) {
      for (const url of [
        `${s.service.url}/auth/validate`,
        `${s.cached.url}/`,
        `${s.uncached.url}/`,
      ])
        await load({ url, cookies: s.cookies }, Math.min(1, secs));
    }
    for (let r = 1; r <= opts.rounds; r++) {
      say(`  round ${r}/${opts.rounds}`);
      for (const size of orderOf(sizes, r)) {
        const s = stacks.find((x) => x.size === size) as SizeStack;
        const c = { cookies: s.cookies, connections: opts.connections };
        record(
          rounds,
          size,
          'validate',
          await load({ url: `${s.service.url}/auth/validate`, ...c }, secs),
        );
        record(rounds, size, 'gateway', await load({ url: `${s.cached.url}/`, ...c }, secs));
        record(rounds, size, 'uncached', await load({ url: `${s.uncached.url}/`, ...c }, secs));
      }
    }
    const metrics: Array<Awaited<ReturnType<typeof firstMetrics>>> = [];
    for (const s of stacks) metrics.push(await firstMetrics(stack, s, users.path));
    await sleep(10);
    const origin = await originRecordBytes(stack, stacks[0]?.redis as RedisServer);
    const v = figuresOf(rounds, sizes, 'validate');
    const g = figuresOf(rounds, sizes, 'gateway');
    const u = figuresOf(rounds, sizes, 'uncached');
    const rows = stacks.map((s, i) => ({
      size: s.size,
      validateRps: round(v[i]?.rps, 0),
      validateRatio: round(v[i]?.rpsRatio),
      validateP99: v[i]?.p99 ?? null,
      validateP99Ratio: round(v[i]?.p99Ratio),
      gatewayRatio: round(g[i]?.rpsRatio),
      gatewayP99Ratio: round(g[i]?.p99Ratio),
      uncachedRatio: round(u[i]?.rpsRatio),
      uncachedP99Ratio: round(u[i]?.p99Ratio),
      recordBytes: s.bytes.record ?? null,
      indexBytes: s.bytes.indexPerSession ?? null,
      liveBytes: s.bytes.livePerSession ?? null,
      infoBytes: s.bytes.infoPerSession ?? null,
      perSessionBytes: sumOf(s.bytes),
      vsOrigin: origin && sumOf(s.bytes) ? round((sumOf(s.bytes) as number) / origin) : null,
      firstMetricsMs: metrics[i]?.firstMetricsMs ?? null,
      counted: metrics[i]?.counted ?? null,
      errors: (v[i]?.errors ?? 0) + (g[i]?.errors ?? 0) + (u[i]?.errors ?? 0),
    }));
    return {
      dimension: 'sessions',
      title: 'Live sessions in Redis',
      unit: 'sessions',
      bound:
        'validate and the gateway path O(1) in live sessions (ratios ≈ 1); bytes per session constant; first /metrics answer O(1) (16 ZCOUNTs, no scan)',
      columns: [
        { key: 'size', label: 'sessions' },
        { key: 'validateRps', label: 'validate req/s' },
        { key: 'validateRatio', label: 'validate ×', digits: 2 },
        { key: 'validateP99Ratio', label: 'p99 ×', digits: 2 },
        { key: 'gatewayRatio', label: 'gateway ×', digits: 2 },
        { key: 'gatewayP99Ratio', label: 'p99 ×', digits: 2 },
        { key: 'uncachedRatio', label: 'no-cache ×', digits: 2 },
        { key: 'uncachedP99Ratio', label: 'p99 ×', digits: 2 },
        { key: 'recordBytes', label: 'record B' },
        { key: 'indexBytes', label: 'index B' },
        { key: 'liveBytes', label: 'count B' },
        { key: 'perSessionBytes', label: 'sum B' },
        { key: 'infoBytes', label: 'INFO B/session' },
        { key: 'vsOrigin', label: '× origin', digits: 2 },
        { key: 'firstMetricsMs', label: '1st /metrics ms' },
        { key: 'counted', label: 'counted' },
      ],
      rows,
      panels: [
        {
          yLabel: 'ratio to the smallest size',
          reference: 1,
          series: [
            seriesOf('validate req/s', v, (f) => f.rpsRatio),
            seriesOf('validate p99', v, (f) => f.p99Ratio),
            seriesOf('gateway req/s', g, (f) => f.rpsRatio),
            seriesOf('gateway (no cache) req/s', u, (f) => f.rpsRatio),
          ],
        },
        {
          yLabel: 'Redis bytes per session',
          ...(origin ? { reference: origin } : {}),
          series: [
            seriesFromRows('INFO used_memory delta / n', rows, 'infoBytes'),
            seriesFromRows('record + index + count (MEMORY USAGE)', rows, 'perSessionBytes'),
            seriesFromRows('record alone', rows, 'recordBytes'),
          ],
        },
        {
          yLabel: 'first /metrics answer, ms',
          series: [seriesFromRows('fresh process', rows, 'firstMetricsMs')],
        },
      ],
      notes: [
        `origin app's record (express-session + connect-redis, MEMORY USAGE): ${origin ?? 'n/a'} bytes (dashed line in the bytes chart); × origin compares it with "sum B" (record + index + count, MEMORY USAGE alike); INFO B/session also counts Redis's own per-key overhead (keyspace and expiry tables)`,
        `sessions spread over ${OWNERS} users; record/index/count bytes are medians of MEMORY USAGE over samples (index: per user / its sessions; count: the live-session shards / n)`,
        `created through createSession at ${stacks.map((s) => `${s.size}: ${s.bytes.createdPerSecond}/s`).join(', ')}`,
        `validate over ${SAMPLE} sessions of each size; 'counted' is what the fresh process's gatehouse_sessions_active said`,
      ],
      seconds: Math.round((Date.now() - t0) / 1000),
    };
  } finally {
    await stack.stop();
  }
}
