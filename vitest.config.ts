import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Builds dist/ first: the tests of real processes run `node dist/main.js`.
    globalSetup: ['test/global-setup.ts'],
    environment: 'node',
    testTimeout: 20_000,
    hookTimeout: 60_000,
    // Each test file gets its own database; two workers keep the 2-core machine busy without thrashing.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
