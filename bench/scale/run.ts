/**
 * `npm run bench -- --scale`: how the cost grows with the work (issue 16). Each dimension starts
 * what it needs, measures its sizes alternated over rounds, stops everything, and hands back its
 * table and charts (result.ts); report.ts prints and writes them. The parts: sessions.ts,
 * users.ts, routes.ts, websockets.ts, gateways.ts, flood.ts (the dimensions), standard.ts
 * (`npm run bench`'s ratios, with Caddy), bulk.ts (sessions and users files in bulk), stack.ts
 * (processes), rounds.ts (load and ratios), chart.ts, report.ts.
 */
import { floodDimension } from './flood.js';
import { gatewaysDimension } from './gateways.js';
import type { Dimension, ScaleOptions } from './options.js';
import { printTable, writeScaleReport } from './report.js';
import type { DimensionResult } from './result.js';
import { routesDimension } from './routes.js';
import { sessionsDimension } from './sessions.js';
import { raiseOpenFiles, stopAllStacks } from './stack.js';
import { standardRatios } from './standard.js';
import { usersDimension } from './users.js';
import { websocketsDimension } from './websockets.js';

const RUNNERS: Record<Dimension, (opts: ScaleOptions) => Promise<DimensionResult>> = {
  sessions: sessionsDimension,
  users: usersDimension,
  routes: routesDimension,
  ws: websocketsDimension,
  gateways: gatewaysDimension,
  flood: floodDimension,
};

/** Open files every process may hold: 5,000 WebSockets through a gateway take 10,000 there. */
const OPEN_FILES = 65_536;

export async function runScale(opts: ScaleOptions): Promise<void> {
  const started = Date.now();
  const openFiles = raiseOpenFiles(OPEN_FILES);
  // Interrupted (Ctrl-C, the CI's timeout): stop every process started so far, then exit.
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      process.stdout.write(`\n${signal}: stopping what the scale benchmark started\n`);
      void stopAllStacks().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  process.stdout.write(
    `scale benchmark${opts.smoke ? ' (smoke: smallest sizes, one short round)' : ''}: ${opts.only.join(', ')}; open files ${openFiles}\n`,
  );
  const dimensions: DimensionResult[] = [];
  let failed = false;
  const one = async (d: Dimension) => {
    process.stdout.write(`\n-- ${d}: sizes ${opts.sizes[d].join(', ')}\n`);
    try {
      const result = await RUNNERS[d](opts);
      dimensions.push(result);
      printTable(result);
      // A long run keeps what it measured so far (JSON and charts), should it be cut short.
      if (!opts.smoke) writeScaleReport({ started, openFiles, dimensions, standard: null }, opts);
    } catch (err) {
      failed = true;
      process.stdout.write(`${d} FAILED: ${(err as Error).stack ?? String(err)}\n`);
    }
  };
  // A smoke run checks that everything runs, not the figures: all dimensions at once. A real run
  // measures one dimension at a time, so no dimension loads the machine under another.
  if (opts.smoke) await Promise.all(opts.only.map(one));
  else for (const d of opts.only) await one(d);
  dimensions.sort((a, b) => opts.only.indexOf(a.dimension) - opts.only.indexOf(b.dimension));
  let standard: unknown = null;
  if (opts.standard) {
    process.stdout.write('\n-- npm run bench scenarios and ratios (with Caddy forward_auth)\n');
    try {
      standard = await standardRatios(opts);
    } catch (err) {
      failed = true;
      process.stdout.write(`standard ratios FAILED: ${(err as Error).stack ?? String(err)}\n`);
    }
  }
  writeScaleReport({ started, openFiles, dimensions, standard }, opts);
  if (failed) process.exitCode = 1;
}
