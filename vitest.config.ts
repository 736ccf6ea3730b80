import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', '{pkg,proxier,conntrack,cmd}/**/*.test.ts'],
    // Kernel tests build their own network namespaces; forks keep a crashed test from taking
    // the runner (and its cleanup hooks) down with it.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default'],
  },
});
