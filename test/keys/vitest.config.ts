/** Config for running only the key tests without the shared MinIO globalSetup: npx vitest run -c test/keys/vitest.config.ts */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/keys/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    watch: false,
  },
});
