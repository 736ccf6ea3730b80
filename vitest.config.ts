import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Kernel tests build their own network namespaces; forks keep a crashed test from taking
    // the runner (and its cleanup hooks) down with it.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'test/golden/**/*.test.ts'] },
      },
      {
        // Real kernel, real processes, real timing: one file at a time, so that scenarios that
        // measure latencies do not compete for this machine's two cores.
        extends: true,
        test: {
          name: 'kernel',
          include: ['test/kernel/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          fileParallelism: false,
          setupFiles: ['test/support/kernel-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
