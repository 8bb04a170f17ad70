/**
 * What `--scale` reports: a table per dimension on stdout, <out>/scale.json (or
 * scale-smoke.json) with every figure, and one SVG chart per dimension (docs/scale-<name>.svg
 * for a full run, <out>/ for a smoke or partial run, so CI never overwrites the published ones).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../test/helpers/processes.js';
import { renderScaleChart } from './chart.js';
import type { ScaleOptions } from './options.js';
import type { Cell, DimensionResult } from './result.js';

const show = (v: Cell, digits = 0) =>
  v === null || v === undefined ? 'n/a' : typeof v === 'number' ? v.toFixed(digits) : String(v);

export function printTable(d: DimensionResult): void {
  const out = process.stdout;
  out.write(`\n== ${d.title} (${d.dimension}), ${d.seconds} s\n`);
  const widths = d.columns.map((c) =>
    Math.max(c.label.length, ...d.rows.map((r) => show(r[c.key] ?? null, c.digits).length)),
  );
  out.write(`${d.columns.map((c, i) => c.label.padStart(widths[i] as number)).join('  ')}\n`);
  for (const r of d.rows)
    out.write(
      `${d.columns.map((c, i) => show(r[c.key] ?? null, c.digits).padStart(widths[i] as number)).join('  ')}\n`,
    );
  out.write(`bound: ${d.bound}\n`);
  for (const n of d.notes) out.write(`  - ${n}\n`);
}

function commit(): string {
  if (process.env.GATEHOUSE_COMMIT) return process.env.GATEHOUSE_COMMIT;
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim();
  } catch {
    return 'unknown';
  }
}

export interface ScaleRun {
  started: number;
  openFiles: number;
  dimensions: DimensionResult[];
  /** `npm run bench`'s ratios measured in the same run (null when skipped). */
  standard: unknown;
}

export function writeScaleReport(run: ScaleRun, opts: ScaleOptions): string {
  const date = new Date().toISOString();
  const elapsed = Math.round((Date.now() - run.started) / 1000);
  const dirty = (() => {
    if (process.env.GATEHOUSE_COMMIT) return false;
    try {
      return (
        execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT })
          .toString()
          .trim().length > 0
      );
    } catch {
      return false;
    }
  })();
  const json = {
    date,
    commit: commit(),
    /** Uncommitted changes in the working tree when it ran (others' work in progress). */
    workingTreeDirty: dirty,
    label: opts.label,
    node: process.version,
    cpus: cpus().length,
    loadAverageAtEnd: loadavg().map((x) => Number(x.toFixed(1))),
    smoke: opts.smoke,
    rounds: opts.rounds,
    durationSeconds: opts.duration,
    connections: opts.connections,
    openFiles: run.openFiles,
    sizes: opts.sizes,
    elapsedSeconds: elapsed,
    dimensions: Object.fromEntries(run.dimensions.map((d) => [d.dimension, d])),
    standard: run.standard,
  };
  mkdirSync(opts.outDir, { recursive: true });
  const path = join(opts.outDir, `${opts.outName}.json`);
  writeFileSync(path, `${JSON.stringify(json, null, 2)}\n`);
  mkdirSync(opts.chartDir, { recursive: true });
  const subtitle = `npm run bench -- --scale, ${date.slice(0, 10)}, commit ${json.commit}${dirty ? '+changes' : ''}, ${json.cpus} CPUs (shared), ${opts.rounds} round(s) of ${opts.duration} s`;
  for (const d of run.dimensions) {
    const prefix = opts.smoke ? 'scale-smoke-' : 'scale-';
    writeFileSync(
      join(opts.chartDir, `${prefix}${d.dimension}.svg`),
      renderScaleChart(d, subtitle),
    );
  }
  process.stdout.write(
    `\nwrote ${path} and ${run.dimensions.length} chart(s) in ${opts.chartDir} (whole run ${elapsed} s)\n`,
  );
  return path;
}
