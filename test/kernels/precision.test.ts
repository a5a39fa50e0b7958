import { afterAll, describe, expect, it } from 'vitest';
import { nativeLinear } from '../../src/kernels/custom/native-linear.js';
import {
  BF16_MIN_ROWS,
  matmulPrecision,
  precisionProblem,
  usePrecision,
} from '../../src/kernels/precision.js';
import { RandomStream } from '../../src/kernels/random.js';
import { startRuntime } from '../../src/kernels/runtime.js';
import * as tf from '../../src/kernels/tf.js';
import { bf16, bf16Product } from '../helpers/bf16.js';
import { nativeSkip } from '../helpers/native.js';

/**
 * bf16 mixed precision through tfjs (src/kernels/precision.ts): BatchMatMul and TroupeLinear,
 * forward and gradients, against float64 plain loops over the operands rounded to bf16 (round to
 * nearest even, as PyTorch's `.to(torch.bfloat16)`), with the fp32-sum tolerance of K + 4 ulp of
 * the summed magnitudes; and the refusals.
 */

/** Worst |got − want| in units of 2^-23·Σ|products| (fp32 sums of K exact products: ≤ K + 4). */
function ulps(got: ArrayLike<number>, want: { sum: Float64Array; scale: Float64Array }): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - want.sum[i]) / (want.scale[i] * 2 ** -23 + 1e-30));
  }
  return worst;
}

describe('precisionProblem: who computes bf16', () => {
  const loaded = { available: true };
  it.each(['webgpu', 'tensorflow-gpu', 'tensorflow'])(
    '%s is refused by name, naming wasm and cpu',
    (b) => {
      const why = precisionProblem(b, 'bf16', loaded);
      expect(why).toMatch(new RegExp(`backend '${b}' cannot compute precision bf16`));
      expect(why).toMatch(/wasm and cpu/);
    },
  );
  it('wasm and cpu compute it with the native kernels, not without', () => {
    expect(precisionProblem('wasm', 'bf16', loaded)).toBeUndefined();
    expect(precisionProblem('cpu', 'bf16', loaded)).toBeUndefined();
    const off = { available: false, reason: 'turned off by TROUPE_NATIVE=0' };
    expect(precisionProblem('cpu', 'bf16', off)).toMatch(
      /backend 'cpu' computes precision bf16 only with Troupe's native kernels.*TROUPE_NATIVE=0/,
    );
  });
  it('fp32 runs everywhere', () => {
    for (const b of ['webgpu', 'tensorflow-gpu', 'wasm', 'cpu'])
      expect(precisionProblem(b, 'fp32', { available: false })).toBeUndefined();
  });
  it('startRuntime refuses bf16 on webgpu before starting it (UNSUPPORTED, the backend named)', async () => {
    await expect(startRuntime({ backend: 'webgpu', precision: 'bf16' })).rejects.toMatchObject({
      code: 'UNSUPPORTED',
      message: expect.stringMatching(/backend 'webgpu' cannot compute precision bf16/),
    });
  });
});

describe.skipIf(nativeSkip !== null)(
  `bf16 products through tfjs${nativeSkip ? ` (${nativeSkip})` : ''}`,
  () => {
    afterAll(() => startRuntime({ backend: 'wasm' }));

    for (const backend of ['wasm', 'cpu'] as const) {
      it(`${backend}: BatchMatMul, every transpose and a batch, = float64 sums of bf16 products`, async () => {
        const info = await startRuntime({ backend, precision: 'bf16' });
        expect(info.precision).toBe('bf16');
        expect(matmulPrecision()).toBe('bf16');
        const rng = RandomStream.of({ seed: 3, step: 0, actor: `bf16-${backend}` });
        const [batch, M, N, K] = [3, 40, 37, 50];
        for (const [ta, tb] of [
          [false, false],
          [true, false],
          [false, true],
          [true, true],
        ] as const) {
          const a = rng.normal(batch * M * K);
          const b = rng.normal(batch * K * N);
          const got = tf.tidy(() =>
            tf
              .matMul(
                tf.tensor(a, ta ? [batch, K, M] : [batch, M, K]),
                tf.tensor(b, tb ? [batch, N, K] : [batch, K, N]),
                ta,
                tb,
              )
              .dataSync(),
          );
          for (let i = 0; i < batch; i++) {
            const ai = a.subarray(i * M * K, (i + 1) * M * K);
            const bi = b.subarray(i * K * N, (i + 1) * K * N);
            const out = got.subarray(i * M * N, (i + 1) * M * N);
            expect(
              ulps(out, bf16Product(ai, bi, M, N, K, ta, tb, bf16)),
              `${ta} ${tb}`,
            ).toBeLessThan(K + 4);
            // and it is not the fp32 product: the unrounded operands' sums are further off
            expect(
              ulps(
                out,
                bf16Product(ai, bi, M, N, K, ta, tb, (x) => x),
              ),
            ).toBeGreaterThan(1000);
          }
        }
      });
    }

    it(`fewer than ${BF16_MIN_ROWS} rows stay fp32 (decoding steps)`, async () => {
      await startRuntime({ backend: 'wasm', precision: 'bf16' });
      const rng = RandomStream.of({ seed: 4, step: 0, actor: 'bf16-rows' });
      const [M, N, K] = [BF16_MIN_ROWS - 1, 24, 64];
      const a = rng.normal(M * K);
      const b = rng.normal(K * N);
      const got = tf.tidy(() => tf.matMul(tf.tensor(a, [M, K]), tf.tensor(b, [K, N])).dataSync());
      expect(
        ulps(
          got,
          bf16Product(a, b, M, N, K, false, false, (x) => x),
        ),
      ).toBeLessThan(K + 4);
    });

    it('TroupeLinear: x·W + b and its gradients (dx = dy·Wᵀ, dW = xᵀ·dy in bf16; db fp32)', async () => {
      await startRuntime({ backend: 'wasm', precision: 'bf16' });
      const rng = RandomStream.of({ seed: 5, step: 0, actor: 'bf16-linear' });
      const [B, T, I, O] = [2, 24, 45, 33]; // 48 rows
      const R = B * T;
      const x = rng.normal(R * I);
      const w = rng.normal(I * O);
      const bias = rng.normal(O);
      const dy = rng.normal(R * O);
      const { y, dx, dw, db } = tf.tidy(() => {
        const xt = tf.tensor(x, [B, T, I]);
        const wt = tf.tensor(w, [I, O]);
        const bt = tf.tensor(bias, [O]);
        const dyt = tf.tensor(dy, [B, T, O]);
        const f = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => nativeLinear(xx, ww, bb)!;
        const [gx, gw, gb] = tf.grads(f)([xt, wt, bt], dyt);
        return {
          y: f(xt, wt, bt).dataSync(),
          dx: gx.dataSync(),
          dw: gw.dataSync(),
          db: gb.dataSync(),
        };
      });
      const yRef = bf16Product(x, w, R, O, I, false, false, bf16);
      for (let i = 0; i < R * O; i++) yRef.sum[i] += bias[i % O];
      expect(ulps(y, yRef)).toBeLessThan(I + 6);
      expect(ulps(dx, bf16Product(dy, w, R, I, O, false, true, bf16))).toBeLessThan(O + 4);
      expect(ulps(dw, bf16Product(x, dy, I, O, R, true, false, bf16))).toBeLessThan(R + 4);
      const dbRef = new Float64Array(O);
      for (let i = 0; i < R * O; i++) dbRef[i % O] += dy[i];
      for (let j = 0; j < O; j++) expect(db[j]).toBeCloseTo(dbRef[j], 4);
    });

    it('TroupeLinear under bf16: its three gradients are one TroupeLinearGrad call (with and without a bias, nothing left behind); fp32 keeps BatchMatMul and Sum', async () => {
      const rng = RandomStream.of({ seed: 6, step: 0, actor: 'bf16-linear-grad' });
      const [R, I, O] = [40, 36, 50];
      const x = tf.tensor(rng.normal(R * I), [R, I]);
      const w = tf.tensor(rng.normal(I * O), [I, O]);
      const b = tf.tensor(rng.normal(O), [O]);
      const dy = tf.tensor(rng.normal(R * O), [R, O]);
      const kernelsOf = async (withBias: boolean) => {
        const before = tf.memory().numTensors;
        const prof = await tf.profile(() => {
          const gs = withBias
            ? tf.grads((xx, ww, bb) => nativeLinear(xx, ww, bb)!)([x, w, b], dy)
            : tf.grads((xx, ww) => nativeLinear(xx, ww)!)([x, w], dy);
          tf.dispose(gs);
          return [];
        });
        expect(tf.memory().numTensors, `tensors left, bias ${withBias}`).toBe(before);
        return prof.kernels.map((k) => k.name);
      };
      try {
        await startRuntime({ backend: 'wasm', precision: 'bf16' });
        for (const withBias of [true, false]) {
          const names = await kernelsOf(withBias);
          expect(names.filter((n) => n === 'TroupeLinearGrad')).toHaveLength(1);
          expect(names).not.toContain('BatchMatMul');
          expect(names).not.toContain('Sum');
        }
        await startRuntime({ backend: 'wasm' });
        const names = await kernelsOf(true);
        expect(names).not.toContain('TroupeLinearGrad');
        expect(names.filter((n) => n === 'BatchMatMul')).toHaveLength(2);
      } finally {
        tf.dispose([x, w, b, dy]);
      }
    });

    it('usePrecision refuses bf16 on webgpu and leaves the thread as it was', async () => {
      await startRuntime({ backend: 'wasm', precision: 'bf16' });
      expect(() => usePrecision('webgpu', 'bf16')).toThrow(/webgpu/);
      expect(matmulPrecision()).toBe('bf16');
      await startRuntime({ backend: 'wasm' });
      expect(matmulPrecision()).toBe('fp32');
    });
  },
);
