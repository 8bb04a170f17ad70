/**
 * `npx tsx bench/profile.ts [--seconds 15] [--scenario b|c] [--top 25]`: where the CPU goes on
 * the gateway path. Starts the bench system with `node --cpu-prof` on the session-service, the
 * gateway and the demo-app (bench/cpu-profiler.mjs: Node 20 refuses --cpu-prof in NODE_OPTIONS), loads scenario (b) (or c) with autocannon, stops the services (the
 * profiles are written on exit) and prints, per process, the functions and the packages with the
 * most self time. The .cpuprofile files stay in bench/results/profile/ (open them in Chrome
 * DevTools or speedscope for flame graphs).
 *
 * `npx tsx bench/profile.ts --cost [--rate 400] [--seconds 8]`: CPU time per request of every
 * process on each scenario's path (/proc/<pid>/task/<tid>/schedstat, all threads), at the same
 * fixed offered load: what each hop costs, independent of how busy the machine is.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { ROOT } from '../test/helpers/processes.js';
import { startBenchSystem } from './system.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    scenario: { type: 'string', default: 'b' },
    top: { type: 'string', default: '25' },
    connections: { type: 'string', default: '32' },
    'gateway-env': { type: 'string', multiple: true, default: [] },
    cost: { type: 'boolean', default: false },
    rate: { type: 'string', default: '400' },
  },
});

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** node_modules/<package>, node:internal, our own file, or (idle)/(gc)/(program). */
function bucketOf(url: string, name: string): string {
  if (!url) return `(${name.replace(/[()]/g, '') || 'native'})`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  if (url.startsWith('node:')) return 'node core';
  const own = /\/work\/[^/]+\/(.*)$/.exec(url)?.[1] ?? url.replace(`file://${ROOT}/`, '');
  return own.replace(/^file:\/\//, '');
}

function summarize(file: string, top: number): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = [...selfUs]
    .filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)')
    .reduce((a, [, us]) => a + us, 0);
  const busy = total - idle;
  const fns = new Map<string, number>();
  const buckets = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === '(idle)') continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${bucketOf(url, functionName)}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const bucket = bucketOf(url, functionName);
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + us);
  }
  const pct = (us: number) => `${((us / Math.max(busy, 1)) * 100).toFixed(1).padStart(5)}%`;
  const lines = [
    `busy ${(busy / 1e6).toFixed(1)} s of ${(total / 1e6).toFixed(1)} s sampled`,
    '  by package / file (self time, % of busy):',
    ...[...buckets]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15)
      .map(([k, us]) => `    ${pct(us)}  ${k}`),
    '  by function:',
    ...[...fns]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `    ${pct(us)}  ${k}`),
  ];
  return lines.join('\n');
}

/** Nanoseconds this process (every thread) has run on a CPU. */
function cpuNs(pid: number | undefined): number {
  if (!pid) return 0;
  let total = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
      total += Number(stat.split(' ')[0] ?? 0);
    }
  } catch {
    // gone
  }
  return total;
}

/** nginx's master and its workers. */
function nginxPids(dir: string): number[] {
  const file = join(dir, 'nginx.pid');
  if (!existsSync(file)) return [];
  const master = Number(readFileSync(file, 'utf8').trim());
  const pids = [master];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === master) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

async function cost() {
  const system = await startBenchSystem({
    gatewayVariants: { 'no cache': { VALIDATE_CACHE_TTL_MS: '0' } },
  });
  const rate = Number(args.rate);
  const seconds = Number(args.seconds);
  try {
    const html = { accept: 'text/html' };
    const session = { ...html, cookie: system.sessionCookie };
    const uncached = system.variants.get('no cache');
    const scenarios: Array<{ key: string; url: string; headers: Record<string, string> }> = [
      {
        key: 'a',
        url: `${system.demoPlain.url}/`,
        headers: { ...html, 'x-auth-request-user': 'bench', 'x-auth-request-groups': 'bench' },
      },
      { key: 'b', url: `${system.gateway.url}/`, headers: session },
      { key: 'b0', url: `${uncached?.url}/`, headers: session },
      {
        key: 'c',
        url: `${system.sessionService.url}/auth/validate`,
        headers: { cookie: system.sessionCookie },
      },
      { key: 'd', url: `${system.nginx?.httpsUrl}/`, headers: session },
      {
        key: 'e',
        url: `${system.baseline.url}/`,
        headers: { ...html, cookie: system.baselineCookie },
      },
      { key: 'f', url: `${system.hello.url}/`, headers: {} },
    ];
    const extra = process.env.MINPROXY_URL;
    if (extra) scenarios.push({ key: 'm', url: extra, headers: html });
    const processes: Array<[string, () => number]> = [
      ...system.services.map((s): [string, () => number] => [s.name, () => cpuNs(s.process.pid)]),
      ['redis', () => cpuNs(system.redis.process.pid)],
      [
        'nginx',
        () => (system.nginx ? nginxPids(system.nginx.dir) : []).reduce((a, p) => a + cpuNs(p), 0),
      ],
      [
        'load generator (autocannon)',
        () => {
          const u = process.cpuUsage();
          return (u.user + u.system) * 1000;
        },
      ],
    ];
    const table = new Map<string, Map<string, number[]>>();
    for (const round of [0, 1]) {
      for (const s of round ? [...scenarios].reverse() : scenarios) {
        await autocannon({ url: s.url, headers: s.headers, connections: 8, duration: 1 });
        const before = processes.map(([, read]) => read());
        const result = await autocannon({
          url: s.url,
          headers: s.headers,
          connections: 16,
          duration: seconds,
          overallRate: rate,
        });
        const after = processes.map(([, read]) => read());
        const requests = Math.max(1, result.requests.total);
        if (result.non2xx || result.errors) process.stdout.write(`(${s.key}: errors!) `);
        const row = table.get(s.key) ?? new Map<string, number[]>();
        processes.forEach(([name], i) => {
          const us = ((after[i] ?? 0) - (before[i] ?? 0)) / 1000 / requests;
          row.set(name, [...(row.get(name) ?? []), us]);
        });
        table.set(s.key, row);
        process.stdout.write(`${s.key} `);
      }
    }
    process.stdout.write(
      `\n\nCPU µs per request at ${rate} req/s (mean of 2 runs; ≥ 5 µs shown)\n`,
    );
    for (const [key, row] of table) {
      const parts = [...row]
        .map(([name, xs]) => [name, xs.reduce((a, b) => a + b, 0) / xs.length] as const)
        .filter(([, us]) => us >= 5)
        .sort((x, y) => y[1] - x[1]);
      const total = parts.reduce((a, [, us]) => a + us, 0);
      process.stdout.write(
        `(${key}) total ${total.toFixed(0).padStart(5)}: ${parts.map(([n, us]) => `${n} ${us.toFixed(0)}`).join(', ')}\n`,
      );
    }
  } finally {
    await system.stop();
  }
}

async function main() {
  if (args.cost) return cost();
  const dir = join(ROOT, 'bench', 'results', 'profile');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const gatewayEnv = Object.fromEntries(
    (args['gateway-env'] ?? []).map((pair) => {
      const eq = pair.indexOf('=');
      return [pair.slice(0, eq), pair.slice(eq + 1)];
    }),
  );
  const system = await startBenchSystem({
    gatehouseEnv: {
      NODE_OPTIONS: `--import ${join(ROOT, 'bench', 'cpu-profiler.mjs')}`,
      CPU_PROFILE_DIR: dir,
    },
    gatewayEnv,
    nginx: false,
  });
  const names = new Map(system.services.map((s) => [s.process.pid, s.name]));
  try {
    const url =
      args.scenario === 'c'
        ? `${system.sessionService.url}/auth/validate`
        : `${system.gateway.url}/`;
    const result = await autocannon({
      url,
      headers: { accept: 'text/html', cookie: system.sessionCookie },
      connections: Number(args.connections),
      duration: Number(args.seconds),
    });
    process.stdout.write(
      `scenario (${args.scenario}): ${result.requests.average.toFixed(0)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, non-2xx ${result.non2xx}, errors ${result.errors}\n\n`,
    );
  } finally {
    await system.stop();
  }
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const pid = Number(file.split('.')[0]);
    const name = names.get(pid) ?? `pid ${pid}`;
    if (name.includes('plain') || name.includes('baseline') || name.includes('hello')) continue;
    process.stdout.write(
      `== ${name} (${file})\n${summarize(join(dir, file), Number(args.top))}\n\n`,
    );
  }
}

await main();
