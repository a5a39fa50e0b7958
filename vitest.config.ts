import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { testBuild } from './test/helpers/build.js';

// Actors whose roles live in src/ start from a compiled copy of it (test/helpers/build.ts).
const build = testBuild(fileURLToPath(new URL('.', import.meta.url)));

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Child processes, not threads: each test file gets its own tfjs engine and wasm heap.
    pool: 'forks',
    // Test files run side by side, one per core (vitest's default in run mode is one fewer than
    // the cores: on a 2-core machine, one file at a time), with one BLAS thread each (a run
    // would otherwise take every core).
    maxWorkers: availableParallelism(),
    env: { TROUPE_BLAS_THREADS: '1', ...(build ? { TROUPE_SOURCES_BUILD: build } : {}) },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
