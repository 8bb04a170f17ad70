/** One autocannon run of a scenario, and the statistics over rounds of runs (medians, paired ratios). */
import autocannon from 'autocannon';

export interface Sample {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  requests: number;
}

export interface Scenario {
  key: string;
  title: string;
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  connections?: number;
}

/** Load `s` for `seconds` with `connections` (unless the scenario sets its own), flat out or at `overallRate`. */
export function run(
  s: Scenario,
  seconds: number,
  connections: number,
  overallRate?: number,
): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: s.url,
        method: s.method ?? 'GET',
        headers: s.headers ?? {},
        ...(s.body ? { body: s.body } : {}),
        connections: s.connections ?? connections,
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

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

export function summarize(samples: Sample[]): Sample {
  return {
    rps: median(samples.map((x) => x.rps)),
    p50: median(samples.map((x) => x.p50)),
    p99: median(samples.map((x) => x.p99)),
    errors: samples.reduce((a, x) => a + x.errors, 0),
    non2xx: samples.reduce((a, x) => a + x.non2xx, 0),
    requests: samples.reduce((a, x) => a + x.requests, 0),
  };
}

export const clean = (s: Sample) => s.errors === 0 && s.non2xx === 0 && s.requests > 0;

/**
 * A ratio measured pair by pair: the median of `value` over the rounds, each round's two runs
 * taken next to each other (the scenarios compared are neighbours in the order), so the machine's
 * drift and its neighbours' bursts hit both sides alike. null when any run was refused.
 */
export function pairedRatio(
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

export const throughput = (x: Sample, y: Sample) => x.rps / y.rps;
export const latency = (x: Sample, y: Sample) => x.p99 / Math.max(y.p99, 1);
