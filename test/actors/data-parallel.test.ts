import { afterAll, describe, expect, it } from 'vitest';
import { AllReduce, createAllReduce } from '../../src/actors/allreduce.js';
import { Supervisor } from '../../src/actors/supervisor.js';
import { policyReduceLength } from '../../src/algorithms/roles/models.js';
import { POLICY } from '../../src/algorithms/roles/policy.js';
import { rightPad } from '../../src/data/batching/collate.js';
import { llamaConfig } from '../../src/policy/config.js';
import { paramSpecs } from '../../src/policy/params.js';
import { expectClose } from '../helpers/backends.js';

const sup = new Supervisor();
afterAll(async () => {
  await sup.shutdown();
});

describe('data parallelism', () => {
  it('a step on 2 replicas equals a step on one worker with the same global batch (within 1e-6)', async () => {
    // Llama-shaped: no key bias, whose true gradient is exactly zero (softmax ignores a constant
    // shift) so that Adam would turn its rounding noise into ±lr steps in either run.
    const config = llamaConfig({
      vocabSize: 32,
      hidden: 16,
      layers: 2,
      heads: 4,
      kvHeads: 2,
      intermediate: 24,
    });
    const n = paramSpecs(config).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
    const shared = createAllReduce(2, policyReduceLength(n));
    const runtime = { backend: 'cpu' as const };
    const model = { config, seed: 7 };
    const optimizer = { lr: 1e-2, weightDecay: 0.1 };
    const [r0, r1, single] = await Promise.all([
      sup.spawn(
        {
          name: 'policy/0',
          role: POLICY,
          args: { model, optimizer, dataParallel: { shared, rank: 0 } },
        },
        { runtime },
      ),
      sup.spawn(
        {
          name: 'policy/1',
          role: POLICY,
          args: { model, optimizer, dataParallel: { shared, rank: 1 } },
        },
        { runtime },
      ),
      sup.spawn({ name: 'single', role: POLICY, args: { model, optimizer } }, { runtime }),
    ]);
    // Rows of different lengths: the replicas see different token counts.
    const rows = [
      [1, 2, 3, 4, 5, 6, 7],
      [8, 9, 10],
      [11, 12, 13, 14, 15],
      [16, 17, 18, 19, 20, 21, 22, 23, 24],
    ];
    for (let step = 0; step < 3; step++) {
      const lr = 1e-2 * (step + 1);
      const [a, b] = await Promise.all([
        r0.call.trainStep([rightPad(rows.slice(0, 2), 0)], lr, step),
        r1.call.trainStep([rightPad(rows.slice(2), 0)], lr, step),
      ]);
      const s = await single.call.trainStep([rightPad(rows, 0)], lr, step);
      expect(a.tokens).toBe(s.tokens);
      expect(b.loss).toBe(a.loss);
      expect(Math.abs(a.loss - s.loss)).toBeLessThan(1e-6);
      expect(Math.abs(a.gradNorm - s.gradNorm) / s.gradNorm).toBeLessThan(1e-5);
    }
    const [p0, p1, ps] = await Promise.all([
      r0.call.flatParams(),
      r1.call.flatParams(),
      single.call.flatParams(),
    ]);
    expect(p1).toEqual(p0);
    // Not bit-equal: a BLAS sums in an order that depends on the matrix shape (2 rows vs 4), and
    // Adam turns the tiny gradient differences of near-zero gradients into lr-sized ones. A wrong
    // weighting of the replicas would be off by ~1e-3.
    expectClose(p0, ps, { atol: 1e-5, rtol: 0, what: 'parameters after 3 steps' });
  });

  it('refuses a vector of the wrong length and a rank outside the group', () => {
    const shared = createAllReduce(2, 4);
    expect(() => new AllReduce(shared, 2)).toThrow(/rank 2 is outside \[0, 2\)/);
    expect(() => new AllReduce(shared, 0).sum(new Float32Array(5))).toThrow(
      /sent 5 values, the group reduces at most 4/,
    );
  });
});
