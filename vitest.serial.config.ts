import { defineConfig } from 'vitest/config';

/**
 * Tests that disturb shared services (restarting PostgreSQL): run alone, after the main run,
 * so no other test is using the server meanwhile.
 */
export default defineConfig({
  test: {
    include: ['test/serial/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 60_000,
  },
});
