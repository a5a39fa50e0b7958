import { beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../src/errors.js';
import {
  entropyFromLogits,
  type KlEstimatorName,
  klEstimate,
  logProbsFromLogits,
  logSoftmax,
  maskedMean,
  maskedSum,
  maskedVar,
  maskedWhiten,
  reference as ref,
} from '../../src/kernels/numerics/index.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { BACKEND_CASES, expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';

const [B, T, V] = [2, 5, 37];
const stream = (purpose: string) =>
  RandomStream.of({ seed: 7, step: 0, actor: 'numerics', purpose });
const f32 = (data: ArrayLike<number>, shape: number[]) =>
  tf.tensor(Float32Array.from(data), shape, 'float32');
const labelsFor = (purpose: string, n: number, v: number) => {
  const s = stream(purpose);
  return Int32Array.from({ length: n }, () => s.nextInt(v));
};
/** Row 0 has holes, row 1 is all masked out: [B, T]. */
const MASK = [1, 1, 0, 1, 1, 0, 0, 0, 0, 0];

/** Run `fn`, read its output, dispose it, and check that no tensor was left behind. */
function evaluate(fn: () => tf.Tensor): Promise<Float64Array> {
  return expectNoLeak(async () => {
    const t = fn();
    try {
      return await read(t);
    } finally {
      t.dispose();
    }
  });
}

/** Assert `fn` throws a TroupeError with `code` whose message contains each of `parts`. */
function expectTroupeError(fn: () => unknown, code: string, ...parts: string[]) {
  try {
    fn();
  } catch (e) {
    expect(hasCode(e, code as never), String(e)).toBe(true);
    for (const p of parts) expect((e as Error).message).toContain(p);
    return;
  }
  throw new Error(`expected a TroupeError ${code}`);
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`numerics on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    describe.each([
      ['unit-scale', 3, { atol: 1e-4, rtol: 1e-4 }],
      ['×1e3-scale', 1e3, { atol: 2e-3, rtol: 1e-5 }],
    ] as const)('%s logits', (_, scale, tol) => {
      const x = stream(`logits ${scale}`).normal(B * T * V, 0, scale);
      const labels = labelsFor(`labels ${scale}`, B * T, V);

      it('logSoftmax matches the reference along the last and a middle axis', async () => {
        const lt = f32(x, [B, T, V]);
        expectClose(await evaluate(() => logSoftmax(lt)), ref.logSoftmax(x, [B, T, V]), {
          ...tol,
          what: 'logSoftmax(axis=-1)',
        });
        expectClose(await evaluate(() => logSoftmax(lt, 1)), ref.logSoftmax(x, [B, T, V], 1), {
          ...tol,
          what: 'logSoftmax(axis=1)',
        });
        lt.dispose();
      });

      it('logProbsFromLogits matches the reference', async () => {
        const lt = f32(x, [B, T, V]);
        const yt = tf.tensor(labels, [B, T], 'int32');
        const got = await evaluate(() => logProbsFromLogits(lt, yt));
        expectClose(got, ref.logProbsFromLogits(x, labels, V), { ...tol, what: 'logProbs' });
        tf.dispose([lt, yt]);
      });

      it('entropyFromLogits matches the reference', async () => {
        const lt = f32(x, [B, T, V]);
        const got = await evaluate(() => entropyFromLogits(lt));
        expectClose(got, ref.entropyFromLogits(x, V), { ...tol, what: 'entropy' });
        lt.dispose();
      });
    });

    it('known answers: softmax [1,2,3]/6, uniform logits, one-hot logits', async () => {
      // logits (0, ln 2, ln 3) → softmax (1/6, 2/6, 3/6) → log-softmax (−ln 6, −ln 3, −ln 2).
      const three = f32([0, Math.LN2, Math.log(3)], [1, 1, 3]);
      const want = [-Math.log(6), -Math.log(3), -Math.LN2];
      expectClose(await evaluate(() => logSoftmax(three)), want, { what: 'logSoftmax' });
      // Uniform logits: every label has log-prob −ln V and the entropy is ln V.
      const uniform = tf.fill([B, T, V], 7.5);
      const yt = tf.tensor(labelsFor('uniform', B * T, V), [B, T], 'int32');
      const lnV = new Float64Array(B * T).fill(Math.log(V));
      expectClose(
        await evaluate(() => logProbsFromLogits(uniform, yt)),
        lnV.map((v) => -v),
        { what: 'logProbs(uniform)' },
      );
      expectClose(await evaluate(() => entropyFromLogits(uniform)), lnV, { what: 'H(uniform)' });
      // A logit 1e4 above the others: log-prob 0 for it, entropy 0.
      const peaked = f32([0, -1e4, -1e4], [1, 1, 3]);
      const zero = tf.tensor([[0]], [1, 1], 'int32');
      expectClose(await evaluate(() => logProbsFromLogits(peaked, zero)), [0], { what: 'lp' });
      expectClose(await evaluate(() => entropyFromLogits(peaked)), [0], { what: 'H(peaked)' });
      tf.dispose([three, uniform, yt, peaked, zero]);
    });

    it('V = 50257 with logits of scale 1e4 stays finite and matches the reference', async () => {
      const [b, t, v] = [1, 3, 50257];
      const x = stream('big').normal(b * t * v, 0, 1e4);
      // Label of row 0 is its argmax (log-prob ≈ 0); the others are random (≈ −4e4).
      const labels = labelsFor('big labels', b * t, v);
      labels[0] = x.subarray(0, v).reduce((best, z, i, row) => (z > row[best] ? i : best), 0);
      const lt = f32(x, [b, t, v]);
      const yt = tf.tensor(labels, [b, t], 'int32');
      const tol = { atol: 0.05, rtol: 1e-6 }; // ulp(8e4) in float32 is 0.008
      const lsm = await evaluate(() => logSoftmax(lt));
      const lp = await evaluate(() => logProbsFromLogits(lt, yt));
      const h = await evaluate(() => entropyFromLogits(lt));
      for (const [name, vals] of [
        ['logSoftmax', lsm],
        ['logProbs', lp],
        ['entropy', h],
      ] as const) {
        expect(vals.every(Number.isFinite), `${name} is finite`).toBe(true);
      }
      expectClose(lsm, ref.logSoftmax(x, [b, t, v]), { ...tol, what: 'logSoftmax' });
      expectClose(lp, ref.logProbsFromLogits(x, labels, v), { ...tol, what: 'logProbs' });
      expectClose(h, ref.entropyFromLogits(x, v), { atol: 1e-3, rtol: 1e-4, what: 'entropy' });
      expect(Math.abs(lp[0])).toBeLessThan(1e-3);
      // The gradient is finite and each row sums to 0 (Σ_v onehot − softmax = 0).
      const g = await evaluate(() =>
        tf.grad((z: tf.Tensor) => tf.sum(logProbsFromLogits(z, yt)))(lt),
      );
      expect(g.every(Number.isFinite)).toBe(true);
      for (let r = 0; r < b * t; r++) {
        expect(Math.abs(g.subarray(r * v, (r + 1) * v).reduce((a, c) => a + c, 0))).toBeLessThan(
          1e-5,
        );
      }
      tf.dispose([lt, yt]);
    });

    it('masked sum and mean match the reference; an all-masked row gives 0', async () => {
      const x = stream('masked').normal(B * T, 1, 2);
      const xt = f32(x, [B, T]);
      const mt = f32(MASK, [B, T]);
      const shape = [B, T];
      expectClose(await evaluate(() => maskedSum(xt, mt)), ref.maskedSum(x, MASK, shape));
      expectClose(await evaluate(() => maskedSum(xt, mt, 1)), ref.maskedSum(x, MASK, shape, 1));
      expectClose(await evaluate(() => maskedMean(xt, mt)), ref.maskedMean(x, MASK, shape));
      const rowMeans = await evaluate(() => maskedMean(xt, mt, 1));
      expectClose(rowMeans, ref.maskedMean(x, MASK, shape, 1), { what: 'row means' });
      expect(rowMeans[1]).toBe(0);
      expectClose(await evaluate(() => maskedMean(xt, mt, 0)), ref.maskedMean(x, MASK, shape, 0));
      tf.dispose([xt, mt]);
    });

    it('masked var and whiten match the reference, with a [T] mask broadcast over B', async () => {
      const x = stream('whiten').normal(B * T, -2, 3);
      const xt = f32(x, [B, T]);
      const rowMask = [1, 0, 1, 1, 0];
      const full = [...rowMask, ...rowMask];
      for (const [what, mt, m] of [
        ['[B,T] mask', f32(MASK, [B, T]), MASK],
        ['[T] mask', f32(rowMask, [T]), full],
      ] as const) {
        for (const unbiased of [true, false]) {
          expectClose(
            await evaluate(() => maskedVar(xt, mt, unbiased)),
            [ref.maskedVar(x, m, unbiased)],
            {
              what: `var ${what} unbiased=${unbiased}`,
            },
          );
        }
        for (const shift of [true, false]) {
          expectClose(
            await evaluate(() => maskedWhiten(xt, mt, shift)),
            ref.maskedWhiten(x, m, shift),
            {
              what: `whiten ${what} shiftMean=${shift}`,
            },
          );
        }
        mt.dispose();
      }
      xt.dispose();
    });

    it('masked known answers: x = [1,2,3,4], mask = [1,1,0,0]', async () => {
      const xt = f32([1, 2, 3, 4], [4]);
      const mt = f32([1, 1, 0, 0], [4]);
      const none = f32([0, 0, 0, 0], [4]);
      const one = f32([0, 1, 0, 0], [4]);
      expectClose(await evaluate(() => maskedSum(xt, mt)), [3]);
      expectClose(await evaluate(() => maskedMean(xt, mt)), [1.5]);
      // Deviations ±0.5: biased var 0.25, Bessel ×2/1 → 0.5.
      expectClose(await evaluate(() => maskedVar(xt, mt, false)), [0.25]);
      expectClose(await evaluate(() => maskedVar(xt, mt)), [0.5]);
      // (x − 1.5)·rsqrt(0.5 + 1e-8) ≈ (x − 1.5)·√2 = (−0.7071, 0.7071, 2.1213, 3.5355).
      const whitened = [-0.5, 0.5, 1.5, 2.5].map((d) => d * Math.SQRT2);
      expectClose(await evaluate(() => maskedWhiten(xt, mt)), whitened);
      const shifted = whitened.map((w) => w + 1.5);
      expectClose(await evaluate(() => maskedWhiten(xt, mt, false)), shifted);
      // Empty mask: mean 0 and var 0, not NaN. One element: the biased variance, 0.
      expectClose(await evaluate(() => maskedMean(xt, none)), [0]);
      expectClose(await evaluate(() => maskedVar(xt, none)), [0]);
      expectClose(await evaluate(() => maskedVar(xt, one)), [0]);
      tf.dispose([xt, mt, none, one]);
    });

    it('KL estimators match the reference, with and without a clamp', async () => {
      const s = stream('kl');
      const logp = s.normal(B * T, -2, 1);
      const logq = s.normal(B * T, -2, 1.5);
      logq[0] = logp[0] + 6; // k3 = e^6 − 7 ≈ 396: clamped to 10
      const pt = f32(logp, [B, T]);
      const qt = f32(logq, [B, T]);
      for (const name of ['k1', 'k2', 'k3'] as const) {
        for (const clamp of [undefined, 10, 0.5]) {
          expectClose(
            await evaluate(() => klEstimate(name, pt, qt, { clamp })),
            ref.klEstimate(name, logp, logq, clamp),
            { atol: 1e-5, rtol: 1e-4, what: `${name} clamp=${clamp}` },
          );
        }
      }
      tf.dispose([pt, qt]);
    });

    it('k3 near log r = 0 matches float64, computed in shaders too (2,048 copies)', async () => {
      // Small uploaded tensors run on the CPU under WebGPU; tiled, they run in its shaders, whose
      // expm1 is exp(x) − 1 (k3 at log r = −1e-4 came out −6e-8, not 5e-9).
      const d = [
        -0.2, -0.1001, -0.0999, -1e-2, -1e-3, -1e-4, -1e-6, 0, 1e-6, 1e-4, 1e-3, 0.0999, 0.1001,
        0.2,
      ];
      const logp = d.map(() => -2);
      const logq = d.map((x) => Math.fround(-2 + x));
      const pt = tf.tile(f32(logp, [d.length]), [2048]);
      const qt = tf.tile(f32(logq, [d.length]), [2048]);
      const got = (await evaluate(() => klEstimate('k3', pt, qt))).subarray(0, d.length);
      const want = ref.klEstimate('k3', logp.map(Math.fround), logq, undefined);
      expectClose(got, want, { atol: 1e-10, rtol: 1e-3, what: 'k3' });
      expect(got.every((v) => v >= 0)).toBe(true);
      tf.dispose([pt, qt]);
    });

    it('KL known answers: logp = ln 0.5, logq = ln 0.25', async () => {
      // log r = logq − logp = −ln 2.
      // k1 = ln 2 ≈ 0.693147; k2 = ½ (ln 2)² ≈ 0.240227; k3 = e^(−ln 2) + ln 2 − 1 = ln 2 − ½ ≈ 0.193147.
      const want: Record<KlEstimatorName, number> = {
        k1: Math.LN2,
        k2: 0.5 * Math.LN2 ** 2,
        k3: Math.LN2 - 0.5,
      };
      const pt = f32([Math.log(0.5), -1.25], [2]);
      const qt = f32([Math.log(0.25), -1.25], [2]);
      for (const [name, k] of Object.entries(want) as [KlEstimatorName, number][]) {
        // Identical log-probs give exactly 0 for every estimator.
        expectClose(await evaluate(() => klEstimate(name, pt, qt)), [k, 0], { what: name });
      }
      tf.dispose([pt, qt]);
    });
  });
}

describe('numerics argument errors', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('logProbsFromLogits names the argument, the function and what it got', async () => {
    const logits = tf.zeros([2, 5, 7]);
    const floatLabels = tf.zeros([2, 5]);
    const shortLabels = tf.zeros([2, 4], 'int32');
    await expectNoLeak(() => {
      expectTroupeError(
        () => logProbsFromLogits(logits, floatLabels),
        'BAD_ARGUMENT',
        "Argument 'labels' passed to 'logProbsFromLogits' must be int32 of shape [B,T]",
        'got float32 [2,5]',
      );
      expectTroupeError(
        () => logProbsFromLogits(logits, shortLabels),
        'SHAPE_MISMATCH',
        'matching logits [B,T,V]=[2,5,7], i.e. [2,5]; got int32 [2,4]',
      );
      expectTroupeError(
        () => logProbsFromLogits(shortLabels, shortLabels),
        'BAD_ARGUMENT',
        "Argument 'logits' passed to 'logProbsFromLogits' must be float32",
      );
    });
    tf.dispose([logits, floatLabels, shortLabels]);
  });

  it('an unknown KL estimator lists k1, k2, k3; mismatched shapes and clamps are refused', () => {
    const a = tf.zeros([2, 3]);
    const b = tf.zeros([3, 2]);
    expectTroupeError(
      () => klEstimate('k4' as KlEstimatorName, a, a),
      'UNKNOWN_NAME',
      "Unknown KL estimator 'k4'. Known: k1, k2, k3.",
    );
    expectTroupeError(() => klEstimate('k1', a, b), 'SHAPE_MISMATCH', '[2,3] and [3,2]');
    expectTroupeError(() => klEstimate('k3', a, a, { clamp: -1 }), 'BAD_ARGUMENT', "'clamp'");
    tf.dispose([a, b]);
  });

  it('masked reductions, logSoftmax and entropy refuse bad shapes and dtypes', async () => {
    const x = tf.zeros([2, 3]);
    const badMask = tf.zeros([2]);
    const ints = tf.zeros([2, 3], 'int32');
    await expectNoLeak(() => {
      expectTroupeError(
        () => maskedMean(x, badMask),
        'SHAPE_MISMATCH',
        "'maskedMean'",
        'mask float32 [2]',
      );
      expectTroupeError(() => maskedWhiten(ints, x), 'BAD_ARGUMENT', "'maskedWhiten'", 'x int32');
      expectTroupeError(() => logSoftmax(x, 2), 'BAD_ARGUMENT', "'axis'", '[-2, 2)', 'got 2');
      expectTroupeError(() => entropyFromLogits(ints), 'BAD_ARGUMENT', "'entropyFromLogits'");
    });
    tf.dispose([x, badMask, ints]);
  });
});
