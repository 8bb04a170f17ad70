import { defineConfig } from 'vitest/config';

/** One project per tier, each a folder of test/: `vitest run --project unit` runs one tier. */
const TIERS = {
  /** No processes, no sockets: pure modules, in seconds. */
  unit: 'test/unit',
  /** Real Redis, real session-service processes, gateways in-process. */
  integration: 'test/integration',
  /** The services as real processes, nginx, Redis Cluster and Sentinel. */
  e2e: 'test/e2e',
  /** Real Chromium. */
  browser: 'test/browser',
} as const;

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Real processes (redis-server, services, nginx, Chromium) on 2 cores: keep parallelism modest.
    // The projects share one pool (they have the same sequence.groupOrder), so this caps the
    // whole run, not each tier: `npm test` never runs more than 2 test files at once.
    maxWorkers: 2,
    reporters: ['default'],
    projects: Object.entries(TIERS).map(([name, dir]) => ({
      extends: true,
      test: {
        name,
        include: [`${dir}/**/*.test.ts`],
        // a unit test that starts a process, listens or connects fails (test/helpers/unit-guard.ts)
        ...(name === 'unit' ? { setupFiles: ['test/helpers/unit-guard.ts'] } : {}),
      },
    })),
  },
});
