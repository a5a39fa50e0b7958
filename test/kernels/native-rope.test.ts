import { beforeAll, describe, expect, it } from 'vitest';
import { rightPad } from '../../src/data/batching/collate.js';
import { FUSED, installNativeFused } from '../../src/kernels/custom/native-fused.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { lmLoss } from '../../src/policy/lm-loss.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { applyRope } from '../../src/policy/model/layers.js';
import { expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { native, nativeSkip as skip } from '../helpers/native.js';
import { randomRows, randomState, TINY } from '../policy/fixtures.js';

function random(n: number, purpose: string): Float32Array {
  return RandomStream.of({ seed: 5, step: 0, actor: 'native-rope', purpose }).normal(n, 0, 1);
}

/** Run `fn` with TroupeRope unregistered on `backend` (layers.ts's composite ops), then restore. */
async function composite<T>(backend: string, fn: () => Promise<T>): Promise<T> {
  tf.unregisterKernel(FUSED.rope, backend);
  try {
    return await fn();
  } finally {
    installNativeFused(backend);
  }
}

interface Case {
  readonly x: number[]; // [B, T, heads, hd]
  readonly dim: number;
}

const CASES: Case[] = [
  { x: [2, 5, 3, 8], dim: 8 }, // full rotary, small
  { x: [1, 17, 4, 64], dim: 64 }, // a Llama head
  { x: [2, 4, 3, 12], dim: 8 }, // partial rotary: channels 8..11 pass through
  { x: [1, 3, 2, 6], dim: 2 }, // the smallest rotation
];

/** Tables of angles pos·θ_i (any values would do; these are what a model has). */
function tables(c: Case): { cos: Float32Array; sin: Float32Array } {
  const [B, T] = c.x;
  const n = B * T * c.dim;
  const cos = new Float32Array(n);
  const sin = new Float32Array(n);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let j = 0; j < c.dim; j++) {
        const angle = (t + 3 * b) * 10000 ** (-(2 * (j % (c.dim / 2))) / c.dim);
        cos[(b * T + t) * c.dim + j] = Math.cos(angle);
        sin[(b * T + t) * c.dim + j] = Math.sin(angle);
      }
  return { cos, sin };
}

/** y, dx, dcos, dsin of Σ dy⊙applyRope(x, cos, sin), read back. */
async function forwardBackward(c: Case): Promise<Float64Array[]> {
  const n = c.x.reduce((a, b) => a * b, 1);
  const [B, T] = c.x;
  const tab = tables(c);
  const x = tf.tensor(random(n, `x${c.x}`), c.x);
  const cos = tf.tensor(tab.cos, [B, T, 1, c.dim]);
  const sin = tf.tensor(tab.sin, [B, T, 1, c.dim]);
  const dy = tf.tensor(random(n, `dy${c.x}`), c.x);
  const y = applyRope(x, cos, sin);
  const grads = tf.grads((a: tf.Tensor, cs: tf.Tensor, sn: tf.Tensor) =>
    tf.sum(tf.mul(applyRope(a, cs, sn), dy)),
  )([x, cos, sin]);
  expect(grads.map((g) => g.shape)).toEqual([c.x, cos.shape, sin.shape]);
  const out = await Promise.all([y, ...grads].map(read));
  tf.dispose([x, cos, sin, dy, y, ...grads]);
  return out;
}

/** The same in float64 loops, from the definition y = x·cos + rotate_half(x)·sin. */
function reference(c: Case): Float64Array[] {
  const [B, T, H, hd] = c.x;
  const n = B * T * H * hd;
  const half = c.dim / 2;
  const x = random(n, `x${c.x}`);
  const dy = random(n, `dy${c.x}`);
  const { cos, sin } = tables(c);
  const y = new Float64Array(n);
  const dx = new Float64Array(n);
  const dcos = new Float64Array(B * T * c.dim);
  const dsin = new Float64Array(B * T * c.dim);
  for (let bt = 0; bt < B * T; bt++)
    for (let h = 0; h < H; h++) {
      const o = (bt * H + h) * hd;
      for (let j = 0; j < hd; j++) {
        if (j >= c.dim) {
          y[o + j] = x[o + j];
          dx[o + j] += dy[o + j];
          continue;
        }
        const r = j < half ? -x[o + j + half] : x[o + j - half]; // rotate_half(x)_j
        const cs = cos[bt * c.dim + j];
        const sn = sin[bt * c.dim + j];
        y[o + j] = x[o + j] * cs + r * sn;
        // ∂y_j/∂x_j = cos_j; ∂y_j/∂x_{j±half} = ∓sin_j
        dx[o + j] += dy[o + j] * cs;
        if (j < half) dx[o + j + half] -= dy[o + j] * sn;
        else dx[o + j - half] += dy[o + j] * sn;
        dcos[bt * c.dim + j] += dy[o + j] * x[o + j];
        dsin[bt * c.dim + j] += dy[o + j] * r;
      }
    }
  return [y, dx, dcos, dsin];
}

const WHAT = ['y', 'dx', 'dcos', 'dsin'];

for (const backend of ['wasm', 'cpu'] as const) {
  describe.skipIf(skip !== null)(`TroupeRope on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      const info = await useBackend(backend);
      expect(info.customKernels).toContain(`${backend}:${FUSED.rope}(native)`);
    });

    it('runs for applyRope, in one kernel forward and one backward', async () => {
      const c = CASES[0];
      const [B, T] = c.x;
      const x = tf.ones(c.x);
      const cs = tf.ones([B, T, 1, c.dim]);
      const ran = async (fn: () => tf.TensorContainer) =>
        (await tf.profile(() => tf.dispose(fn()))).kernels.map((k) => k.name);
      expect(await ran(() => applyRope(x, cs, cs))).toEqual([FUSED.rope]);
      const grad = await ran(() => tf.grad((t: tf.Tensor) => applyRope(t, cs, cs))(x));
      expect(grad.filter((k) => k === FUSED.rope)).toHaveLength(2);
      expect(grad).not.toContain('Concat');
      // tables of one row for the whole batch: the composite ops (broadcast)
      const one = tf.ones([1, T, 1, c.dim]);
      expect(await ran(() => applyRope(x, one, one))).not.toContain(FUSED.rope);
      tf.dispose([x, cs, one]);
    });

    it.each(CASES)('%j: values and gradients are the composite ops’ bit for bit', async (c) => {
      const got = await forwardBackward(c);
      const want = await composite(backend, () => forwardBackward(c));
      for (const [i, g] of got.entries()) {
        expect(g, `${WHAT[i]} ${c.x} dim ${c.dim}`).toEqual(want[i]);
      }
    });

    it.each(CASES)('%j: values and gradients equal a float64 loop', async (c) => {
      const got = await forwardBackward(c);
      const want = reference(c);
      for (const [i, g] of got.entries()) {
        expectClose(g, want[i], { atol: 1e-5, rtol: 1e-5, what: `${WHAT[i]} ${c.x}` });
      }
    });

    it('the transpose of the transpose: a second-order gradient equals the composite’s', async () => {
      const c = CASES[2];
      const [B, T] = c.x;
      const n = c.x.reduce((a, b) => a * b, 1);
      const tab = tables(c);
      const second = async () => {
        const x = tf.tensor(random(n, 'x2'), c.x);
        const cos = tf.tensor(tab.cos, [B, T, 1, c.dim]);
        const sin = tf.tensor(tab.sin, [B, T, 1, c.dim]);
        const w = tf.tensor(random(n, 'w2'), c.x);
        // d/dx of Σ (∂/∂x Σ w⊙rope(x)²)
        const inner = tf.grad((t: tf.Tensor) =>
          tf.sum(tf.mul(tf.square(applyRope(t, cos, sin)), w)),
        );
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(inner(t), w)))(x);
        const out = await read(g);
        tf.dispose([x, cos, sin, w, g]);
        return out;
      };
      expect(await second()).toEqual(await composite(backend, second));
    });

    it('leaves no tensors behind', async () => {
      const c = CASES[2];
      const [B, T] = c.x;
      const x = tf.tensor(random(288, 'leak'), c.x);
      const cs = tf.ones([B, T, 1, c.dim]);
      await expectNoLeak(() => {
        tf.dispose(applyRope(x, cs, cs));
        tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(applyRope(a, b, cs)))([x, cs]));
      });
      tf.dispose([x, cs]);
    });

    it('a Llama CausalLM has the same loss and gradients, bit for bit, as with the composite', async () => {
      const c = TINY.llama;
      const model = CausalLM.fromState(c, randomState(c, 6));
      const batch = rightPad(randomRows(c, [7, 5, 6], 8), 0);
      const names = [...model.params.keys()];
      const vars = names.map((n) => model.params.get(n)!);
      const step = async () => {
        const { value, grads } = tf.variableGrads(
          () => lmLoss(model, batch, { checkpoint: true }).loss,
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
      expect(profile.kernels.map((k) => k.name)).toContain(FUSED.rope);
      const got = await step();
      const want = await composite(backend, step);
      for (const [i, g] of got.entries())
        expect(g, i ? `d ${names[i - 1]}` : 'loss').toEqual(want[i]);
      model.dispose();
    });
  });
}

describe.skipIf(skip !== null)(
  `the addon's rope checks its arguments${skip ? ` (${skip})` : ''}`,
  () => {
    const addon = native.available ? native.addon : (undefined as never);
    const f = (n: number) => new Float32Array(n);

    it('names a view of the wrong length, a bad dim, a bad flag', () => {
      // rows 3, heads 2, headDim 4, dim 4: x 24, tables 12
      expect(() => addon.rope(f(23), f(12), f(12), f(24), 3, 2, 4, 4, 0)).toThrow(
        /rope: x must have rows·heads·headDim elements/,
      );
      expect(() => addon.rope(f(24), f(12), f(12), f(25), 3, 2, 4, 4, 0)).toThrow(/rope: y must/);
      expect(() => addon.rope(f(24), f(11), f(12), f(24), 3, 2, 4, 4, 0)).toThrow(
        /rope: cos must have rows·dim elements/,
      );
      expect(() => addon.rope(f(24), f(12), f(9), f(24), 3, 2, 4, 4, 0)).toThrow(/rope: sin must/);
      expect(() => addon.rope(f(24), f(9), f(9), f(24), 3, 2, 4, 3, 0)).toThrow(
        /rope: dim must be an even number from 2 to headDim/,
      );
      expect(() => addon.rope(f(24), f(18), f(18), f(24), 3, 2, 4, 6, 0)).toThrow(RangeError);
      expect(() => addon.rope(f(24), f(12), f(12), f(24), 3, 2, 4, 4, 2)).toThrow(
        /rope: backward must be 0 or 1/,
      );
      expect(() => addon.rope(f(24), f(12), f(12), f(24), 0, 2, 4, 4, 0)).toThrow(/rope: rows/);
    });

    it('refuses an output that shares memory with an input, and writes nothing', () => {
      const buf = new Float32Array(48).fill(1);
      expect(() =>
        addon.rope(buf.subarray(0, 24), f(12), f(12), buf.subarray(20, 44), 3, 2, 4, 4, 0),
      ).toThrow(/rope: y overlaps x/);
      expect([...buf]).toEqual(new Array(48).fill(1));
    });

    it('computes a hand-worked head: x = [1, 2, 3, 4], cos = 0.5, sin = 0.25', () => {
      const y = f(4);
      addon.rope(Float32Array.of(1, 2, 3, 4), f(4).fill(0.5), f(4).fill(0.25), y, 1, 1, 4, 4, 0);
      // [x1·c − x3·s, x2·c − x4·s, x3·c + x1·s, x4·c + x2·s]
      expect([...y]).toEqual([0.5 - 0.75, 1 - 1, 1.5 + 0.25, 2 + 0.5]);
      addon.rope(Float32Array.of(1, 2, 3, 4), f(4).fill(0.5), f(4).fill(0.25), y, 1, 1, 4, 4, 1);
      // the transpose: [g1·c + g3·s, g2·c + g4·s, g3·c − g1·s, g4·c − g2·s]
      expect([...y]).toEqual([0.5 + 0.75, 1 + 1, 1.5 - 0.25, 2 - 0.5]);
    });
  },
);
