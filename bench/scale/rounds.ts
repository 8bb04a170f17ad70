/**
 * How every dimension measures: autocannon over many session cookies (one per request, cycled),
 * sizes alternated and repeated in rounds, and each figure as a ratio to the smallest size, the
 * median of per-round ratios (a round's runs are close in time, so the machine's drift and its
 * neighbours' bursts hit both sides alike).
 */
import autocannon from 'autocannon';
import { clean, median, type Sample } from '../load.js';

export interface Load {
  url: string;
  /** One request per cookie, cycled (each connection walks the list). */
  cookies?: readonly string[];
  headers?: Record<string, string>;
  connections?: number;
}

/** Load `l` for `seconds`, flat out or at `rate` requests/s overall. */
export function load(l: Load, seconds: number, rate?: number): Promise<Sample> {
  const cookies = l.cookies && l.cookies.length > 0 ? l.cookies : [''];
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: l.url,
        connections: l.connections ?? 32,
        duration: seconds,
        headers: l.headers ?? {},
        requests: cookies.map((cookie) => ({
          method: 'GET' as const,
          headers: { ...(l.headers ?? {}), ...(cookie ? { cookie } : {}) },
        })),
        ...(rate ? { overallRate: rate } : {}),
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

/** Samples by size, then by what was measured, one per round. */
export type Rounds = Map<number, Map<string, Sample[]>>;

export function record(rounds: Rounds, size: number, key: string, s: Sample) {
  const bySize = rounds.get(size) ?? new Map<string, Sample[]>();
  rounds.set(size, bySize);
  bySize.set(key, [...(bySize.get(key) ?? []), s]);
}

/** The sizes in this round's order: ascending on odd rounds, descending on even ones. */
export const orderOf = (sizes: readonly number[], round: number) =>
  round % 2 ? [...sizes] : [...sizes].reverse();

export interface Figure {
  size: number;
  rps: number;
  p50: number;
  p99: number;
  /** Throughput at this size / at the smallest (median of per-round ratios); null: refused. */
  rpsRatio: number | null;
  /** p99 at this size / at the smallest (median of per-round ratios). */
  p99Ratio: number | null;
  errors: number;
}

/** The figures of `key` at every size, as ratios to the smallest size. */
export function figuresOf(rounds: Rounds, sizes: readonly number[], key: string): Figure[] {
  const base = rounds.get(sizes[0] as number)?.get(key) ?? [];
  return sizes.map((size) => {
    const xs = rounds.get(size)?.get(key) ?? [];
    const paired = xs.length === base.length && [...xs, ...base].every(clean);
    const ratio = (f: (x: Sample, y: Sample) => number) =>
      paired && xs.length > 0 ? median(xs.map((x, i) => f(x, base[i] as Sample))) : null;
    return {
      size,
      rps: median(xs.map((x) => x.rps)),
      p50: median(xs.map((x) => x.p50)),
      p99: median(xs.map((x) => x.p99)),
      rpsRatio: ratio((x, y) => x.rps / y.rps),
      p99Ratio: ratio((x, y) => x.p99 / Math.max(y.p99, 1)),
      errors: xs.reduce((a, x) => a + x.errors + x.non2xx, 0),
    };
  });
}

/** Ratio `a`/`b` of two keys at each size, median over the rounds (e.g. last route / first). */
export function pairedAt(rounds: Rounds, size: number, a: string, b: string): number | null {
  const xs = rounds.get(size)?.get(a) ?? [];
  const ys = rounds.get(size)?.get(b) ?? [];
  if (xs.length === 0 || xs.length !== ys.length || ![...xs, ...ys].every(clean)) return null;
  return median(xs.map((x, i) => x.rps / (ys[i] as Sample).rps));
}

export const say = (line: string) => process.stdout.write(`${line}\n`);
