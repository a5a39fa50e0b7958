import { beforeAll, describe, expect, it } from 'vitest';
import { rightPad } from '../../src/data/batching/collate.js';
import { FUSED, installNativeFused } from '../../src/kernels/custom/native-fused.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { lmLoss } from '../../src/policy/lm-loss.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { geluTanh, layerNorm, rmsNorm, silu } from '../../src/policy/model/layers.js';
import { expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { native, nativeSkip as skip } from '../helpers/native.js';
import { randomRows, randomState, TINY } from '../policy/fixtures.js';

const EPS = 1e-5;

function random(n: number, purpose: string, mean = 0, std = 1): Float32Array {
  return RandomStream.of({ seed: 9, step: 0, actor: 'native-fused', purpose }).normal(n, mean, std);
}

/** Run `fn` with the fused kernels unregistered on `backend` (the composite ops), then restore. */
async function composite<T>(backend: string, fn: () => Promise<T>): Promise<T> {
  for (const name of Object.values(FUSED)) tf.unregisterKernel(name, backend);
  try {
    return await fn();
  } finally {
    installNativeFused(backend);
  }
}

type Op = 'layerNorm' | 'rmsNorm' | 'gelu' | 'silu';
const OPS: Op[] = ['layerNorm', 'rmsNorm', 'gelu', 'silu'];

/** The op on (x, gamma, beta) through layers.ts: fused where registered, composite otherwise. */
function apply(op: Op, x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  if (op === 'layerNorm') return layerNorm(x, gamma, beta, EPS);
  if (op === 'rmsNorm') return rmsNorm(x, gamma, EPS);
  return op === 'gelu' ? geluTanh(x) : silu(x);
}

/** Inputs the op takes (and gets gradients for). */
function arity(op: Op): number {
  return op === 'layerNorm' ? 3 : op === 'rmsNorm' ? 2 : 1;
}

/** y and every gradient of Σ dy⊙y, read back as float64. */
async function forwardBackward(
  op: Op,
  shape: number[],
  gammaShape: number[],
): Promise<Float64Array[]> {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = shape[shape.length - 1];
  const x = tf.tensor(random(n, `x${shape}`, 0.3, 1.5), shape);
  const gamma = tf.tensor(random(d, `g${d}`, 1, 0.2), gammaShape);
  const beta = tf.tensor(random(d, `b${d}`, 0, 0.2), gammaShape);
  const dy = tf.tensor(random(n, `dy${shape}`), shape);
  const inputs = [x, gamma, beta].slice(0, arity(op));
  const y = apply(op, x, gamma, beta);
  const grads = tf.grads((...args: tf.Tensor[]) =>
    tf.sum(tf.mul(apply(op, args[0], args[1] ?? gamma, args[2] ?? beta), dy)),
  )(inputs);
  for (const [i, g] of grads.entries()) expect(g.shape).toEqual(inputs[i].shape);
  const out = await Promise.all([y, ...grads].map(read));
  tf.dispose([x, gamma, beta, dy, y, ...grads]);
  return out;
}

/** The same in float64 loops: [y, dx, dgamma?, dbeta?]. */
function reference(op: Op, shape: number[]): Float64Array[] {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = shape[shape.length - 1];
  const rows = n / d;
  const x = random(n, `x${shape}`, 0.3, 1.5);
  const g = random(d, `g${d}`, 1, 0.2);
  const b = random(d, `b${d}`, 0, 0.2);
  const dy = random(n, `dy${shape}`);
  const y = new Float64Array(n);
  const dx = new Float64Array(n);
  const dg = new Float64Array(d);
  const db = new Float64Array(d);
  if (op === 'gelu' || op === 'silu') {
    const c = Math.sqrt(2 / Math.PI);
    for (let i = 0; i < n; i++) {
      const v = x[i];
      if (op === 'gelu') {
        const t = Math.tanh(c * (v + 0.044715 * v ** 3));
        y[i] = 0.5 * v * (1 + t);
        dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v));
      } else {
        const s = 1 / (1 + Math.exp(-v));
        y[i] = v * s;
        dx[i] = dy[i] * s * (1 + v * (1 - s));
      }
    }
    return [y, dx];
  }
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let mean = 0;
    if (op === 'layerNorm') {
      for (let j = 0; j < d; j++) mean += x[o + j];
      mean /= d;
    }
    let v = 0;
    for (let j = 0; j < d; j++) v += (x[o + j] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / d + EPS);
    const xh = (j: number) => (x[o + j] - mean) * rstd;
    let m1 = 0;
    let m2 = 0;
    for (let j = 0; j < d; j++) {
      y[o + j] = xh(j) * g[j] + (op === 'layerNorm' ? b[j] : 0);
      m1 += (g[j] * dy[o + j]) / d;
      m2 += (g[j] * dy[o + j] * xh(j)) / d;
      dg[j] += dy[o + j] * xh(j);
      db[j] += dy[o + j];
    }
    if (op === 'rmsNorm') m1 = 0;
    for (let j = 0; j < d; j++) dx[o + j] = rstd * (g[j] * dy[o + j] - m1 - xh(j) * m2);
  }
  return op === 'layerNorm' ? [y, dx, dg, db] : [y, dx, dg];
}

const SHAPES: [number[], number[]][] = [
  [[1, 7], [7]], // one row, fewer columns than a vector
  [[3, 5, 37], [37]], // rank 3, columns not a multiple of 8 or 16
  [
    [2, 3, 100],
    [1, 100],
  ], // a gain of shape [1, d]: its gradient keeps that shape
  [[16, 64], [64]],
];
const WHAT = ['y', 'dx', 'dgamma', 'dbeta'];

for (const backend of ['wasm', 'cpu'] as const) {
  describe.skipIf(skip !== null)(
    `fused native kernels on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        const info = await useBackend(backend);
        expect(info.customKernels).toContain(`${backend}:${FUSED.layerNorm}(native)`);
      });

      it('are registered for the backend, and layers.ts runs them', async () => {
        for (const name of Object.values(FUSED)) expect(tf.getKernel(name, backend)).toBeDefined();
        const x = tf.ones([2, 4]);
        const g = tf.ones([4]);
        const ran = async (fn: () => tf.Tensor) =>
          (await tf.profile(() => tf.dispose(fn()))).kernels.map((k) => k.name);
        expect(await ran(() => layerNorm(x, g, g, EPS))).toEqual([FUSED.layerNorm]);
        expect(await ran(() => rmsNorm(x, g, EPS))).toEqual([FUSED.rmsNorm]);
        expect(await ran(() => geluTanh(x))).toEqual([FUSED.activation]);
        // a gain that is not one value per column takes the composite ops
        const g21 = tf.ones([2, 1]);
        expect(await ran(() => rmsNorm(x, g21, EPS))).not.toContain(FUSED.rmsNorm);
        tf.dispose([x, g, g21]);
      });

      for (const op of OPS) {
        it.each(SHAPES)(
          `${op} %j: values and gradients equal the composite ops`,
          async (shape, gs) => {
            const got = await forwardBackward(op, shape, gs);
            const want = await composite(backend, () => forwardBackward(op, shape, gs));
            expect(got.length).toBe(want.length);
            for (const [i, g] of got.entries()) {
              expectClose(g, want[i], { atol: 5e-6, rtol: 5e-5, what: `${op} ${WHAT[i]}` });
            }
          },
        );

        it(`${op}: values and gradients equal a float64 loop`, async () => {
          for (const [shape] of [SHAPES[1], SHAPES[3]]) {
            const got = await forwardBackward(op, shape, [shape[shape.length - 1]]);
            const want = reference(op, shape);
            for (const [i, g] of got.entries()) {
              expectClose(g, want[i], {
                atol: 1e-5,
                rtol: 1e-4,
                what: `${op} ${shape} ${WHAT[i]}`,
              });
            }
          }
        });
      }

      it('GELU and SiLU stay finite and exact far from zero', async () => {
        const xs = [-200, -90, -30, -10, -1e-3, 0, 1e-3, 10, 30, 90, 200];
        const c = Math.sqrt(2 / Math.PI);
        const x = tf.tensor1d(xs);
        for (const op of ['gelu', 'silu'] as const) {
          const f = (t: tf.Tensor) => (op === 'gelu' ? geluTanh(t) : silu(t));
          // float64, in the sigmoid form (the tanh form cancels for large negative x)
          const z = (v: number) => (op === 'gelu' ? 2 * c * (v + 0.044715 * v ** 3) : v);
          const dz = (v: number) => (op === 'gelu' ? 2 * c * (1 + 3 * 0.044715 * v * v) : 1);
          const sig = (v: number) => 1 / (1 + Math.exp(-z(v)));
          expectClose(
            await read(f(x)),
            xs.map((v) => v * sig(v)),
            { what: `${op} y` },
          );
          expectClose(
            await read(tf.grad((t: tf.Tensor) => tf.sum(f(t)))(x)),
            xs.map((v) => sig(v) + v * sig(v) * (1 - sig(v)) * dz(v)),
            { what: `${op} dx` },
          );
        }
        x.dispose();
      });

      it('forward and backward leave no tensors behind', async () => {
        const x = tf.tensor(random(24, 'leak'), [2, 3, 4]);
        const g = tf.ones([4]);
        const b = tf.zeros([4]);
        await expectNoLeak(() => {
          for (const op of OPS) {
            tf.dispose(apply(op, x, g, b));
            const grads = tf.grads((...t: tf.Tensor[]) => tf.sum(apply(op, t[0], t[1] ?? g, b)))(
              [x, g].slice(0, Math.min(arity(op), 2)),
            );
            tf.dispose(grads);
          }
        });
        tf.dispose([x, g, b]);
      });

      it.each([
        ['gpt2', false],
        ['gpt2', true],
        ['llama', false],
      ] as const)(
        'a %s CausalLM (checkpoint %s) has the same loss and gradients as with the composite ops',
        async (family, checkpoint) => {
          const c = TINY[family];
          const model = CausalLM.fromState(c, randomState(c, 4));
          const batch = rightPad(randomRows(c, [7, 5, 6], 8), 0);
          const names = [...model.params.keys()];
          const vars = names.map((n) => model.params.get(n)!);
          const step = async () => {
            const { value, grads } = tf.variableGrads(
              () => lmLoss(model, batch, { checkpoint }).loss,
              vars,
            );
            const out = [
              await read(value),
              ...(await Promise.all(vars.map((v) => read(grads[v.name])))),
            ];
            tf.dispose([value, ...Object.values(grads)]);
            return out;
          };
          const profile = await tf.profile(() => {
            tf.dispose(lmLoss(model, batch).loss);
          });
          const ran = new Set(profile.kernels.map((k) => k.name));
          expect(ran.has(family === 'gpt2' ? FUSED.layerNorm : FUSED.rmsNorm)).toBe(true);
          expect(ran.has(FUSED.activation)).toBe(true);
          const got = await step();
          const want = await composite(backend, step);
          expectClose(got[0], want[0], { atol: 1e-6, rtol: 1e-5, what: 'loss' });
          for (const [i, n] of names.entries()) {
            expectClose(got[i + 1], want[i + 1], { atol: 1e-6, rtol: 1e-4, what: `d ${n}` });
          }
          model.dispose();
        },
      );
    },
  );
}

describe.skipIf(skip !== null)(
  `the addon's fused functions check their arguments${skip ? ` (${skip})` : ''}`,
  () => {
    const addon = native.available ? native.addon : (undefined as never);
    const f = (n: number) => new Float32Array(n);

    it("gives an activation's element the same bits wherever it falls in the vectors", () => {
      // Elements run a vector at a time and the tail through the same vector code, so running
      // from one float earlier (each element in the next lane, the tail one longer) changes no bit.
      const n = 61;
      const x = new Float32Array(n + 1);
      for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 1.7) * 6;
      const dy = x.map((v, i) => Math.cos(i + v));
      for (const kind of [0, 1]) {
        const [y, yEarly, dx, dxEarly] = [f(n), f(n + 1), f(n), f(n + 1)];
        addon.activationForward(kind, x.subarray(1), y);
        addon.activationForward(kind, x, yEarly);
        addon.activationBackward(kind, x.subarray(1), dy.subarray(1), dx);
        addon.activationBackward(kind, x, dy, dxEarly);
        expect(yEarly.subarray(1)).toEqual(y);
        expect(dxEarly.subarray(1)).toEqual(dx);
      }
    });

    it('names a view of the wrong length', () => {
      expect(() => addon.layerNormForward(f(11), f(4), f(4), 3, 4, EPS, f(12), f(3), f(3))).toThrow(
        /layerNormForward: x has 11 elements, expected 12 \(rows·cols\)/,
      );
      expect(() => addon.rmsNormBackward(f(12), f(12), f(4), f(2), 3, 4, f(12), f(4))).toThrow(
        /rmsNormBackward: rstd has 2 elements, expected 3 \(rows\)/,
      );
      expect(() =>
        addon.layerNormBackward(f(12), f(12), f(4), f(3), f(3), 3, 4, f(12), f(4), f(5)),
      ).toThrow(RangeError);
      expect(() => addon.activationBackward(0, f(8), f(8), f(7))).toThrow(
        /activationBackward: dx has 7 elements, expected 8/,
      );
    });

    it('names an argument of the wrong type or range', () => {
      const bad = new Float64Array(4) as unknown as Float32Array;
      expect(() => addon.layerNormForward(f(12), bad, f(4), 3, 4, EPS, f(12), f(3), f(3))).toThrow(
        TypeError,
      );
      expect(() => addon.layerNormForward(f(12), bad, f(4), 3, 4, EPS, f(12), f(3), f(3))).toThrow(
        /layerNormForward: gamma must be a Float32Array/,
      );
      expect(() => addon.rmsNormForward(f(12), f(4), 3.5, 4, EPS, f(12), f(3))).toThrow(
        /rmsNormForward: rows must be an integer/,
      );
      expect(() => addon.rmsNormForward(f(12), f(4), 3, 4, -1, f(12), f(3))).toThrow(
        /rmsNormForward: eps must be a finite number >= 0/,
      );
      expect(() => addon.activationForward(2, f(4), f(4))).toThrow(
        /activationForward: kind must be 0 \(GELU tanh\) or 1 \(SiLU\)/,
      );
      expect(() => (addon.activationForward as (...a: unknown[]) => void)(0, f(4))).toThrow(
        /activationForward takes 3 arguments, got 2/,
      );
    });

    it('refuses an output that shares memory with an input, and writes nothing', () => {
      const buf = new Float32Array(24).fill(1);
      const x = buf.subarray(0, 12);
      expect(() => addon.activationForward(1, x, buf.subarray(6, 18))).toThrow(
        /activationForward: y overlaps x/,
      );
      expect(() =>
        addon.layerNormForward(x, f(4), f(4), 3, 4, EPS, f(12), buf.subarray(10, 13), f(3)),
      ).toThrow(/layerNormForward: mean overlaps x/);
      expect([...buf]).toEqual(new Array(24).fill(1));
    });
  },
);
