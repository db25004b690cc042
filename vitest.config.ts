import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
    // End-to-end tests spawn real processes; every wait inside them is bounded,
    // this is only the outer guard.
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
