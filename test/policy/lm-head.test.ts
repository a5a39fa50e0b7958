import { beforeAll, describe, it } from 'vitest';
import { logProbsFromLogits } from '../../src/kernels/numerics/index.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { headLogProbs } from '../../src/policy/lm-head.js';
import { BACKEND_CASES, expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`headLogProbs on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it.each([
      [true, 'chunked'],
      [false, 'chunked'],
      [true, 'kept'],
      [false, 'kept'],
    ] as const)(
      'tied %s, %s: equals the whole-logits path, values and gradients',
      async (tied, how) => {
        const [N, d, V] = [7, 5, 11];
        const r = RandomStream.of({ seed: 1, step: 0, actor: 'head' });
        const h = tf.tensor(r.normal(N * d), [N, d]);
        const w = tf.tensor(r.normal(V * d), tied ? [V, d] : [d, V]);
        const y = tf.tensor1d(
          Array.from({ length: N }, () => r.nextInt(V)),
          'int32',
        );
        const wy = tf.tensor(r.normal(N), [N]);
        await expectNoLeak(async () => {
          const whole = (hh: tf.Tensor, ww: tf.Tensor) => {
            const z = tied ? tf.matMul(hh, ww, false, true) : tf.matMul(hh, ww);
            return tf.reshape(logProbsFromLogits(tf.reshape(z, [1, N, V]), tf.reshape(y, [1, N])), [
              N,
            ]);
          };
          // small chunks and blocks, or the defaults (one block, ∂lp/∂z kept from the forward)
          const chunked = (hh: tf.Tensor, ww: tf.Tensor) =>
            how === 'chunked' ? headLogProbs(hh, ww, y, tied, 3, 4) : headLogProbs(hh, ww, y, tied);
          const [a, b] = tf.tidy(() => [whole(h, w), chunked(h, w)]);
          expectClose(await read(b), await read(a), { atol: 1e-5, rtol: 1e-5, what: 'log-probs' });
          const objective = (fn: typeof whole) => (hh: tf.Tensor, ww: tf.Tensor) =>
            tf.sum(tf.mul(fn(hh, ww), wy));
          const ga = tf.grads(objective(whole))([h, w]);
          const gb = tf.grads(objective(chunked))([h, w]);
          expectClose(await read(gb[0]), await read(ga[0]), { atol: 1e-5, rtol: 1e-4, what: 'dh' });
          expectClose(await read(gb[1]), await read(ga[1]), { atol: 1e-5, rtol: 1e-4, what: 'dW' });
          tf.dispose([a, b, ...ga, ...gb]);
        });
        tf.dispose([h, w, y, wy]);
      },
    );
  });
}
