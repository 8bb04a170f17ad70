/**
 * Dimension 2: users in the users file, 10^2 → 10^5. One session-service per size (its own Redis
 * and users file). At start: time to healthy, the first login's latency, RSS. Per round and size:
 * validate throughput and p99 (alternated), then the stall a users-file change causes: validate
 * probed back to back from 4 loops, 1.5 s before and during `npm run users -- add` (a real CLI
 * process) until 2 s after it exits; the slowest validate in each window. The user-visible stall
 * is the slowest validate during the change, measured from outside, as a user would see it.
 */
import type { ServiceProcess } from '../../test/helpers/processes.js';
import { runUsersCli } from '../../test/helpers/users-cli.js';
import { median } from '../load.js';
import { login, PASSWORD, writeUsers } from './bulk.js';
import type { ScaleOptions } from './options.js';
import { type DimensionResult, round, seriesFromRows, seriesOf } from './result.js';
import { figuresOf, load, orderOf, type Rounds, record, say } from './rounds.js';
import { createStack, rssOf, sleep } from './stack.js';

interface SizeStack {
  size: number;
  usersFile: string;
  redisUrl: string;
  service: ServiceProcess;
  cookies: string[];
  startMs: number;
  firstLoginMs: number;
  rssAfterLogin: number;
}

/** The slowest of back-to-back validates from `loops` loops while `during` runs (ms). */
async function slowestDuring(url: string, cookie: string, during: Promise<unknown>, loops = 4) {
  let done = false;
  let slowest = 0;
  let count = 0;
  const probe = async () => {
    while (!done) {
      const t = performance.now();
      const res = await fetch(url, { headers: { cookie } });
      await res.arrayBuffer();
      slowest = Math.max(slowest, performance.now() - t);
      count += 1;
    }
  };
  const probes = Array.from({ length: loops }, probe);
  await during;
  done = true;
  await Promise.all(probes);
  return { slowest, count };
}

async function stall(s: SizeStack, name: string) {
  const url = `${s.service.url}/auth/validate`;
  const cookie = s.cookies[0] as string;
  const before = await slowestDuring(url, cookie, sleep(1500));
  const rss0 = rssOf(s.service.process.pid);
  let cliMs = 0;
  const during = await slowestDuring(
    url,
    cookie,
    (async () => {
      const t = performance.now();
      const cli = await runUsersCli(['add', name, '--groups', 'staff'], {
        env: { USERS_FILE: s.usersFile, REDIS_URL: s.redisUrl },
        input: `${PASSWORD}\n`,
        timeoutMs: 120_000,
      });
      cliMs = performance.now() - t;
      if (cli.code !== 0) throw new Error(`npm run users add: ${cli.code} ${cli.output}`);
      await sleep(2000);
    })(),
  );
  return {
    before: before.slowest,
    during: during.slowest,
    cliMs,
    rssGrowth: rssOf(s.service.process.pid) - rss0,
  };
}

export async function usersDimension(opts: ScaleOptions): Promise<DimensionResult> {
  const t0 = Date.now();
  const sizes = opts.sizes.users;
  const stack = createStack();
  try {
    const stacks: SizeStack[] = [];
    for (const size of sizes) {
      const users = await writeUsers(size);
      const redis = await stack.redis();
      const started = Date.now();
      const service = await stack.sessionService(`session-service (${size} users)`, {
        REDIS_URL: redis.url,
        USERS_FILE: users.path,
      });
      const healthy = Date.now();
      const firstLogin = performance.now();
      const cookies = [await login(service.url, 'user0')];
      const firstLoginMs = performance.now() - firstLogin;
      for (let i = 1; i < 4; i++) cookies.push(await login(service.url, `user${i}`));
      stacks.push({
        size,
        usersFile: users.path,
        redisUrl: redis.url,
        service,
        cookies,
        startMs: healthy - started,
        firstLoginMs,
        rssAfterLogin: rssOf(service.process.pid),
      });
      say(
        `  ${size} users: healthy in ${healthy - started} ms, first login ${firstLoginMs.toFixed(0)} ms`,
      );
    }
    for (const s of stacks)
      await load(
        { url: `${s.service.url}/auth/validate`, cookies: s.cookies },
        Math.min(1, opts.duration),
      );
    const rounds: Rounds = new Map();
    const stalls = new Map<number, Array<Awaited<ReturnType<typeof stall>>>>();
    for (let r = 1; r <= opts.rounds; r++) {
      say(`  round ${r}/${opts.rounds}`);
      for (const size of orderOf(sizes, r)) {
        const s = stacks.find((x) => x.size === size) as SizeStack;
        const c = { cookies: s.cookies, connections: opts.connections };
        record(
          rounds,
          size,
          'validate',
          await load({ url: `${s.service.url}/auth/validate`, ...c }, opts.duration),
        );
        const st = await stall(s, `added-${size}-${r}`);
        stalls.set(size, [...(stalls.get(size) ?? []), st]);
        say(
          `    ${size}: slowest validate ${st.before.toFixed(0)} ms before, ${st.during.toFixed(0)} ms during the change`,
        );
      }
    }
    const v = figuresOf(rounds, sizes, 'validate');
    const smallest = stacks[0] as SizeStack;
    const rows = stacks.map((s, i) => {
      const st = stalls.get(s.size) ?? [];
      return {
        size: s.size,
        validateRps: round(v[i]?.rps, 0),
        validateRatio: round(v[i]?.rpsRatio),
        validateP99Ratio: round(v[i]?.p99Ratio),
        startMs: s.startMs,
        firstLoginMs: round(s.firstLoginMs, 0),
        stallBeforeMs: round(median(st.map((x) => x.before)), 0),
        stallMs: round(median(st.map((x) => x.during)), 0),
        stallMaxMs: round(Math.max(...st.map((x) => x.during)), 0),
        cliMs: round(median(st.map((x) => x.cliMs)), 0),
        rssMiB: round(s.rssAfterLogin / 1048576, 1),
        bytesPerUser:
          s.size > smallest.size
            ? round((s.rssAfterLogin - smallest.rssAfterLogin) / (s.size - smallest.size), 0)
            : null,
        errors: v[i]?.errors ?? 0,
      };
    });
    return {
      dimension: 'users',
      title: 'Users in the users file',
      unit: 'users',
      bound:
        'validate O(1) in users (a map lookup); a change to the file costs the requests in flight O(change): the slowest validate during `npm run users` stays near the one before it at every size',
      columns: [
        { key: 'size', label: 'users' },
        { key: 'validateRps', label: 'validate req/s' },
        { key: 'validateRatio', label: 'validate ×', digits: 2 },
        { key: 'validateP99Ratio', label: 'p99 ×', digits: 2 },
        { key: 'startMs', label: 'start ms' },
        { key: 'firstLoginMs', label: '1st login ms' },
        { key: 'stallBeforeMs', label: 'slowest before ms' },
        { key: 'stallMs', label: 'slowest during change ms' },
        { key: 'stallMaxMs', label: 'max' },
        { key: 'cliMs', label: 'CLI ms' },
        { key: 'rssMiB', label: 'RSS MiB', digits: 1 },
        { key: 'bytesPerUser', label: 'B/user' },
      ],
      rows,
      panels: [
        {
          yLabel: 'validate, ratio to the smallest size',
          reference: 1,
          series: [seriesOf('req/s', v, (f) => f.rpsRatio), seriesOf('p99', v, (f) => f.p99Ratio)],
        },
        {
          yLabel: 'slowest validate, ms (a users-file change; the first login)',
          series: [
            seriesFromRows('during `npm run users add`', rows, 'stallMs'),
            seriesFromRows('just before it', rows, 'stallBeforeMs'),
            seriesFromRows('first login after start', rows, 'firstLoginMs'),
          ],
        },
      ],
      notes: [
        'every user has the same argon2id hash (hashing 10^5 passwords would measure argon2, not the file); one login per user measured',
        "B/user: the session-service's RSS after its first login, above the smallest size's, per extra user",
        'the CLI is a real `npm run users -- add` process (tsx start-up included in "CLI ms")',
      ],
      seconds: Math.round((Date.now() - t0) / 1000),
    };
  } finally {
    await stack.stop();
  }
}
