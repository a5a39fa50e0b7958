import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { Supervisor } from '../../src/actors/supervisor.js';
import { planBlasThreads, RUN_BLAS_THREADS_ENV, useBlasThreads } from '../../src/kernels/native.js';
import { nativeSkip } from '../helpers/native.js';
import { BLAS } from './fixtures/blas-role.js';

describe('planBlasThreads', () => {
  it('shares the cores out among the computing actors, at least one each', () => {
    expect(planBlasThreads(1, undefined, {}, 2)).toBe(2);
    expect(planBlasThreads(2, undefined, {}, 2)).toBe(1);
    expect(planBlasThreads(5, undefined, {}, 2)).toBe(1);
    expect(planBlasThreads(3, undefined, {}, 16)).toBe(5);
  });

  it('takes the configured count first, then the environment', () => {
    expect(planBlasThreads(1, 3, { TROUPE_BLAS_THREADS: '1' }, 2)).toBe(3);
    expect(planBlasThreads(1, undefined, { TROUPE_BLAS_THREADS: '1' }, 2)).toBe(1);
    expect(planBlasThreads(4, undefined, { OPENBLAS_NUM_THREADS: '2' }, 2)).toBe(2);
    expect(planBlasThreads(1, undefined, { TROUPE_BLAS_THREADS: 'many' }, 2)).toBe(2); // ignored
  });
});

describe('useBlasThreads', () => {
  const names = ['TROUPE_BLAS_THREADS', 'OPENBLAS_NUM_THREADS', RUN_BLAS_THREADS_ENV];
  it.skipIf(availableParallelism() < 2)(
    "keeps a run's choice apart from the user's setting: each run in one process plans afresh",
    () => {
      const saved = names.map((n) => process.env[n]);
      try {
        for (const n of names) delete process.env[n];
        const cores = availableParallelism();
        expect(useBlasThreads(1)).toBe(cores); // one computing actor: every core
        expect(process.env[RUN_BLAS_THREADS_ENV]).toBe(String(cores));
        expect(process.env.TROUPE_BLAS_THREADS).toBeUndefined();
        // A second run with as many actors as cores: one each, not the first run's count.
        expect(useBlasThreads(cores)).toBe(1);
        expect(process.env[RUN_BLAS_THREADS_ENV]).toBe('1');
        // The user's own setting still wins, and is left as the user wrote it.
        process.env.TROUPE_BLAS_THREADS = '3';
        expect(useBlasThreads(cores)).toBe(3);
        expect(useBlasThreads(1, 2)).toBe(2); // runtime.blasThreads above both
        expect(process.env.TROUPE_BLAS_THREADS).toBe('3');
      } finally {
        names.forEach((n, i) => {
          if (saved[i] === undefined) delete process.env[n];
          else process.env[n] = saved[i];
        });
      }
    },
  );
});

describe.skipIf(nativeSkip !== null)("an actor's blasThreads", () => {
  it('reach its thread: each native call runs with its own count, though OpenBLAS keeps one per process', async () => {
    const sup = new Supervisor();
    try {
      const one = await sup.spawn(
        { name: 'one', role: BLAS, args: {} },
        { runtime: { backend: 'cpu', blasThreads: 1 } },
      );
      // Started second, it set the process's count to 2 as it loaded the addon.
      const two = await sup.spawn(
        { name: 'two', role: BLAS, args: {} },
        { runtime: { backend: 'cpu', blasThreads: 2 } },
      );
      expect([one.runtime?.blasThreads, two.runtime?.blasThreads]).toEqual([1, 2]);
      expect(await one.call.afterMatmul()).toEqual({ runtime: 1, openblas: 1 });
      expect(await two.call.afterMatmul()).toEqual({ runtime: 2, openblas: 2 });
      expect(await one.call.afterMatmul()).toEqual({ runtime: 1, openblas: 1 });
    } finally {
      await sup.shutdown();
    }
  });
});
