/**
 * The benchmark never rots: `npm run bench -- --smoke` (about 10 s of load) starts everything,
 * runs every scenario, prints the table and writes its JSON; `npm run bench -- --scale-smoke`
 * runs the smallest size of every dimension of the scale benchmark (docs/performance.md, "Cost as
 * the work grows"). Their timings are not judged here, only that every figure was measured.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runToExit } from '../helpers/run-process.js';

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `npm run bench -- <args>`; stopped with SIGINT (it stops what it started) after `timeoutMs`. */
const runBench = (args: string[], timeoutMs = 110_000) =>
  runToExit('npm', ['run', '--silent', 'bench', '--', ...args], {
    env: process.env,
    timeoutMs,
    killSignal: 'SIGINT',
  });

describe('npm run bench -- --smoke', () => {
  it('runs every scenario without errors, prints the table and writes the JSON', async () => {
    const { code, output } = await runBench(['--smoke', '--out', dir]);
    expect(code, output).toBe(0);
    expect(output).toMatch(/scenario\s+req\/s\s+p50 ms\s+p99 ms\s+errors/);
    expect(output).toContain('(b)/(e) gateway vs one-process app');
    expect(output).not.toContain('REFUSED');

    const report = JSON.parse(readFileSync(join(dir, 'smoke.json'), 'utf8')) as {
      smoke: boolean;
      scenarios: Array<{ key: string; ok: boolean; rps: number; requests: number }>;
      ratios: Array<{ name: string; value: number | null }>;
    };
    expect(report.smoke).toBe(true);
    expect(report.scenarios.map((s) => s.key).sort()).toEqual([
      'a',
      'b',
      'c',
      'd',
      'd2',
      'e',
      'f',
      'g',
    ]);
    for (const s of report.scenarios) {
      expect(s.ok, s.key).toBe(true);
      expect(s.requests, s.key).toBeGreaterThan(0);
    }
    expect(report.ratios.every((r) => typeof r.value === 'number')).toBe(true);
    expect(readFileSync(join(dir, 'smoke.svg'), 'utf8')).toContain('<svg');
  }, 120_000);
});

type Row = Record<string, number | string | boolean | null>;

describe('npm run bench -- --scale-smoke', () => {
  it('measures the smallest size of every dimension: tables, JSON with every figure, a chart each', async () => {
    const out = join(dir, 'scale');
    const { code, output } = await runBench(['--scale-smoke', '--out', out], 280_000);
    expect(code, output).toBe(0);
    const dims = ['sessions', 'users', 'routes', 'ws', 'gateways', 'flood'];
    for (const d of dims) expect(output).toContain(`(${d}), `);
    expect(output).not.toContain('FAILED');

    const report = JSON.parse(readFileSync(join(out, 'scale-smoke.json'), 'utf8')) as {
      smoke: boolean;
      elapsedSeconds: number;
      dimensions: Record<string, { rows: Row[]; bound: string }>;
    };
    expect(report.smoke).toBe(true);
    expect(Object.keys(report.dimensions).sort()).toEqual([...dims].sort());
    const first = (d: string) => report.dimensions[d]?.rows[0] as Row;
    for (const d of dims) {
      expect(report.dimensions[d]?.bound, d).toBeTruthy();
      expect(readFileSync(join(out, `scale-smoke-${d}.svg`), 'utf8'), d).toContain('<svg');
    }

    // Sessions: made in the real record format, validated without errors, counted, measured.
    const sessions = first('sessions');
    expect(sessions.size).toBe(1000);
    expect(sessions.errors).toBe(0);
    expect(sessions.validateRps).toBeGreaterThan(0);
    expect(sessions.recordBytes).toBeGreaterThan(100);
    expect(sessions.vsOrigin).toBeGreaterThan(0);
    expect(sessions.counted).toBeGreaterThanOrEqual(1000);
    expect(sessions.firstMetricsMs).toBeGreaterThanOrEqual(0);
    // Users: validate, the first login and the slowest validate during a users-file change.
    const users = first('users');
    expect(users.validateRps).toBeGreaterThan(0);
    expect(users.firstLoginMs).toBeGreaterThan(0);
    expect(users.stallMs).toBeGreaterThan(0);
    // Routes: the last/first ratio exists.
    expect(typeof first('routes').lastVsFirst).toBe('number');
    expect(first('routes').errors).toBe(0);
    // WebSockets: every sampled socket closed after its logout; the close bound was measured.
    const ws = first('ws');
    expect(ws.closed).toBe('10/10');
    expect(typeof ws.closeMaxMs).toBe('number');
    expect(ws.validatePerSecond).toBeGreaterThanOrEqual(0);
    // Gateways: the revocation reached the gateway.
    expect(Number.isFinite(first('gateways').revocationMaxMs)).toBe(true);
    expect(first('gateways').errors).toBe(0);
    // Flood: throttle keys were written, and every one of them expires.
    const flood = first('flood');
    expect(flood.keys).toBeGreaterThan(0);
    expect(flood.keysWithoutTtl).toBe(0);
    expect(flood.maxTtlSeconds).toBeGreaterThan(0);
  }, 300_000);
});
