import { describe, expect, it } from 'vitest';
import { planBlasThreads } from '../../src/kernels/native.js';

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
