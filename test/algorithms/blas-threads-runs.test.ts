import { mkdtempSync, readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainLm } from '../../src/algorithms/lm.js';
import { loadConfig } from '../../src/config/load.js';
import type { PretrainConfig } from '../../src/config/schema.js';
import { RUN_BLAS_THREADS_ENV } from '../../src/kernels/native.js';

/**
 * Two runs in one process (tests, the bench, library use): each plans its BLAS threads from the
 * user's setting, not from what the run before it chose. Tiny pretraining runs, one step each.
 */
function config(replicas: number) {
  return loadConfig<PretrainConfig>('pretrain', {
    object: {
      output: mkdtempSync(join(tmpdir(), 'troupe-blas-runs-')),
      model: {
        init: { family: 'gpt2', hidden: 16, layers: 1, heads: 2, maxPositions: 32 },
        tokenizer: { train: { vocabSize: 280 } },
      },
      data: { train: 'data/moby-dick/eval.jsonl', evalFraction: 0.15, blockSize: 16 },
      train: { steps: 1, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
      runtime: { backend: 'wasm', replicas },
    },
  });
}

const planned = (runDir: string) =>
  Number(/BLAS threads per call: (\d+)/.exec(readFileSync(join(runDir, 'log.txt'), 'utf8'))?.[1]);

describe('BLAS threads across runs in one process', () => {
  const names = ['TROUPE_BLAS_THREADS', 'OPENBLAS_NUM_THREADS', RUN_BLAS_THREADS_ENV];
  it.skipIf(availableParallelism() < 2)(
    "a second run shares the cores out for its own actors, not the first run's count",
    async () => {
      const saved = names.map((n) => process.env[n]);
      try {
        for (const n of names) delete process.env[n]; // the user set nothing
        const cores = availableParallelism();
        const one = await trainLm(await config(1));
        expect(planned(one.runDir)).toBe(cores);
        const two = await trainLm(await config(2));
        expect(planned(two.runDir)).toBe(Math.floor(cores / 2));
        expect(process.env.TROUPE_BLAS_THREADS).toBeUndefined();
      } finally {
        names.forEach((n, i) => {
          if (saved[i] === undefined) delete process.env[n];
          else process.env[n] = saved[i];
        });
      }
    },
    120_000,
  );
});
