/**
 * The benchmark never rots: `npm run bench -- --smoke` (about 10 s of load) starts everything,
 * runs every scenario, prints the table and writes its JSON. Its figures are not judged here.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runToExit } from '../helpers/run-process.js';

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `npm run bench -- <args>`; stopped with SIGINT (it stops what it started) after 110 s. */
const runBench = (args: string[]) =>
  runToExit('npm', ['run', '--silent', 'bench', '--', ...args], {
    env: process.env,
    timeoutMs: 110_000,
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
    expect(report.scenarios.map((s) => s.key).sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    for (const s of report.scenarios) {
      expect(s.ok, s.key).toBe(true);
      expect(s.requests, s.key).toBeGreaterThan(0);
    }
    expect(report.ratios.every((r) => typeof r.value === 'number')).toBe(true);
    expect(readFileSync(join(dir, 'smoke.svg'), 'utf8')).toContain('<svg');
  }, 120_000);
});
