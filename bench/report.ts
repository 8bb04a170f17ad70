/**
 * What a measured run reports: the ratios against their targets, the table on stdout, and
 * <out>/latest.json (or smoke.json) with its chart; a refused scenario fails the run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderChart } from './chart.js';
import { clean, latency, pairedRatio, type Sample, throughput } from './load.js';
import type { Measurements } from './measure.js';
import type { BenchOptions } from './options.js';

export interface Ratio {
  name: string;
  value: number | null;
  target: number;
  minimum: number;
  lowerIsBetter?: boolean;
  /** A comparison with no target (an alternative a user might pick): shown, never judged. */
  informational?: boolean;
}

function verdict(x: Ratio, smoke: boolean): string {
  if (x.value === null) return 'n/a (a scenario was refused)';
  if (x.informational) return '(comparison, no target)';
  if (smoke) return '(smoke run: not judged)';
  const better = (v: number, bound: number) => (x.lowerIsBetter ? v <= bound : v >= bound);
  if (better(x.value, x.target)) return 'target met';
  return better(x.value, x.minimum) ? 'above minimum, below target' : 'BELOW MINIMUM';
}

export function ratiosOf(m: Measurements): Ratio[] {
  const { samples, results } = m;
  const loginsClean = m.duringLogins.logins.every(clean);
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
      value: pairedRatio(m.fixed.runs, latency, 'b', 'a'),
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
      value: loginsClean ? pairedRatio(m.duringLogins.runs, latency, 'during', 'alone') : null,
      target: 2.0,
      minimum: 2.0,
      lowerIsBetter: true,
    },
  ];
  if (results.has('d2') && results.has('d'))
    ratios.push({
      name: '(d2)/(d) Caddy forward_auth vs nginx',
      value: pairedRatio(samples, throughput, 'd2', 'd'),
      target: 1,
      minimum: 1,
      informational: true,
    });
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
  return ratios;
}

export function report(m: Measurements, opts: BenchOptions): void {
  const ratios = ratiosOf(m);
  const r = (k: string) => m.results.get(k) as Sample;
  const titles = new Map([...m.scenarios, m.login].map((s) => [s.key, s.title]));
  const rows = [...m.results].map(([key, s]) => ({
    key,
    title: titles.get(key) ?? key,
    ...s,
    ok: clean(s),
  }));
  const { rate, a: fixedA, b: fixedB } = m.fixed;
  const { rate: validateRate, alone: validateAlone, during: validateDuring } = m.duringLogins;
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
      `${pad(x.name, 42)}${value}   target ${x.lowerIsBetter ? '<=' : '>='} ${x.target}  ${verdict(x, opts.smoke)}\n`,
    );
  }

  mkdirSync(opts.outDir, { recursive: true });
  const json = {
    date: new Date().toISOString(),
    label: opts.label,
    node: process.version,
    smoke: opts.smoke,
    durationSeconds: opts.duration,
    rounds: opts.rounds,
    connections: opts.connections,
    scenarios: rows,
    /** Every run of every round, in order: the ratios are medians of per-round ratios. */
    samples: Object.fromEntries(m.samples),
    fixedRate: { rate, a: fixedA, b: fixedB },
    validateDuringLogins: { rate: validateRate, alone: validateAlone, during: validateDuring },
    ratios: ratios.map((x) => ({ ...x, verdict: verdict(x, opts.smoke) })),
    elapsedSeconds: Math.round((Date.now() - m.started) / 1000),
  };
  const jsonPath = join(opts.outDir, `${opts.outName}.json`);
  const svgPath = join(opts.outDir, `${opts.outName}.svg`);
  writeFileSync(jsonPath, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(svgPath, renderChart(rows, ratios));
  if (!opts.smoke) {
    // Keep every full run too, for before/after comparisons.
    const stamp = json.date.replace(/[:.]/g, '-');
    writeFileSync(join(opts.outDir, `run-${stamp}.json`), `${JSON.stringify(json, null, 2)}\n`);
  }
  out.write(`\nwrote ${jsonPath} and ${svgPath} (${json.elapsedSeconds} s)\n`);
  const refused = rows.filter((row) => !row.ok);
  if (refused.length > 0) {
    out.write(
      `refusing to report ${refused.map((x) => x.key).join(', ')}: errors or non-2xx answers\n`,
    );
    process.exitCode = 1;
  }
}
