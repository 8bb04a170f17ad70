/**
 * The measured run: warm-up, rounds of every scenario in alternating order, then the paired runs
 * at a fixed offered load ((a) against (b), and validate alone against validate during logins).
 * What it measured goes to report.ts.
 */
import { run, type Sample, type Scenario, summarize } from './load.js';
import type { BenchOptions } from './options.js';
import { loginScenario, scenariosOf } from './scenarios.js';
import type { BenchSystem } from './system.js';

export interface Measurements {
  started: number;
  scenarios: Scenario[];
  login: Scenario;
  /** Every run of every round, per scenario key, in order. */
  samples: Map<string, Sample[]>;
  /** The median of the rounds per scenario key, (g) included. */
  results: Map<string, Sample>;
  /** (a) and (b) at the same offered load `rate`. */
  fixed: { rate: number; runs: Map<string, Sample[]>; a: Sample; b: Sample };
  /** validate at `rate` alone and while logins run. */
  duringLogins: {
    rate: number;
    runs: Map<string, Sample[]>;
    alone: Sample;
    during: Sample;
    logins: Sample[];
  };
}

export async function measure(system: BenchSystem, opts: BenchOptions): Promise<Measurements> {
  const started = Date.now();
  const scenarios = scenariosOf(system, opts.compare);
  const byKey = (key: string) => scenarios.find((s) => s.key === key) as Scenario;
  const load = (s: Scenario, rate?: number) => run(s, opts.duration, opts.connections, rate);

  process.stdout.write(`warming up (${opts.warmup} s each)...\n`);
  for (const s of scenarios) await run(s, opts.warmup, opts.connections);

  const samples = new Map<string, Sample[]>(scenarios.map((s) => [s.key, []]));
  for (let round = 1; round <= opts.rounds; round++) {
    process.stdout.write(`round ${round}/${opts.rounds}: `);
    // Alternate the order every round so drift on a shared machine spreads evenly.
    const order = round % 2 ? scenarios : [...scenarios].reverse();
    for (const s of order) {
      samples.get(s.key)?.push(await load(s));
      process.stdout.write(`${s.key} `);
    }
    process.stdout.write('\n');
  }
  const results = new Map(scenarios.map((s) => [s.key, summarize(samples.get(s.key) ?? [])]));
  const r = (k: string) => results.get(k) as Sample;

  // p99 at the same offered load: (a) and (b) at half of what (b) sustained, alternated.
  const rate = Math.max(50, Math.floor(r('b').rps / 2));
  process.stdout.write(`same offered load (${rate} req/s), ${opts.pairs}x: a b\n`);
  const fixed = new Map<string, Sample[]>([
    ['a', []],
    ['b', []],
  ]);
  for (let i = 0; i < opts.pairs; i++) {
    fixed.get('a')?.push(await load(byKey('a'), rate));
    fixed.get('b')?.push(await load(byKey('b'), rate));
  }

  // (g) logins flat out (argon2id), and validate latency at a fixed rate alone and while they run.
  process.stdout.write('(g) logins, with validate alongside...\n');
  const login = loginScenario(system);
  const validateRate = Math.max(50, Math.floor(r('c').rps / 4));
  const paired = new Map<string, Sample[]>([
    ['alone', []],
    ['during', []],
  ]);
  const logins: Sample[] = [];
  for (let i = 0; i < opts.pairs; i++) {
    paired.get('alone')?.push(await load(byKey('c'), validateRate));
    const [g, v] = await Promise.all([load(login), load(byKey('c'), validateRate)]);
    logins.push(g);
    paired.get('during')?.push(v);
  }
  results.set('g', summarize(logins));

  return {
    started,
    scenarios,
    login,
    samples,
    results,
    fixed: {
      rate,
      runs: fixed,
      a: summarize(fixed.get('a') ?? []),
      b: summarize(fixed.get('b') ?? []),
    },
    duringLogins: {
      rate: validateRate,
      runs: paired,
      alone: summarize(paired.get('alone') ?? []),
      during: summarize(paired.get('during') ?? []),
      logins,
    },
  };
}
