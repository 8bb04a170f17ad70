/**
 * `npm run bench`'s scenarios and ratios inside `--scale`: the same system (nginx auth_request
 * and, beside it, Caddy's forward_auth), measured at the smallest and at the largest session
 * count of the sessions dimension (the rest made through the repository, bulk.ts), so the ratios
 * of the first benchmark are shown to hold as sessions grow.
 */

import { readUsersFile } from '../../session-service/src/adapters/users-file.js';
import { median } from '../load.js';
import { measure } from '../measure.js';
import type { BenchOptions } from '../options.js';
import { ratiosOf } from '../report.js';
import { BENCH_PASSWORD, startBenchSystem } from '../system.js';
import { bulkSessions } from './bulk.js';
import type { ScaleOptions } from './options.js';
import { say } from './rounds.js';
import { createStack } from './stack.js';

export async function standardRatios(opts: ScaleOptions) {
  const sizes = opts.sizes.sessions;
  const system = await startBenchSystem({
    gatewayVariants: { 'no cache': { VALIDATE_CACHE_TTL_MS: '0' } },
  });
  const bench: BenchOptions = {
    smoke: false,
    soak: false,
    minutes: 0,
    duration: opts.duration,
    rounds: opts.rounds,
    pairs: 1,
    connections: opts.connections,
    warmup: 1,
    compare: true,
    outDir: opts.outDir,
    outName: 'scale-standard',
    label: opts.label,
  };
  // Stopped with the stacks when the run is interrupted.
  const guard = createStack();
  guard.onStop(() => system.stop());
  try {
    const bulk = await bulkSessions({
      redisUrl: system.redis.url,
      serviceUrl: system.sessionService.url,
      users: await readUsersFile(system.usersFile),
      password: BENCH_PASSWORD,
    });
    const out = [];
    let live = 2;
    for (const size of [...new Set([sizes[0] as number, sizes[sizes.length - 1] as number])]) {
      if (size > live) await bulk.create(size - live, (n) => say(`  ${n} sessions created`));
      live = Math.max(live, size);
      say(`  at ${size} live sessions`);
      const m = await measure(system, bench);
      const scenarios = [...m.results].map(([key, s]) => ({
        key,
        title: [...m.scenarios, m.login].find((x) => x.key === key)?.title ?? key,
        rps: Math.round(s.rps),
        p50: s.p50,
        p99: s.p99,
        errors: s.errors + s.non2xx,
      }));
      const ratios = ratiosOf(m).map((x) => ({
        name: x.name,
        value: x.value === null ? null : Number(x.value.toFixed(2)),
        target: x.informational ? null : x.target,
      }));
      for (const x of ratios) say(`    ${x.name.padEnd(42)} ${x.value ?? 'n/a'}`);
      out.push({ sessions: size, scenarios, ratios });
    }
    await bulk.close();
    const be = out.map((x) => x.ratios.find((r) => r.name.startsWith('(b)/(e)'))?.value ?? null);
    return {
      runs: out,
      bOverE: be,
      bOverEMedian: median(be.filter((x) => x !== null) as number[]),
    };
  } finally {
    await guard.stop();
  }
}
