import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Real processes (redis-server, services, nginx, Chromium) on 2 cores: keep parallelism modest.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
