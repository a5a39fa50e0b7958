import { beforeAll, describe, expect, it } from 'vitest';
import { logProbsFromLogits } from '../../src/kernels/numerics/index.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { headLogProbs } from '../../src/policy/lm-head.js';
import { expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';

/**
 * A frozen LM-head weight (a variable with trainable false, as Trainable marks LoRA's and
 * QLoRA's base) is no input of the head's custom gradient: dh is the same, and no [V, d]
 * gradient is made (the profile's peak stays below one).
 */
describe('headLogProbs with a frozen weight', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it.each([
    [true, 'chunked'],
    [false, 'chunked'],
    [true, 'kept'],
    [false, 'kept'],
  ] as const)(
    'tied %s, %s: the same dh as the whole logits, no weight gradient',
    async (tied, how) => {
      const [N, d, V] = [6, 64, 4096]; // dW [V, d] is 10× the logits [N, V]
      const r = RandomStream.of({ seed: 2, step: 0, actor: 'frozen-head' });
      const h = tf.tensor(r.normal(N * d), [N, d]);
      const w = tf.variable(tf.tensor(r.normal(V * d, 0, 0.1), tied ? [V, d] : [d, V]), false);
      const y = tf.tensor1d(
        Array.from({ length: N }, () => r.nextInt(V)),
        'int32',
      );
      const dyw = tf.tensor(r.normal(N), [N]);
      await expectNoLeak(async () => {
        const head = (hh: tf.Tensor) =>
          how === 'chunked' ? headLogProbs(hh, w, y, tied, 2, 1024) : headLogProbs(hh, w, y, tied);
        const whole = (hh: tf.Tensor) => {
          const z = tied ? tf.matMul(hh, w, false, true) : tf.matMul(hh, w);
          return tf.reshape(logProbsFromLogits(tf.reshape(z, [1, N, V]), tf.reshape(y, [1, N])), [
            N,
          ]);
        };
        const loss = (f: (x: tf.Tensor) => tf.Tensor) => (x: tf.Tensor) =>
          tf.sum(tf.mul(f(x), dyw));
        let got: tf.Tensor | undefined;
        const live = tf.memory().numBytes;
        const prof = await tf.profile(() => {
          got = tf.grad(loss(head))(h);
        });
        const want = tf.grad(loss(whole))(h);
        expectClose(await read(got!), await read(want), { atol: 1e-5, rtol: 1e-4, what: 'dh' });
        // the kept ∂lp/∂z [N, V] and the logits are there; a [V, d] gradient (4× as big) is not
        expect(prof.peakBytes - live).toBeLessThan(V * d * 4);
        tf.dispose([got!, want]);
      });
      // a trainable weight still gets its gradient (and the peak shows it)
      w.trainable = true;
      const live = tf.memory().numBytes;
      let grads: tf.NamedTensorMap = {};
      const prof = await tf.profile(() => {
        grads = tf.variableGrads(() => tf.sum(headLogProbs(h, w, y, tied)) as tf.Scalar, [w]).grads;
      });
      expect(grads[w.name].shape).toEqual(w.shape);
      expect(prof.peakBytes - live).toBeGreaterThanOrEqual(V * d * 4);
      tf.dispose([h, w, y, dyw, grads[w.name]]);
    },
  );
});
