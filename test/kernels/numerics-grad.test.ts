import { beforeAll, describe, expect, it } from 'vitest';
import {
  entropyFromLogits,
  klEstimate,
  logProbsFromLogits,
  logSoftmax,
  maskedMean,
  maskedWhiten,
  reference as ref,
} from '../../src/kernels/numerics/index.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { BACKEND_CASES, expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { fdGradient } from '../helpers/reference.js';

/*
 * tfjs gradients of Σ w ⊙ f(x), for a random weight w, against central finite differences of the
 * float64 plain-loop reference f (eps 1e-4: FD error ~1e-8, far below float32 noise).
 */

const [B, T, V] = [2, 5, 37];
const EPS = 1e-4;
const TOL = { atol: 1e-4, rtol: 1e-3 };
const MASK = [1, 1, 0, 1, 1, 0, 0, 0, 0, 0]; // [B, T]: holes in row 0, row 1 all masked out

/** Seeded float64 draws (exactly representable in float32, so both sides see the same x). */
function normal(purpose: string, n: number, mean = 0, std = 1): Float64Array {
  const s = RandomStream.of({ seed: 11, step: 0, actor: 'numerics-grad', purpose });
  return Float64Array.from(s.normal(n, mean, std));
}

const f32 = (data: ArrayLike<number>, shape: number[]) =>
  tf.tensor(Float32Array.from(data), shape, 'float32');

/**
 * Check d/dx_i Σ w ⊙ f(x_0, x_1, ...) for every input i: `f` on tensors against `reference` on
 * float64 arrays. Asserts no tensor outlives the gradient call.
 */
async function checkGrads(
  what: string,
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  reference: (...xs: Float64Array[]) => Float64Array,
  inputs: Array<[Float64Array, number[]]>,
  outSize: number,
) {
  const w = normal(`${what} w`, outSize);
  const xs = inputs.map(([d, s]) => f32(d, s));
  const wt = f32(w, [outSize]);
  const got = await expectNoLeak(async () => {
    const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(tf.reshape(f(...a), [-1]), wt)))(
      xs,
    );
    expect(grads.map((g) => g.shape)).toEqual(inputs.map(([, s]) => s));
    const out = await Promise.all(grads.map(read));
    tf.dispose(grads);
    return out;
  });
  const data = inputs.map(([d]) => Float64Array.from(d));
  got.forEach((g, i) => {
    const want = fdGradient(reference, data, w, i, EPS);
    expectClose(g, want, { ...TOL, what: `${what}: d/dx${i}` });
  });
  tf.dispose([...xs, wt]);
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(
    `numerics gradients on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      const logits = normal('logits', B * T * V, 0, 3);
      const shape = [B, T, V];

      it.each([-1, 2, 1, 0])('logSoftmax along axis %i', async (axis) => {
        await checkGrads(
          `logSoftmax(axis=${axis})`,
          (x) => logSoftmax(x, axis),
          (x) => ref.logSoftmax(x, shape, axis),
          [[logits, shape]],
          B * T * V,
        );
      });

      it('logProbsFromLogits', async () => {
        const s = RandomStream.of({ seed: 11, step: 0, actor: 'numerics-grad', purpose: 'labels' });
        const labels = Int32Array.from({ length: B * T }, () => s.nextInt(V));
        const yt = tf.tensor(labels, [B, T], 'int32');
        await checkGrads(
          'logProbsFromLogits',
          (x) => logProbsFromLogits(x, yt),
          (x) => ref.logProbsFromLogits(x, labels, V),
          [[logits, shape]],
          B * T,
        );
        yt.dispose();
      });

      it('entropyFromLogits', async () => {
        await checkGrads(
          'entropyFromLogits',
          (x) => entropyFromLogits(x),
          (x) => ref.entropyFromLogits(x, V),
          [[logits, shape]],
          B * T,
        );
      });

      it('maskedMean, over everything and per row (an all-masked row has gradient 0)', async () => {
        const x = normal('masked mean', B * T, 1, 2);
        const mt = f32(MASK, [B, T]);
        await checkGrads(
          'maskedMean',
          (a) => maskedMean(a, mt),
          (a) => ref.maskedMean(a, MASK, [B, T]),
          [[x, [B, T]]],
          1,
        );
        await checkGrads(
          'maskedMean(axis=1)',
          (a) => maskedMean(a, mt, 1),
          (a) => ref.maskedMean(a, MASK, [B, T], 1),
          [[x, [B, T]]],
          B,
        );
        mt.dispose();
      });

      it.each([true, false])('maskedWhiten (shiftMean=%s)', async (shift) => {
        const x = normal('whiten', B * T, -1, 2);
        const mt = f32(MASK, [B, T]);
        await checkGrads(
          `maskedWhiten(shiftMean=${shift})`,
          (a) => maskedWhiten(a, mt, shift),
          (a) => ref.maskedWhiten(a, MASK, shift),
          [[x, [B, T]]],
          B * T,
        );
        mt.dispose();
      });

      it.each([
        ['k1', undefined],
        ['k2', undefined],
        ['k3', undefined],
        ['k3', 1],
      ] as const)(
        'KL estimator %s (clamp %s) with respect to logp and logq',
        async (name, clamp) => {
          const logp = normal('kl p', B * T, -2, 1);
          const logq = normal('kl q', B * T, -2, 1);
          await checkGrads(
            `${name} clamp=${clamp}`,
            (p, q) => klEstimate(name, p, q, { clamp }),
            (p, q) => ref.klEstimate(name, p, q, clamp),
            [
              [logp, [B, T]],
              [logq, [B, T]],
            ],
            B * T,
          );
        },
      );
    },
  );
}
