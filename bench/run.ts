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
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { ROOT, type ServiceProcess } from '../test/helpers/processes.js';
import { renderChart } from './chart.js';
import { BENCH_PASSWORD, BENCH_USER, type BenchSystem, startBenchSystem } from './system.js';

const { values: args } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    soak: { type: 'boolean', default: false },
    minutes: { type: 'string', default: '5' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    connections: { type: 'string', default: '32' },
    warmup: { type: 'string' },
    out: { type: 'string' },
    label: { type: 'string' },
    /** Leave out the same-run comparison with the validation cache off. */
    'no-compare': { type: 'boolean', default: false },
  },
});

const SMOKE = args.smoke;
const DURATION = Number(args.duration ?? (SMOKE ? 1 : 5));
const ROUNDS = Number(args.rounds ?? (SMOKE ? 1 : 5));
/** Paired runs for the latency ratios (same offered load; validate alone / during logins). */
const PAIRS = SMOKE ? 1 : 3;
const CONNECTIONS = Number(args.connections);
const WARMUP = Number(args.warmup ?? (SMOKE ? 0.25 : 2));
const COMPARE = !SMOKE && !args['no-compare'];
const OUT_DIR = args.out ?? join(ROOT, 'bench', 'results');
const OUT_NAME = SMOKE ? 'smoke' : 'latest';

export interface Sample {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  requests: number;
}

interface Scenario {
  key: string;
  title: string;
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  connections?: number;
}

function run(s: Scenario, seconds: number, overallRate?: number): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: s.url,
        method: s.method ?? 'GET',
        headers: s.headers ?? {},
        ...(s.body ? { body: s.body } : {}),
        connections: s.connections ?? CONNECTIONS,
        duration: seconds,
        ...(overallRate ? { overallRate } : {}),
      },
      (err, result) => {
        if (err) return reject(err);
        resolve({
          rps: result.requests.average,
          p50: result.latency.p50,
          p99: result.latency.p99,
          errors: result.errors + result.timeouts,
          non2xx: result.non2xx,
          requests: result.requests.total,
        });
      },
    );
    instance.on('error', reject);
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

function summarize(samples: Sample[]): Sample {
  return {
    rps: median(samples.map((x) => x.rps)),
    p50: median(samples.map((x) => x.p50)),
    p99: median(samples.map((x) => x.p99)),
    errors: samples.reduce((a, x) => a + x.errors, 0),
    non2xx: samples.reduce((a, x) => a + x.non2xx, 0),
    requests: samples.reduce((a, x) => a + x.requests, 0),
  };
}

const clean = (s: Sample) => s.errors === 0 && s.non2xx === 0 && s.requests > 0;

function rssOf(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

function scenariosOf(system: BenchSystem): Scenario[] {
  const html = { accept: 'text/html' };
  const session = { ...html, cookie: system.sessionCookie };
  const scenarios: Scenario[] = [
    {
      key: 'a',
      title: '(a) demo-app direct, no auth',
      url: `${system.demoPlain.url}/`,
      headers: { ...html, 'x-auth-request-user': BENCH_USER, 'x-auth-request-groups': 'bench' },
    },
    {
      key: 'b',
      title: '(b) gateway, authenticated page',
      url: `${system.gateway.url}/`,
      headers: session,
    },
    {
      key: 'e',
      title: '(e) origin-article app (baseline)',
      url: `${system.baseline.url}/`,
      headers: { ...html, cookie: system.baselineCookie },
    },
  ];
  const uncached = system.variants.get('no cache');
  if (uncached)
    scenarios.push({
      key: 'b0',
      title: '(b) without the validation cache',
      url: `${uncached.url}/`,
      headers: session,
    });
  // nginx as deployed: TLS (autocannon keeps connections alive, so only the record cost remains).
  if (system.nginx)
    scenarios.push({
      key: 'd',
      title: '(d) nginx auth_request + demo-app',
      url: `${system.nginx.httpsUrl}/`,
      headers: session,
    });
  scenarios.push(
    {
      key: 'c',
      title: '(c) validate API alone',
      url: `${system.sessionService.url}/auth/validate`,
      headers: { cookie: system.sessionCookie },
    },
    { key: 'f', title: '(f) Express hello-world', url: `${system.hello.url}/` },
  );
  // The same validate through the Express router (`/auth/validate/` takes the Express route):
  // the effect of serving `/auth/validate` before the router, in the same run.
  if (COMPARE)
    scenarios.push({
      key: 'c0',
      title: '(c) through the Express router',
      url: `${system.sessionService.url}/auth/validate/`,
      headers: { cookie: system.sessionCookie },
    });
  return scenarios;
}

/**
 * A ratio measured pair by pair: the median of `value` over the rounds, each round's two runs
 * taken next to each other (the scenarios compared are neighbours in the order), so the machine's
 * drift and its neighbours' bursts hit both sides alike. null when any run was refused.
 */
function pairedRatio(
  samples: Map<string, Sample[]>,
  value: (x: Sample, y: Sample) => number,
  x: string,
  y: string,
): number | null {
  const xs = samples.get(x) ?? [];
  const ys = samples.get(y) ?? [];
  if (xs.length === 0 || xs.length !== ys.length) return null;
  if (![...xs, ...ys].every(clean)) return null;
  return median(xs.map((s, i) => value(s, ys[i] as Sample)));
}

const throughput = (x: Sample, y: Sample) => x.rps / y.rps;
const latency = (x: Sample, y: Sample) => x.p99 / Math.max(y.p99, 1);

interface Ratio {
  name: string;
  value: number | null;
  target: number;
  minimum: number;
  lowerIsBetter?: boolean;
}

function verdict(x: Ratio): string {
  if (x.value === null) return 'n/a (a scenario was refused)';
  if (SMOKE) return '(smoke run: not judged)';
  const better = (v: number, bound: number) => (x.lowerIsBetter ? v <= bound : v >= bound);
  if (better(x.value, x.target)) return 'target met';
  return better(x.value, x.minimum) ? 'above minimum, below target' : 'BELOW MINIMUM';
}

async function measure(system: BenchSystem) {
  const started = Date.now();
  const scenarios = scenariosOf(system);
  const byKey = (key: string) => scenarios.find((s) => s.key === key) as Scenario;

  process.stdout.write(`warming up (${WARMUP} s each)...\n`);
  for (const s of scenarios) await run(s, WARMUP);

  const samples = new Map<string, Sample[]>(scenarios.map((s) => [s.key, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    process.stdout.write(`round ${round}/${ROUNDS}: `);
    // Alternate the order every round so drift on a shared machine spreads evenly.
    const order = round % 2 ? scenarios : [...scenarios].reverse();
    for (const s of order) {
      samples.get(s.key)?.push(await run(s, DURATION));
      process.stdout.write(`${s.key} `);
    }
    process.stdout.write('\n');
  }
  const results = new Map(scenarios.map((s) => [s.key, summarize(samples.get(s.key) ?? [])]));
  const r = (k: string) => results.get(k) as Sample;

  // p99 at the same offered load: (a) and (b) at half of what (b) sustained, alternated.
  const rate = Math.max(50, Math.floor(r('b').rps / 2));
  process.stdout.write(`same offered load (${rate} req/s), ${PAIRS}x: a b\n`);
  const fixed = new Map<string, Sample[]>([
    ['a', []],
    ['b', []],
  ]);
  for (let i = 0; i < PAIRS; i++) {
    fixed.get('a')?.push(await run(byKey('a'), DURATION, rate));
    fixed.get('b')?.push(await run(byKey('b'), DURATION, rate));
  }
  const fixedA = summarize(fixed.get('a') ?? []);
  const fixedB = summarize(fixed.get('b') ?? []);

  // (g) logins flat out (argon2id), and validate latency at a fixed rate alone and while they run.
  process.stdout.write('(g) logins, with validate alongside...\n');
  const login: Scenario = {
    key: 'g',
    title: '(g) JSON login (argon2id)',
    url: `${system.sessionService.url}/auth/login`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: BENCH_USER, password: BENCH_PASSWORD }),
    connections: 8,
  };
  const validateRate = Math.max(50, Math.floor(r('c').rps / 4));
  const paired = new Map<string, Sample[]>([
    ['alone', []],
    ['during', []],
  ]);
  const logins: Sample[] = [];
  for (let i = 0; i < PAIRS; i++) {
    paired.get('alone')?.push(await run(byKey('c'), DURATION, validateRate));
    const [g, v] = await Promise.all([
      run(login, DURATION),
      run(byKey('c'), DURATION, validateRate),
    ]);
    logins.push(g);
    paired.get('during')?.push(v);
  }
  const validateAlone = summarize(paired.get('alone') ?? []);
  const validateDuring = summarize(paired.get('during') ?? []);
  results.set('g', summarize(logins));

  const loginsClean = logins.every(clean);
  const ratios: Ratio[] = [
    {
      name: '(b)/(e) gateway vs one-process app',
      value: pairedRatio(samples, throughput, 'b', 'e'),
      target: 1.0,
      minimum: 0.75,
    },
    {
      name: '(b)/(a) gateway vs app direct',
      value: pairedRatio(samples, throughput, 'b', 'a'),
      target: 0.5,
      minimum: 0.4,
    },
    {
      name: 'p99 (b)/(a) at the same offered load',
      value: pairedRatio(fixed, latency, 'b', 'a'),
      target: 2.0,
      minimum: 2.0,
      lowerIsBetter: true,
    },
    {
      name: '(c)/(f) validate vs hello-world',
      value: pairedRatio(samples, throughput, 'c', 'f'),
      target: 0.9,
      minimum: 0.8,
    },
    {
      name: 'validate p99 during logins / alone',
      value: loginsClean ? pairedRatio(paired, latency, 'during', 'alone') : null,
      target: 2.0,
      minimum: 2.0,
      lowerIsBetter: true,
    },
  ];
  if (results.has('c0'))
    ratios.push({
      name: '(c)/(c0) validate before the router',
      value: pairedRatio(samples, throughput, 'c', 'c0'),
      target: 1,
      minimum: 1,
    });
  if (results.has('b0'))
    ratios.push({
      name: '(b)/(b0) effect of the validation cache',
      value: pairedRatio(samples, throughput, 'b', 'b0'),
      target: 1,
      minimum: 1,
    });

  const titles = new Map([...scenarios, login].map((s) => [s.key, s.title]));
  const rows = [...results].map(([key, s]) => ({
    key,
    title: titles.get(key) ?? key,
    ...s,
    ok: clean(s),
  }));
  const pad = (v: string, n: number) => v.padEnd(n);
  const num = (v: number, n: number, d = 0) => v.toFixed(d).padStart(n);
  const out = process.stdout;
  out.write(
    `\n${pad('scenario', 38)}${'req/s'.padStart(9)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'errors'.padStart(9)}\n`,
  );
  for (const row of rows) {
    const flag = row.ok ? '' : '   REFUSED: had errors or non-2xx answers';
    const rps = row.ok ? num(row.rps, 9) : '      n/a';
    out.write(
      `${pad(row.title, 38)}${rps}${num(row.p50, 9, 1)}${num(row.p99, 9, 1)}${num(row.errors + row.non2xx, 9)}${flag}\n`,
    );
  }
  out.write(
    `\nvalidate p99 at ${validateRate} req/s: ${validateAlone.p99} ms alone, ${validateDuring.p99} ms while logins run (${r('g').rps.toFixed(0)} logins/s)\n`,
  );
  out.write(`p99 at ${rate} req/s: (a) ${fixedA.p99} ms, (b) ${fixedB.p99} ms\n\n`);
  for (const x of ratios) {
    const value = x.value === null ? '    n/a' : x.value.toFixed(2).padStart(7);
    out.write(
      `${pad(x.name, 42)}${value}   target ${x.lowerIsBetter ? '<=' : '>='} ${x.target}  ${verdict(x)}\n`,
    );
  }

  mkdirSync(OUT_DIR, { recursive: true });
  const report = {
    date: new Date().toISOString(),
    label: args.label ?? null,
    node: process.version,
    smoke: SMOKE,
    durationSeconds: DURATION,
    rounds: ROUNDS,
    connections: CONNECTIONS,
    scenarios: rows,
    /** Every run of every round, in order: the ratios are medians of per-round ratios. */
    samples: Object.fromEntries(samples),
    fixedRate: { rate, a: fixedA, b: fixedB },
    validateDuringLogins: { rate: validateRate, alone: validateAlone, during: validateDuring },
    ratios: ratios.map((x) => ({ ...x, verdict: verdict(x) })),
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
  };
  const json = join(OUT_DIR, `${OUT_NAME}.json`);
  const svg = join(OUT_DIR, `${OUT_NAME}.svg`);
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(svg, renderChart(rows, ratios));
  if (!SMOKE) {
    // Keep every full run too, for before/after comparisons.
    const stamp = report.date.replace(/[:.]/g, '-');
    writeFileSync(join(OUT_DIR, `run-${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
  }
  out.write(`\nwrote ${json} and ${svg} (${report.elapsedSeconds} s)\n`);
  const refused = rows.filter((row) => !row.ok);
  if (refused.length > 0) {
    out.write(
      `refusing to report ${refused.map((x) => x.key).join(', ')}: errors or non-2xx answers\n`,
    );
    process.exitCode = 1;
  }
}

async function soak(system: BenchSystem, minutes: number) {
  const scenario = scenariosOf(system).find((s) => s.key === 'b') as Scenario;
  const services: ServiceProcess[] = [system.gateway, system.sessionService, system.demoApp];
  process.stdout.write(`finding the peak of ${scenario.title}...\n`);
  const peak = await run(scenario, 5);
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
  const result = await run(scenario, minutes * 60, rate);
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
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(
    join(OUT_DIR, 'soak.json'),
    `${JSON.stringify({ date: new Date().toISOString(), minutes, rate, result, rss: rows, samples, stable }, null, 2)}\n`,
  );
  if (!stable || !clean(result)) process.exitCode = 1;
}

async function main() {
  process.stdout.write('starting Redis, services, nginx and baselines...\n');
  const system = await startBenchSystem({
    ...(COMPARE ? { gatewayVariants: { 'no cache': { VALIDATE_CACHE_TTL_MS: '0' } } } : {}),
    nginx: !args.soak,
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
    if (args.soak) await soak(system, Number(args.minutes));
    else await measure(system);
  } finally {
    await stop();
  }
}

await main();
