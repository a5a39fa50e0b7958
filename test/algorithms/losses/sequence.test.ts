import { beforeAll, describe, expect, it } from 'vitest';
import {
  dpoSigmoidLoss,
  sequenceLogps,
  splitChosenRejected,
} from '../../../src/algorithms/losses/index.js';
import * as tf from '../../../src/kernels/tf.js';
import {
  BACKEND_CASES,
  expectClose,
  expectNoLeak,
  read,
  useBackend,
} from '../../helpers/backends.js';
import { fdGradient } from '../../helpers/reference.js';
import { expectTroupeError, f32, ints, normal } from './fixtures.js';
import { refDpo, refSequenceLogps } from './reference.js';

/** Run sequenceLogps on fresh tensors and read sum, mean, count (no leaks). */
function run(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  mask: ArrayLike<number>,
  [B, T, V]: [number, number, number],
  maskDtype: 'float32' | 'int32' | 'bool' = 'float32',
) {
  return expectNoLeak(async () => {
    const x = f32(logits, [B, T, V]);
    const y = tf.tensor2d(Int32Array.from(labels), [B, T], 'int32');
    const m =
      maskDtype === 'bool'
        ? tf.tensor2d(
            Array.from(mask, (v) => v !== 0),
            [B, T],
            'bool',
          )
        : tf.tensor2d(Array.from(mask), [B, T], maskDtype);
    const out = sequenceLogps(x, y, m);
    const got = {
      sum: await read(out.sum),
      mean: await read(out.mean),
      count: await read(out.count),
    };
    expect([out.sum.shape, out.mean.shape, out.count.shape]).toEqual([[B], [B], [B]]);
    tf.dispose([x, y, m, out.sum, out.mean, out.count]);
    return got;
  });
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(
    `sequence log-probs on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it('hand-computed: sums, means and counts over the masked tokens', async () => {
        // V = 2, logits (0, 0) → log ½ for either label; logits (0, ln 3) → label 1: log ¾,
        // label 0: log ¼.
        // row 0: labels (1, 0, 1), mask (1, 1, 0): (0, ln 3)→1: log ¾, (0, 0)→0: log ½ (3rd masked)
        // row 1: mask all 0 → sum 0, count 0, mean 0
        const l3 = Math.log(3);
        const logits = [0, l3, 0, 0, 7, -7, 0, 0, 0, 0, 0, 0];
        const got = await run(logits, [1, 0, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0], [2, 3, 2]);
        const sum0 = Math.log(0.75) + Math.log(0.5);
        expectClose(got.sum, [sum0, 0], { what: 'sum' });
        expectClose(got.count, [2, 0], { what: 'count' });
        expectClose(got.mean, [sum0 / 2, 0], { what: 'mean' });
      });

      it.each(['float32', 'int32', 'bool'] as const)(
        'matches the float64 reference (%s mask)',
        async (maskDtype) => {
          const [B, T, V] = [3, 7, 11];
          const logits = normal('seq logits', B * T * V, 0, 2);
          const labels = ints('seq labels', B * T, 0, V - 1);
          // Prompt tokens masked out in front, padding at the back.
          const mask = Array.from({ length: B * T }, (_, i) => {
            const t = i % T;
            const b = Math.floor(i / T);
            return t >= b + 1 && t < T - b ? 1 : 0;
          });
          const got = await run(logits, labels, mask, [B, T, V], maskDtype);
          const want = refSequenceLogps(logits, labels, mask, [B, T, V]);
          expectClose(got.sum, want.sum, { what: 'sum' });
          expectClose(got.mean, want.mean, { what: 'mean' });
          expectClose(got.count, want.count, { what: 'count' });
        },
      );

      it('the gradient of the sums w.r.t. the logits matches finite differences', async () => {
        const [B, T, V] = [2, 3, 5];
        const logits = normal('seq grad logits', B * T * V, 0, 1.5);
        const labels = ints('seq grad labels', B * T, 0, V - 1);
        const mask = [0, 1, 1, 1, 1, 0];
        const w = normal('seq grad w', B);
        const got = await expectNoLeak(async () => {
          const x = f32(logits, [B, T, V]);
          const y = tf.tensor2d(Int32Array.from(labels), [B, T], 'int32');
          const m = f32(mask, [B, T]);
          const wt = f32(w);
          const [g] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(sequenceLogps(a, y, m).sum, wt)))([
            x,
          ]);
          const out = await read(g);
          tf.dispose([g, x, y, m, wt]);
          return out;
        });
        const want = fdGradient(
          (l) => refSequenceLogps(l, labels, mask, [B, T, V]).sum,
          [logits.slice()],
          w,
          0,
          1e-4,
        );
        expectClose(got, want, { atol: 1e-5, rtol: 1e-3, what: 'd sum / d logits' });
      });

      it('end to end under tf.variableGrads: logits → sequenceLogps → split → DPO', async () => {
        // Rows 0..1 chosen, 2..3 rejected; the reference log-probs are fixed numbers.
        const [B2, T, V] = [4, 3, 5];
        const logits = normal('e2e logits', B2 * T * V, 0, 1.5);
        const labels = ints('e2e labels', B2 * T, 0, V - 1);
        const mask = [0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0];
        const refC = [-4.5, -6];
        const refR = [-5, -3.25];
        const beta = 0.5;
        const { got, accuracy } = await expectNoLeak(async () => {
          const init = f32(logits, [B2, T, V]);
          const w = tf.variable(init); // a copy
          init.dispose();
          const y = tf.tensor2d(Int32Array.from(labels), [B2, T], 'int32');
          const m = f32(mask, [B2, T]);
          const rc = f32(refC);
          const rr = f32(refR);
          let kept: tf.Scalar[] = [];
          const { value, grads } = tf.variableGrads(() => {
            const seq = sequenceLogps(w, y, m);
            const [pc, pr] = splitChosenRejected(seq.sum);
            const out = dpoSigmoidLoss(
              {
                policyChosenLogps: pc,
                policyRejectedLogps: pr,
                refChosenLogps: rc,
                refRejectedLogps: rr,
              },
              { beta },
            );
            kept = Object.values(out.metrics).map((t) => tf.keep(t));
            return out.loss;
          });
          const g = await read(grads[w.name]);
          const acc = (await read(kept[2]))[0];
          tf.dispose([value, ...Object.values(grads), ...kept, w, y, m, rc, rr]);
          return { got: g, accuracy: acc };
        });
        const loss = (l: Float64Array) => {
          const { sum } = refSequenceLogps(l, labels, mask, [B2, T, V]);
          const x = { pc: sum.slice(0, 2), pr: sum.slice(2), rc: refC, rr: refR };
          return Float64Array.of(refDpo(x, beta).loss);
        };
        const want = fdGradient(loss, [logits.slice()], Float64Array.of(1), 0, 1e-4);
        expectClose(got, want, { atol: 1e-6, rtol: 1e-3, what: 'd loss / d logits' });
        expect([0, 0.5, 1]).toContain(accuracy); // rewards/accuracies survived via tf.keep
      });

      it('splitChosenRejected returns rows 0..B−1 and B..2B−1', async () => {
        await expectNoLeak(async () => {
          const x = f32([1, 2, 3, 4, 5, 6, 7, 8], [4, 2]);
          const [chosen, rejected] = splitChosenRejected(x);
          expect(chosen.shape).toEqual([2, 2]);
          expect(Array.from(await chosen.data())).toEqual([1, 2, 3, 4]);
          expect(Array.from(await rejected.data())).toEqual([5, 6, 7, 8]);
          tf.dispose([x, chosen, rejected]);
        });
      });
    },
  );
}

describe('sequence helpers argument errors', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('refuses mismatched shapes and an odd batch', async () => {
    await expectNoLeak(() => {
      const logits = tf.zeros([2, 3, 4]);
      const labels = tf.zeros([2, 3], 'int32');
      const mask = tf.ones([2, 4]);
      expectTroupeError(
        () => sequenceLogps(logits, labels, mask),
        'SHAPE_MISMATCH',
        'got logits [2,3,4], labels [2,3], lossMask [2,4]',
      );
      const odd = tf.zeros([3, 2]);
      expectTroupeError(
        () => splitChosenRejected(odd),
        'SHAPE_MISMATCH',
        "'x' passed to 'splitChosenRejected' must have an even, non-zero first dimension",
      );
      tf.dispose([logits, labels, mask, odd]);
    });
  });
});
