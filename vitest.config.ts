import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Each file gets its own process: TensorFlow.js backends are process-global.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
