import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/kernels/tf.js';
import { GradAccumulator } from '../../../src/policy/optim/index.js';
import {
  BACKEND_CASES,
  expectClose,
  expectNoLeak,
  read,
  useBackend,
} from '../../helpers/backends.js';
import { disposeAll, expectTroupeError, f32, normal } from './helpers.js';

/** A tiny linear model y = x·W + b with x [N, 3], W [3, 2], b [2], targets t [N, 2]. */
const [N, D, K] = [8, 3, 2];
const X = normal(N * D, 0, 'x');
const T = normal(N * K, 0, 't');
const W0 = normal(D * K, 0, 'W');
const B0 = normal(K, 0, 'b');

/** Gradients of mean((x·W + b − t)²) over samples [from, to) with respect to W and b. */
function gradsOver(from: number, to: number): Map<string, tf.Tensor> {
  const [dW, db] = tf.tidy(() => {
    const x = f32(X.subarray(from * D, to * D), [to - from, D]); // (n, D)
    const t = f32(T.subarray(from * K, to * K), [to - from, K]); // (n, K)
    const loss = (w: tf.Tensor, b: tf.Tensor) =>
      tf.mean(tf.square(tf.sub(tf.add(tf.matMul(x, w), b), t)));
    return tf.grads(loss)([f32(W0, [D, K]), f32(B0, [K])]);
  });
  return new Map([
    ['W', dW],
    ['b', db],
  ]);
}

async function readAll(m: Map<string, tf.Tensor>): Promise<Record<string, Float64Array>> {
  const out: Record<string, Float64Array> = {};
  for (const [n, t] of m) out[n] = await read(t);
  disposeAll(m);
  return out;
}

/** Accumulate the micro-batches [from, to) with their sample counts as weights (or 1). */
async function accumulated(bounds: number[], weighted: boolean) {
  const acc = new GradAccumulator();
  for (let i = 0; i + 1 < bounds.length; i++) {
    const g = gradsOver(bounds[i], bounds[i + 1]);
    acc.add(g, weighted ? bounds[i + 1] - bounds[i] : 1);
    disposeAll(g);
  }
  expect(acc.count).toBe(bounds.length - 1);
  const mean = acc.mean();
  expect(acc.count).toBe(0);
  return readAll(mean);
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`GradAccumulator on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it('mean of 4 micro-batches of 2 equals the full batch of 8 gradient', async () => {
      await expectNoLeak(async () => {
        const full = await readAll(gradsOver(0, N));
        const acc = await accumulated([0, 2, 4, 6, 8], false);
        for (const n of ['W', 'b']) expectClose(acc[n], full[n], { atol: 1e-6, rtol: 0, what: n });
      });
    });

    it('micro-batches of 3 and 5 weighted by size equal the full batch; unweighted do not', async () => {
      await expectNoLeak(async () => {
        const full = await readAll(gradsOver(0, N));
        const weighted = await accumulated([0, 3, 8], true);
        for (const n of ['W', 'b'])
          expectClose(weighted[n], full[n], { atol: 1e-6, rtol: 0, what: n });
        const plain = await accumulated([0, 3, 8], false);
        expect(() => expectClose(plain.W, full.W, { atol: 1e-6, rtol: 0 })).toThrow();
      });
    });
  });
}

describe('GradAccumulator errors', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('refuses micro-batches whose names or shapes differ, a bad weight, and an empty mean', async () => {
    await expectNoLeak(() => {
      const acc = new GradAccumulator();
      expectTroupeError(() => acc.mean(), 'BAD_ARGUMENT', 'no micro-batch');
      const first = new Map([
        ['a', tf.zeros([2])],
        ['b', tf.zeros([3])],
      ]);
      acc.add(first);
      const cases = [
        [new Map([['a', tf.zeros([2])]]), 'UNKNOWN_NAME', "no grad for 'b'"],
        [new Map([...first, ['c', tf.zeros([1])]]), 'UNKNOWN_NAME', "grad for 'c'"],
        [new Map([...first, ['b', tf.zeros([4])]]), 'SHAPE_MISMATCH', "'b' has shape [4]"],
      ] as const;
      for (const [grads, code, part] of cases) {
        expectTroupeError(() => acc.add(grads), code, part);
        const own = new Set(first.values());
        tf.dispose([...grads.values()].filter((t) => !own.has(t)));
      }
      expectTroupeError(() => acc.add(first, 0), 'BAD_ARGUMENT', 'weight must be');
      expect(acc.count).toBe(1);
      acc.dispose();
      disposeAll(first);
    });
  });
});
