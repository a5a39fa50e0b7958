import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  chinchillaObjective,
  fitChinchilla,
  type LossPoint,
} from '../../src/scaling/chinchilla.js';

/** PyTorch's L-BFGS on the same objective and points (scripts/fixtures/chinchilla_fit.py). */
const golden = JSON.parse(
  readFileSync(
    join(import.meta.dirname, '..', 'fixtures', 'scaling', 'chinchilla-torch.json'),
    'utf8',
  ),
) as { delta: number; points: LossPoint[]; objective: number; theta: number[] };

describe('approach 3 against PyTorch', () => {
  it('the objective at PyTorch optimum equals its value there; the fit finds the same optimum', () => {
    const f = chinchillaObjective(golden.points, golden.delta);
    expect(f(Float64Array.from(golden.theta), new Float64Array(5))).toBeCloseTo(
      golden.objective,
      12,
    );
    const fit = fitChinchilla(golden.points, { delta: golden.delta });
    expect(fit.objective).toBeLessThanOrEqual(golden.objective * (1 + 1e-9));
    for (let k = 0; k < 5; k++) expect(fit.theta[k]).toBeCloseTo(golden.theta[k], 4);
  });
});
