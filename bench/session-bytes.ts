/**
 * What one session costs in Redis (issue 16, point 6), and how long the active-sessions gauge
 * takes on a fresh connection: `npx tsx bench/session-bytes.ts [--live 1000000]`.
 *
 * On a Redis of its own (redis-server on a free port), with a browser user-agent:
 * - the record as main writes it now (the session repository's createSession), its per-user index
 *   (one session per user, the common case) and its share of the live-session count (16 sorted
 *   sets, MEMORY USAGE / entries after 10^4 logins);
 * - the record as written before issue 16 (name, groups, email, the whole user-agent), sealed
 *   alike, and its index entry (then a 43-character member, as now);
 * - the origin app's record: bench/baseline-app.ts (express-session + connect-redis, the
 *   tutorial's store) run as a process, one login, MEMORY USAGE of its key.
 * Then, with `--live n` entries in the live-session count (pipelined, as n live sessions would
 * leave them), the time of the first countLiveSessions of a fresh client: what a fresh
 * session-service's first /metrics waits for.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createClient } from 'redis';
import { storedSessionId } from '../common/src/session-id.js';
import { createSealer } from '../session-service/src/domain/sealing.js';
import {
  LIVE_SHARDS,
  liveMember,
  liveShardOf,
} from '../session-service/src/domain/session-records.js';
import { createRedisSessionRepository } from '../session-service/src/domain/session-repository-redis.js';
import { freePort, waitFor } from '../test/helpers/ports.js';
import { ROOT, TEST_ENCRYPTION_KEY } from '../test/helpers/processes.js';
import { startRedis } from '../test/helpers/redis.js';

const { values } = parseArgs({ options: { live: { type: 'string', default: '1000000' } } });
const LIVE = Number(values.live);
const UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
const LIFETIMES = {
  idleSeconds: 1800,
  absoluteSeconds: 43200,
  rememberIdleSeconds: 1800,
  rememberAbsoluteSeconds: 43200,
};

const redis = await startRedis();
const client = redis.client;
const bytes = async (key: string) => Number(await client.memoryUsage(key, { SAMPLES: 0 }));
const records = createSealer([TEST_ENCRYPTION_KEY], 'session-record');
const newSid = () => randomBytes(32).toString('base64url');
const login = (userId: string) => ({
  userId,
  username: 'alice.anderson',
  groups: ['admins', 'dev'],
  email: 'alice.anderson@example.com',
  createdAt: Date.now(),
  amr: ['pwd'] as const,
  authTime: Date.now(),
  ip: '203.0.113.45',
  ua: UA,
});

try {
  const repository = createRedisSessionRepository({
    redis: client,
    lifetimes: LIFETIMES,
    records,
    onRevoked: async () => {},
  });

  // Now: through the repository.
  const userId = `u-${randomBytes(8).toString('hex')}`;
  const sid = newSid();
  await repository.createSession(sid, { ...login(userId), amr: ['pwd'] });
  const record = await bytes(repository.sessionKey(storedSessionId(sid)));
  const index = await bytes(repository.userKey(userId));
  for (let i = 0; i < 10_000; i++) {
    const other = `u-${i}`;
    await repository.createSession(newSid(), { ...login(other), amr: ['pwd'] });
  }
  let liveBytes = 0;
  let liveEntries = 0;
  for (let shard = 0; shard < LIVE_SHARDS; shard++) {
    liveBytes += await bytes(`gh:sessions:live:${shard}`);
    liveEntries += await client.zCard(`gh:sessions:live:${shard}`);
  }
  const live = liveBytes / liveEntries;

  // Before issue 16: the whole auth, sealed the same way.
  const oldSid = newSid();
  const oldId = storedSessionId(oldSid);
  const oldJson = JSON.stringify({
    cookie: { originalMaxAge: null, expires: null, path: '/' },
    auth: login('u-old'),
  });
  await client.set(`old:sess:${oldId}`, records.seal(oldJson, oldId), {
    expiration: { type: 'PX', value: 1_800_000 },
  });
  await client.zAdd('old:user:{u-old}:sessions', { score: Date.now(), value: oldId });
  await client.pExpire('old:user:{u-old}:sessions', 43_200_000);
  const oldRecord = await bytes(`old:sess:${oldId}`);
  const oldIndex = await bytes('old:user:{u-old}:sessions');

  // The origin app: its own process, one login, its record.
  const port = await freePort();
  const app = spawn(process.execPath, ['--import', 'tsx', 'bench/baseline-app.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), REDIS_URL: redis.url },
    stdio: 'ignore',
  });
  let origin = 0;
  try {
    await waitFor(
      async () =>
        (await fetch(`http://127.0.0.1:${port}/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': UA },
          body: JSON.stringify({ username: 'alice.anderson' }),
        }).catch(() => null)) !== null,
      20_000,
      'the origin app',
    );
    const [key] = await client.keys('baseline:*');
    origin = key ? await bytes(key) : 0;
  } finally {
    app.kill();
  }

  // The gauge with LIVE entries, on a fresh client.
  await client.flushAll();
  const t = Date.now() + 1_800_000;
  for (let done = 0; done < LIVE; ) {
    const batch = Math.min(10_000, LIVE - done);
    const byShard = new Map<number, Array<{ score: number; value: string }>>();
    for (let i = 0; i < batch; i++) {
      const id = storedSessionId(newSid());
      const shard = liveShardOf(id);
      const members = byShard.get(shard) ?? [];
      members.push({ score: t, value: liveMember(id) });
      byShard.set(shard, members);
    }
    await Promise.all(
      [...byShard].map(([shard, members]) => client.zAdd(`gh:sessions:live:${shard}`, members)),
    );
    done += batch;
  }
  const fresh = createClient({ url: redis.url });
  await fresh.connect();
  const started = performance.now();
  const counted = await createRedisSessionRepository({
    redis: fresh,
    lifetimes: LIFETIMES,
  }).countLiveSessions();
  const firstCountMs = performance.now() - started;
  const again = performance.now();
  await createRedisSessionRepository({ redis: fresh, lifetimes: LIFETIMES }).countLiveSessions();
  const secondCountMs = performance.now() - again;
  await fresh.close();

  const now = record + index + live;
  const before = oldRecord + oldIndex;
  console.log(
    JSON.stringify(
      {
        userAgent: UA,
        before: { record: oldRecord, index: oldIndex, total: before, xOrigin: before / origin },
        now: {
          record,
          index,
          liveCount: Math.round(live),
          total: Math.round(now),
          xOrigin: now / origin,
        },
        origin,
        gauge: { live: LIVE, counted, firstCountMs, secondCountMs },
      },
      null,
      2,
    ),
  );
} finally {
  await redis.stop();
}
