import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // test/serial/ disturbs shared services: vitest.serial.config.ts runs it alone, afterwards.
    exclude: ['test/serial/**', '**/node_modules/**'],
    // Recovery tests spawn engine processes; two cores means a small pool.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
