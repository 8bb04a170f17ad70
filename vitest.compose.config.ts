import { defineConfig } from 'vitest/config';

/**
 * `npm run test:compose`: the docker-compose stack (test/compose), opt-in, never part of
 * `npm test` (vitest.config.ts's projects do not include test/compose). One file, one scenario in
 * order; building the image takes minutes.
 */
export default defineConfig({
  test: {
    include: ['test/compose/**/*.test.ts'],
    testTimeout: 5 * 60_000,
    hookTimeout: 30 * 60_000,
    fileParallelism: false,
    reporters: ['default'],
  },
});
