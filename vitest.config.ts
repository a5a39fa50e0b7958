import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { sourcesBuild } from './scripts/sources-build.js';

// Actors whose roles live in src/ start from a compiled copy of it (scripts/sources-build.ts);
// TROUPE_TEST_FROM_SOURCES=1 keeps the TypeScript sources.
const build = sourcesBuild(
  fileURLToPath(new URL('.', import.meta.url)),
  process.env.TROUPE_TEST_FROM_SOURCES === '1',
);

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
