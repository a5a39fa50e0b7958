import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Child processes, not threads: each test file gets its own tfjs engine and wasm heap.
    pool: 'forks',
    // Test files run side by side: one BLAS thread each (a run would otherwise take every core).
    env: { TROUPE_BLAS_THREADS: '1' },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
