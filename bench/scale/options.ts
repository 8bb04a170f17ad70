/**
 * `npm run bench -- --scale` flags. Sizes default to issue 16's; `--scale-smoke` (or `--scale
 * --smallest`) runs the smallest size of every dimension once, briefly, for CI.
 *
 *   --scale-sizes sessions=1000,1000000;users=100,1000;routes=1,1000;ws=10,5000;gateways=1,8;flood=100,10000
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../../test/helpers/processes.js';

export const DIMENSIONS = ['sessions', 'users', 'routes', 'ws', 'gateways', 'flood'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

export const DEFAULT_SIZES: Record<Dimension, number[]> = {
  sessions: [1_000, 10_000, 100_000, 1_000_000],
  users: [100, 1_000, 10_000, 100_000],
  routes: [1, 10, 100, 1_000],
  ws: [10, 100, 1_000, 5_000],
  gateways: [1, 2, 4, 8],
  flood: [100, 1_000, 10_000],
};

export interface ScaleOptions {
  smoke: boolean;
  sizes: Record<Dimension, number[]>;
  /** Only these dimensions (default: all). */
  only: readonly Dimension[];
  rounds: number;
  /** Seconds per measured run. */
  duration: number;
  connections: number;
  /** Also run `npm run bench`'s scenarios and ratios (with Caddy) at the smallest and largest session count. */
  standard: boolean;
  outDir: string;
  /** Where the charts go: docs/ for a full run, outDir for a smoke or partial run. */
  chartDir: string;
  outName: string;
  label: string | null;
}

export function isScaleRun(argv: string[] = process.argv.slice(2)): boolean {
  return argv.includes('--scale') || argv.includes('--scale-smoke');
}

export function parseScaleOptions(argv: string[] = process.argv.slice(2)): Readonly<ScaleOptions> {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      scale: { type: 'boolean', default: false },
      'scale-smoke': { type: 'boolean', default: false },
      smallest: { type: 'boolean', default: false },
      'scale-sizes': { type: 'string' },
      only: { type: 'string' },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      connections: { type: 'string', default: '32' },
      'no-standard': { type: 'boolean', default: false },
      out: { type: 'string' },
      label: { type: 'string' },
    },
  });
  const smoke = args['scale-smoke'] || args.smallest;
  const sizes = structuredClone(DEFAULT_SIZES);
  for (const part of (args['scale-sizes'] ?? '').split(';').filter(Boolean)) {
    const [name, list] = part.split('=');
    if (!DIMENSIONS.includes(name as Dimension) || !list)
      throw new Error(`--scale-sizes: unknown dimension or no sizes in "${part}"`);
    sizes[name as Dimension] = list
      .split(',')
      .map(Number)
      .sort((a, b) => a - b);
  }
  if (smoke) for (const d of DIMENSIONS) sizes[d] = sizes[d].slice(0, 1);
  const only = args.only ? (args.only.split(',') as Dimension[]) : [...DIMENSIONS];
  for (const d of only) if (!DIMENSIONS.includes(d)) throw new Error(`--only: unknown ${d}`);
  const outDir = args.out ?? join(ROOT, 'bench', 'results');
  const partial = smoke || only.length < DIMENSIONS.length || Boolean(args['scale-sizes']);
  return Object.freeze({
    smoke,
    sizes,
    only,
    rounds: Number(args.rounds ?? (smoke ? 1 : 3)),
    duration: Number(args.duration ?? (smoke ? 1 : 3)),
    connections: Number(args.connections),
    standard: !smoke && !args['no-standard'],
    outDir,
    chartDir: partial ? outDir : join(ROOT, 'docs'),
    outName: smoke ? 'scale-smoke' : 'scale',
    label: args.label ?? null,
  });
}
