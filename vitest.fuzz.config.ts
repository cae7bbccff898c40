// `npm run fuzz`: the fuzz suite only (test/fuzz/*.fuzz.ts), one worker, long enough for FUZZ_RUNS cases.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/fuzz/**/*.fuzz.ts'],
    environment: 'node',
    testTimeout: 600_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 1,
    reporters: ['default'],
  },
});
