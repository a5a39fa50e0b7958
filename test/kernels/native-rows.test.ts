import { beforeAll, describe, expect, it } from 'vitest';
import {
  LOG_SOFTMAX_PICK,
  logSoftmaxPick,
  logSoftmaxPickGrad,
  ROW_ENTROPY,
  rowEntropy,
  SCALED_SOFTMAX,
  scaledSoftmax,
} from '../../src/kernels/custom/native-rows.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { expectClose, read, useBackend } from '../helpers/backends.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

const rng = (purpose: string) => RandomStream.of({ seed: 9, step: 0, actor: 'test', purpose });

/** softmax(scale·x[g, h, r, :] + bias[g, r, :]) the slow way, in float64. */
function slowSoftmax(
  x: Float32Array,
  bias: Float32Array | null,
  G: number,
  H: number,
  R: number,
  C: number,
  scale: number,
): Float64Array {
  const y = new Float64Array(G * H * R * C);
  for (let g = 0; g < G; g++)
    for (let h = 0; h < H; h++)
      for (let r = 0; r < R; r++) {
        const at = ((g * H + h) * R + r) * C;
        const z = Array.from(
          { length: C },
          (_, j) => scale * x[at + j] + (bias ? bias[(g * R + r) * C + j] : 0),
        );
        const m = Math.max(...z);
        const e = z.map((v) => Math.exp(v - m));
        const s = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j < C; j++) y[at + j] = e[j] / s;
      }
  return y;
}

/** The kernels are registered per backend; this is the composite the ops use without them. */
function withoutNative<T>(backend: string, f: () => T): T {
  const saved = [
    SCALED_SOFTMAX,
    LOG_SOFTMAX_PICK,
    `${SCALED_SOFTMAX}Grad`,
    `${LOG_SOFTMAX_PICK}Grad`,
    ROW_ENTROPY,
  ].map((k) => tf.getKernel(k, backend));
  for (const k of saved) if (k) tf.unregisterKernel(k.kernelName, backend);
  try {
    return f();
  } finally {
    for (const k of saved) if (k) tf.registerKernel(k);
  }
}

for (const backend of ['wasm', 'cpu'] as const) {
  describe.skipIf(skip !== null)(
    `native row kernels on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it('are registered', () => {
        expect(tf.getKernel(SCALED_SOFTMAX, backend)).toBeDefined();
        expect(tf.getKernel(LOG_SOFTMAX_PICK, backend)).toBeDefined();
      });

      it.each([
        [2, 3, 5, 7, true],
        [1, 1, 1, 1, true],
        [2, 4, 3, 33, false],
        [3, 2, 1, 17, true], // one query over 17 keys (a decoding step)
      ])(
        'scaledSoftmax [%i, %i, %i, %i] (bias %s) equals the float64 loop',
        async (G, H, R, C, withBias) => {
          const x = rng(`x${G}${H}${R}${C}`).normal(G * H * R * C);
          const bias = withBias
            ? Float32Array.from(rng(`b${C}`).uniform(G * R * C), (u) => (u < 0.3 ? -1e9 : 0))
            : null;
          const xt = tf.tensor(x, [G, H, R, C]);
          const bt = bias ? tf.tensor(bias, [G, 1, 1, R, C]) : undefined;
          const y = scaledSoftmax(xt, 0.37, bt, G);
          expect(y.shape).toEqual([G, H, R, C]);
          expectClose(await read(y), slowSoftmax(x, bias, G, H, R, C, 0.37), {
            atol: 1e-6,
            rtol: 1e-5,
          });
          const composite = withoutNative(backend, () => scaledSoftmax(xt, 0.37, bt, G));
          expectClose(await read(y), await read(composite), { atol: 1e-6, rtol: 1e-5 });
          tf.dispose([xt, y, composite, ...(bt ? [bt] : [])]);
        },
      );

      it('a fully masked row is uniform, not NaN', async () => {
        const y = scaledSoftmax(tf.tensor([1, 2, 3], [1, 1, 1, 3]), 1, tf.fill([1, 1, 3], -1e9), 1);
        expectClose(await read(y), [1 / 3, 1 / 3, 1 / 3], { atol: 1e-7 });
        y.dispose();
      });

      it('scaledSoftmax gradients (x and bias) equal the composite', async () => {
        const [G, H, R, C] = [2, 3, 4, 6];
        const x = tf.tensor(rng('gx').normal(G * H * R * C), [G, H, R, C]);
        const b = tf.tensor(rng('gb').normal(G * R * C), [G, 1, 1, R, C]);
        const w = tf.tensor(rng('gw').normal(G * H * R * C), [G, H, R, C]);
        const f = (xx: tf.Tensor, bb: tf.Tensor) =>
          tf.sum(tf.mul(scaledSoftmax(xx, 0.5, bb, G), w));
        const got = tf.grads(f)([x, b]);
        const want = withoutNative(backend, () => tf.grads(f)([x, b]));
        expect(got[1].shape).toEqual(want[1].shape);
        expectClose(await read(got[0]), await read(want[0]), {
          atol: 1e-6,
          rtol: 1e-4,
          what: 'dx',
        });
        expectClose(await read(got[1]), await read(want[1]), {
          atol: 1e-6,
          rtol: 1e-4,
          what: 'dbias',
        });
        tf.dispose([x, b, w, ...got, ...want]);
      });

      it('logSoftmaxPick and its block gradient equal the float64 loop', async () => {
        const [N, V] = [5, 37];
        const z = Float32Array.from(rng('z').normal(N * V), (v) => 4 * v);
        const labels = Int32Array.from([0, 36, 5, 17, 30]);
        const dy = rng('dy').normal(N);
        const zt = tf.tensor(z, [N, V]);
        const lt = tf.tensor(labels, [N], 'int32');
        const [lp, lse] = logSoftmaxPick(zt, lt);
        const wantLse = Array.from({ length: N }, (_, r) => {
          const row = Array.from(z.subarray(r * V, (r + 1) * V));
          const m = Math.max(...row);
          return m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
        });
        expectClose(await read(lse), wantLse, { atol: 1e-5, rtol: 1e-6, what: 'lse' });
        expectClose(
          await read(lp),
          wantLse.map((l, r) => z[r * V + labels[r]] - l),
          { atol: 1e-5, rtol: 1e-6, what: 'lp' },
        );
        // the gradient of columns 10 … 29 (labels 17 inside, the others outside the block)
        const block = tf.slice(zt, [0, 10], [N, 20]);
        const g = logSoftmaxPickGrad(block, lse, lt, tf.tensor(dy), 10);
        const want = new Float64Array(N * 20);
        for (let r = 0; r < N; r++)
          for (let j = 0; j < 20; j++)
            want[r * 20 + j] =
              dy[r] * ((labels[r] === 10 + j ? 1 : 0) - Math.exp(z[r * V + 10 + j] - wantLse[r]));
        expectClose(await read(g), want, { atol: 1e-6, rtol: 1e-5, what: 'g' });
        const composite = withoutNative(backend, () =>
          logSoftmaxPickGrad(block, lse, lt, tf.tensor(dy), 10),
        );
        expectClose(await read(g), await read(composite), { atol: 1e-6, rtol: 1e-5 });
        tf.dispose([zt, lt, lp, lse, block, g, composite]);
      });

      it('rowEntropy equals the float64 loop, and the composite where the kernel is absent', async () => {
        const [N, V] = [9, 613]; // rows from peaked to flat
        const z = Float32Array.from(
          rng('zH').normal(N * V),
          (v, i) => v * (0.1 + Math.floor(i / V)),
        );
        const zt = tf.tensor(z, [N, V]);
        const [lp, lse] = logSoftmaxPick(zt, tf.zeros([N], 'int32'));
        const H = rowEntropy(zt, lse);
        const want = Array.from({ length: N }, (_, r) => {
          const row = Array.from(z.subarray(r * V, (r + 1) * V));
          const m = Math.max(...row);
          const l = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
          return -row.reduce((a, v) => a + Math.exp(v - l) * (v - l), 0);
        });
        expect(want[0]).toBeGreaterThan(6); // nearly uniform over 613
        expect(want[N - 1]).toBeLessThan(want[0] - 1);
        expectClose(await read(H), want, { atol: 2e-5, rtol: 1e-5, what: 'H' });
        const composite = withoutNative(backend, () => rowEntropy(zt, lse));
        expectClose(await read(composite), want, { atol: 2e-5, rtol: 1e-5, what: 'composite H' });
        tf.dispose([zt, lp, lse, H, composite]);
      });

      it('refuses a label outside the vocabulary, naming its row', () => {
        const zt = tf.zeros([2, 4]);
        const lt = tf.tensor([1, 4], [2], 'int32');
        expect(() => logSoftmaxPick(zt, lt)).toThrow(/labels\[1\] = 4 is outside \[0, 4\)/);
        tf.dispose([zt, lt]);
      });
    },
  );
}

describe.skipIf(skip !== null)('wasm Sum over leading axes (native columnSums)', () => {
  it('equals the float64 loop', async () => {
    await useBackend('wasm');
    const x = rng('sum').normal(6 * 7 * 13);
    const s = tf.sum(tf.tensor(x, [6, 7, 13]), [0, 1]);
    const want = Array.from({ length: 13 }, (_, j) => {
      let t = 0;
      for (let i = 0; i < 42; i++) t += x[i * 13 + j];
      return t;
    });
    expectClose(await read(s), want, { atol: 1e-5, rtol: 1e-5 });
    s.dispose();
  });
});

describe.skipIf(skip !== null)('native row kernel arguments', () => {
  it('refuse bad sizes and types, naming the argument', () => {
    if (!native.available) return;
    const f = (n: number) => new Float32Array(n);
    const a = native.addon;
    expect(() => a.scaledSoftmax(f(11), f(0), 1, 1, 2, 6, 1, f(12))).toThrow(
      /scaledSoftmax: x has 11 elements, needs 12/,
    );
    expect(() => a.scaledSoftmax(f(12), f(5), 1, 1, 2, 6, 1, f(12))).toThrow(/bias has 5/);
    expect(() => a.scaledSoftmaxBackward(f(4), f(4), 2, 2, Number.NaN, f(4))).toThrow(
      /scale must be a number/,
    );
    expect(() => a.logSoftmaxPick(f(4), f(2) as never, 2, 2, f(2), f(2))).toThrow(
      /labels must be an Int32Array/,
    );
    expect(() => a.columnSums(f(6), 2, 3, f(2))).toThrow(/out has 2 elements, needs 3/);
    expect(() => a.columnSums(f(6), 0, 3, f(3))).toThrow(/outer must be an integer/);
  });
});
