/** `npm run bench`'s flags, parsed once into the settings every part of the run reads. */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../test/helpers/processes.js';

export interface BenchOptions {
  smoke: boolean;
  soak: boolean;
  /** Soak length. */
  minutes: number;
  /** Seconds per measured run. */
  duration: number;
  rounds: number;
  /** Paired runs for the latency ratios (same offered load; validate alone / during logins). */
  pairs: number;
  connections: number;
  /** Seconds of warm-up per scenario. */
  warmup: number;
  /** Measure the same-run comparisons (validation cache off, validate through the router). */
  compare: boolean;
  outDir: string;
  outName: string;
  label: string | null;
}

export function parseBenchOptions(argv: string[] = process.argv.slice(2)): Readonly<BenchOptions> {
  const { values: args } = parseArgs({
    args: argv,
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
  const smoke = args.smoke;
  return Object.freeze({
    smoke,
    soak: args.soak,
    minutes: Number(args.minutes),
    duration: Number(args.duration ?? (smoke ? 1 : 5)),
    rounds: Number(args.rounds ?? (smoke ? 1 : 5)),
    pairs: smoke ? 1 : 3,
    connections: Number(args.connections),
    warmup: Number(args.warmup ?? (smoke ? 0.25 : 2)),
    compare: !smoke && !args['no-compare'],
    outDir: args.out ?? join(ROOT, 'bench', 'results'),
    outName: smoke ? 'smoke' : 'latest',
    label: args.label ?? null,
  });
}
