/**
 * `npm run bench`: the side-by-side benchmark. One command, one run: it starts Redis, the three
 * services, nginx (auth_request), the origin-article baseline and an Express hello-world on this
 * machine, warms up, measures every scenario in alternation several times with autocannon, and
 * prints requests/s, p50, p99 and errors (medians of the rounds), plus ratios measured in the same
 * run, each the median of per-round ratios of neighbouring runs (absolute numbers on shared
 * machines are noise). Results go to bench/results/latest.json and latest.svg.
 *
 *   npm run bench                           # full run (about 5 minutes)
 *   npm run bench -- --smoke                # about 10 s of load (CI): checks it works, not the targets
 *   npm run bench -- --soak [--minutes 5]   # memory soak at half of peak load
 *   npm run bench -- --duration 8 --rounds 3 --connections 32 --out /tmp/bench --label note
 *   npm run bench -- --scale                # how the cost grows (issue 16): bench/scale/run.ts
 *   npm run bench -- --scale-smoke          # its smallest sizes only, briefly (CI)
 *
 * The parts: options.ts (the flags), system.ts (the processes), scenarios.ts (what is loaded),
 * load.ts (autocannon and the statistics), measure.ts (the rounds), report.ts (table, ratios,
 * JSON, chart), soak.ts (the memory soak).
 */
import { measure } from './measure.js';
import { parseBenchOptions } from './options.js';
import { report } from './report.js';
import { isScaleRun, parseScaleOptions } from './scale/options.js';
import { runScale } from './scale/run.js';
import { soak } from './soak.js';
import { startBenchSystem } from './system.js';

async function main() {
  if (isScaleRun()) return runScale(parseScaleOptions());
  const opts = parseBenchOptions();
  process.stdout.write('starting Redis, services, nginx and baselines...\n');
  const system = await startBenchSystem({
    ...(opts.compare ? { gatewayVariants: { 'no cache': { VALIDATE_CACHE_TTL_MS: '0' } } } : {}),
    nginx: !opts.soak,
  });
  let stopping = false;
  const stop = async (code?: number) => {
    if (stopping) return;
    stopping = true;
    await system.stop();
    if (code !== undefined) process.exit(code);
  };
  process.once('SIGINT', () => void stop(130));
  process.once('SIGTERM', () => void stop(143));
  try {
    if (opts.soak) await soak(system, opts);
    else report(await measure(system, opts), opts);
  } finally {
    await stop();
  }
}

await main();
