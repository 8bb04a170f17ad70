/** `npm run bench -- --soak`: (b) at half of its peak for minutes, RSS of each service sampled. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServiceProcess } from '../test/helpers/processes.js';
import { clean, median, run, type Scenario } from './load.js';
import type { BenchOptions } from './options.js';
import { scenariosOf } from './scenarios.js';
import type { BenchSystem } from './system.js';

function rssOf(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

export async function soak(system: BenchSystem, opts: BenchOptions) {
  const { minutes } = opts;
  const scenario = scenariosOf(system, false).find((s) => s.key === 'b') as Scenario;
  const services: ServiceProcess[] = [system.gateway, system.sessionService, system.demoApp];
  process.stdout.write(`finding the peak of ${scenario.title}...\n`);
  const peak = await run(scenario, 5, opts.connections);
  const rate = Math.floor(peak.rps / 2);
  process.stdout.write(
    `soaking at ${rate} req/s (half of peak) for ${minutes} min, sampling RSS every 5 s\n`,
  );
  const samples: Array<{ t: number; rss: Record<string, number> }> = [];
  const sample = () =>
    samples.push({
      t: Date.now(),
      rss: Object.fromEntries(services.map((s) => [s.name, rssOf(s.process.pid)])),
    });
  const timer = setInterval(sample, 5000);
  const result = await run(scenario, minutes * 60, opts.connections, rate);
  clearInterval(timer);
  sample();
  // The first fifth is warm-up (JIT, pools filling); compare the second fifth with the last.
  const window = Math.max(1, Math.floor(samples.length / 5));
  let stable = true;
  const rows = services.map((s) => {
    const first = median(samples.slice(window, 2 * window).map((x) => x.rss[s.name] ?? 0));
    const last = median(samples.slice(-window).map((x) => x.rss[s.name] ?? 0));
    const change = first ? (last - first) / first : 0;
    if (Math.abs(change) > 0.1) stable = false;
    process.stdout.write(
      `${s.name.padEnd(28)} RSS ${(first / 1048576).toFixed(1)} MiB -> ${(last / 1048576).toFixed(1)} MiB (${(change * 100).toFixed(1)}%)\n`,
    );
    return { service: s.name, firstBytes: first, lastBytes: last, change };
  });
  process.stdout.write(
    `${result.rps.toFixed(0)} req/s, p99 ${result.p99} ms, errors ${result.errors}, non-2xx ${result.non2xx}; RSS ${stable ? 'stable within 10%' : 'NOT stable within 10%'}\n`,
  );
  mkdirSync(opts.outDir, { recursive: true });
  writeFileSync(
    join(opts.outDir, 'soak.json'),
    `${JSON.stringify({ date: new Date().toISOString(), minutes, rate, result, rss: rows, samples, stable }, null, 2)}\n`,
  );
  if (!stable || !clean(result)) process.exitCode = 1;
}
