/**
 * What a change to the users file costs the requests in flight, by file size (docs/performance.md,
 * "Users file size"). For each size: a file of n users (one precomputed argon2id hash for all),
 * the repository's first load (time to the first login lookup, the longest event-loop stall, RSS
 * and heap growth), then `--changes` changes of one user each (disable, add, remove; written with
 * writeUsersFile before the measurement starts, as `npm run users` does from its own process)
 * while validate-like lookups (findById) run every 2 ms: the longest stall of the event loop, the
 * slowest lookup, and how long until the change is seen.
 *
 *   npx tsx bench/users-file.ts [--sizes 100,10000,100000] [--changes 5]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  createUsersRepository,
  writeUsersFile,
} from '../session-service/src/adapters/users-file.js';
import { hashPassword } from '../session-service/src/domain/passwords.js';
import type { StoredUser } from '../session-service/src/domain/users.js';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100,10000,100000' },
    changes: { type: 'string', default: '5' },
  },
});
const sizes = args.sizes.split(',').map(Number);
const changes = Number(args.changes);
// Not `--expose-gc`: worker threads refuse that flag in the execArgv they inherit.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mb = (bytes: number) => Math.round(bytes / 1048576);

export function generateUsers(n: number, passwordHash: string): StoredUser[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    username: `user${i}`,
    passwordHash,
    groups: i % 10 === 0 ? ['admin', 'dev'] : ['dev'],
    email: `user${i}@example.com`,
    disabled: false,
  }));
}

/** The longest event-loop stall (ms) and the slowest of the lookups run every 2 ms during `work`. */
async function measured<T>(
  lookup: () => Promise<unknown>,
  work: () => Promise<T>,
): Promise<{ result: T; stallMs: number; slowestLookupMs: number; ms: number }> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  let slowestLookupMs = 0;
  let running = true;
  const lookups = (async () => {
    while (running) {
      const t = performance.now();
      await lookup();
      slowestLookupMs = Math.max(slowestLookupMs, performance.now() - t);
      await sleep(2);
    }
  })();
  const t0 = performance.now();
  const result = await work();
  const ms = performance.now() - t0;
  running = false;
  await lookups;
  histogram.disable();
  return { result, stallMs: histogram.max / 1e6, slowestLookupMs, ms };
}

const hash = await hashPassword('correct horse battery staple');
const round = (x: number) => Math.round(x * 10) / 10;
for (const n of sizes) {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-users-'));
  const path = join(dir, 'users.json');
  let users = generateUsers(n, hash);
  await writeUsersFile(path, users);
  gc();
  const before = process.memoryUsage();
  const repo = createUsersRepository(path, (err) => console.error(err));
  const first = await measured(
    async () => {},
    () => repo.findByUsername('user1'),
  );
  gc();
  await sleep(100);
  gc();
  const after = process.memoryUsage();
  console.log(
    JSON.stringify({
      users: n,
      firstLoginLookupMs: round(first.ms),
      firstLoadStallMs: round(first.stallMs),
      rssGrowthMB: mb(after.rss - before.rss),
      heapGrowthMB: mb(after.heapUsed - before.heapUsed),
    }),
  );
  const stalls: number[] = [];
  const quietStalls: number[] = [];
  const lookupsMs: number[] = [];
  const seenMs: number[] = [];
  for (let c = 0; c < changes; c++) {
    const target = `user${(c * 7919) % n}`;
    const kind = (['disable', 'add', 'remove'] as const)[c % 3];
    const added = `added${c}`;
    if (kind === 'disable')
      users = users.map((u) => (u.username === target ? { ...u, disabled: true } : u));
    if (kind === 'add')
      users = [...users, { ...(users[0] as StoredUser), id: `new-${c}`, username: added }];
    if (kind === 'remove') users = users.filter((u) => u.username !== `added${c - 1}`);
    const probe =
      kind === 'add'
        ? `new-${c}`
        : kind === 'remove'
          ? `new-${c - 1}`
          : (users.find((u) => u.username === target)?.id ?? '');
    await writeUsersFile(path, users);
    // The writer's garbage (the file as a string) is the CLI's, in its own process: not measured.
    gc();
    const seen = async () => {
      const user = await repo.findById(probe);
      if (kind === 'disable') return user?.disabled === true;
      if (kind === 'add') return user !== null;
      return user === null;
    };
    const run = await measured(
      () => repo.findById('00000000-0000-4000-8000-000000000001'),
      async () => {
        while (!(await seen())) await sleep(2);
      },
    );
    stalls.push(run.stallMs);
    lookupsMs.push(run.slowestLookupMs);
    seenMs.push(run.ms);
    // The same probe as long again with no change in progress: what the machine alone stalls.
    const quiet = await measured(
      () => repo.findById('00000000-0000-4000-8000-000000000001'),
      () => sleep(run.ms),
    );
    quietStalls.push(quiet.stallMs);
  }
  const max = (xs: number[]) => round(Math.max(...xs));
  console.log(
    JSON.stringify({
      users: n,
      changes,
      changeStallMaxMs: max(stalls),
      quietStallMaxMs: max(quietStalls),
      slowestLookupMs: max(lookupsMs),
      changeSeenMaxMs: max(seenMs),
    }),
  );
  repo.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
