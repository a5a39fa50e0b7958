import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rightPad } from '../../src/data/batching/collate.js';
import { LINEAR3, nativeLinear3 } from '../../src/kernels/custom/native-linear.js';
import { withPrecision } from '../../src/kernels/precision.js';
import { RandomStream } from '../../src/kernels/random.js';
import { startRuntime } from '../../src/kernels/runtime.js';
import * as tf from '../../src/kernels/tf.js';
import { gpt2Config, llamaConfig, type ModelConfig } from '../../src/policy/config.js';
import { lmLoss } from '../../src/policy/lm-loss.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { linear } from '../../src/policy/model/layers.js';
import { expectNoLeak, useBackend } from '../helpers/backends.js';
import { bf16Product } from '../helpers/bf16.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

/**
 * q, k and v as one bf16 product call (native/bf16.c bf16Linear3, TroupeLinear3): x rounded to
 * bf16 and packed once for three weights. Each output must be the bits bf16Linear gives it alone;
 * against a float64 loop over the bf16-rounded operands within the fp32 summation bound; and its
 * gradients (TroupeLinearGrad per output, dx their fp32 sum) against float64 references and the
 * three-TroupeLinear path.
 */

/** Count of |got − want| past the fp32 bound of K sums (2^-23·(K + 4)·Σ|p|) plus `extra`·|want|. */
function outside(
  got: ArrayLike<number>,
  want: { sum: Float64Array; scale: Float64Array },
  K: number,
  extra = 0,
): number {
  let bad = 0;
  for (let i = 0; i < got.length; i++) {
    const bound = want.scale[i] * 2 ** -23 * (K + 4) + extra * Math.abs(want.sum[i]) + 1e-30;
    if (!(Math.abs(got[i] - want.sum[i]) <= bound)) bad++;
  }
  return bad;
}

const bitsOf = (f: Float32Array) => [...new Uint32Array(f.slice().buffer)];

type Addon = Extract<typeof native, { available: true }>['addon'];

describe.skipIf(skip !== null)(`bf16Linear3: q, k, v of one x${skip ? ` (${skip})` : ''}`, () => {
  const addon = (): Addon | undefined =>
    native.available && native.addon.bf16Linear3 ? native.addon : undefined;

  it('each output is bf16Linear of its weight bit for bit and within the float64 bound (biases, none, GQA widths, 1 and 2 threads)', () => {
    const a = addon();
    expect(a, 'the addon exports bf16Linear3').toBeDefined();
    if (!a?.bf16Linear3) return;
    const saved = a.threads();
    try {
      const rng = RandomStream.of({ seed: 41, step: 0, actor: 'bf16-linear3' });
      // [rows, in, q, k, v]: equal widths; GQA (k, v narrower); edges off 16 and 32; a product
      // big enough to split between threads
      for (const [R, I, O0, O1, O2] of [
        [37, 50, 29, 29, 29],
        [64, 96, 96, 32, 32],
        [33, 70, 48, 17, 17],
        [256, 384, 384, 128, 128],
      ])
        for (const threads of [1, 2])
          for (const biased of [true, false]) {
            a.setThreads(threads);
            const O = [O0, O1, O2];
            const x = rng.normal(R * I);
            const w = O.map((o) => rng.normal(I * o));
            const b = O.map((o) => (biased ? rng.normal(o) : new Float32Array(0)));
            const y = O.map((o) => new Float32Array(R * o).fill(Number.NaN));
            a.bf16Linear3(x, R, I, w[0], b[0], y[0], w[1], b[1], y[1], w[2], b[2], y[2]);
            for (let i = 0; i < 3; i++) {
              const alone = new Float32Array(R * O[i]);
              a.bf16Linear(x, w[i], b[i], R, I, O[i], alone);
              const what = `${R}×${I}→${O[i]} output ${i} threads ${threads} bias ${biased}`;
              expect(bitsOf(y[i]), what).toEqual(bitsOf(alone));
              const want = bf16Product(x, w[i], R, O[i], I);
              if (biased)
                for (let j = 0; j < want.sum.length; j++) {
                  want.sum[j] += b[i][j % O[i]];
                  want.scale[j] += Math.abs(b[i][j % O[i]]);
                }
              expect(outside(y[i], want, I), what).toBe(0);
            }
          }
    } finally {
      a.setThreads(saved);
    }
  });

  it('bf16Linear3Backward: each output bf16LinearBackward gives bit for bit (GQA widths, 1 and 2 threads)', () => {
    const a = addon();
    const back3 = a?.bf16Linear3Backward?.bind(a);
    expect(back3, 'the addon exports bf16Linear3Backward').toBeDefined();
    if (!a?.bf16LinearBackward || !back3) return;
    const saved = a.threads();
    try {
      const rng = RandomStream.of({ seed: 42, step: 0, actor: 'bf16-linear3-grad' });
      for (const [R, I, O0, O1, O2] of [
        [37, 50, 29, 29, 29],
        [33, 70, 48, 17, 17],
        [256, 384, 384, 128, 128],
      ])
        for (const threads of [1, 2]) {
          a.setThreads(threads);
          const O = [O0, O1, O2];
          const x = rng.normal(R * I);
          const w = O.map((o) => rng.normal(I * o));
          const dy = O.map((o) => rng.normal(R * o));
          const dx = O.map(() => new Float32Array(R * I).fill(Number.NaN));
          const dw = O.map((o) => new Float32Array(I * o).fill(Number.NaN));
          const db = O.map((o) => new Float32Array(o).fill(Number.NaN));
          back3(x, R, I, dy, w, dx, dw, db);
          for (let i = 0; i < 3; i++) {
            const one = [
              new Float32Array(R * I),
              new Float32Array(I * O[i]),
              new Float32Array(O[i]),
            ];
            a.bf16LinearBackward(dy[i], x, w[i], R, I, O[i], one[0], one[1], one[2]);
            const what = `${R}×${I}→${O[i]} output ${i} threads ${threads}`;
            expect(bitsOf(dx[i]), `dx ${what}`).toEqual(bitsOf(one[0]));
            expect(bitsOf(dw[i]), `dW ${what}`).toEqual(bitsOf(one[1]));
            expect(bitsOf(db[i]), `db ${what}`).toEqual(bitsOf(one[2]));
            expect(
              outside(dw[i], bf16Product(x, dy[i], I, O[i], R, true, false), R),
              `dW ${what}`,
            ).toBe(0);
          }
        }
    } finally {
      a.setThreads(saved);
    }
  });

  it('bad arguments name the argument', () => {
    const a = addon();
    const linear3 = a?.bf16Linear3?.bind(a);
    expect(linear3, 'the addon exports bf16Linear3').toBeDefined();
    if (!linear3) return;
    const f = (n: number) => new Float32Array(n);
    // x 4 rows × 3; W1 one value short
    expect(() =>
      linear3(f(12), 4, 3, f(6), f(0), f(8), f(5), f(0), f(8), f(6), f(0), f(8)),
    ).toThrow(/w1/);
    expect(() =>
      linear3(f(12), 4, 3, f(6), f(1), f(8), f(6), f(0), f(8), f(6), f(0), f(8)),
    ).toThrow(/b0/);
    expect(() =>
      linear3(f(12), 4, 3, f(6), f(0), f(8), f(6), f(0), f(7), f(6), f(0), f(8)),
    ).toThrow(/y1/);
    expect(() =>
      linear3(f(11), 4, 3, f(6), f(0), f(8), f(6), f(0), f(8), f(6), f(0), f(8)),
    ).toThrow(/x/);
    const back3 = a?.bf16Linear3Backward?.bind(a);
    if (!back3) return;
    // x 4 rows × 3, out 2 each: dw[1] one value short; dy[2] not whole rows; two dx only
    const three = (n: number) => [f(n), f(n), f(n)];
    const args = (dy: Float32Array[], dw: Float32Array[], dx = three(12)) =>
      [f(12), 4, 3, dy, three(6), dx, dw, three(2)] as const;
    expect(() => back3(...args(three(8), [f(6), f(5), f(6)]))).toThrow(/dw\[1\]/);
    expect(() => back3(...args([f(8), f(8), f(7)], three(6)))).toThrow(/dy\[2\]/);
    expect(() => back3(...args(three(8), three(6), [f(12), f(12)]))).toThrow(/dx\[2\]/);
  });
});

/** Runs f with TroupeLinear3 unregistered (nativeLinear3 declines: three TroupeLinear). */
function withoutLinear3<T>(f: () => T): T {
  const k = tf.getKernel(LINEAR3, 'wasm');
  if (!k) return f();
  tf.unregisterKernel(LINEAR3, 'wasm');
  try {
    return f();
  } finally {
    tf.registerKernel(k);
  }
}

describe.skipIf(skip !== null)(`TroupeLinear3 on wasm (bf16)${skip ? ` (${skip})` : ''}`, () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('is taken under bf16 products only: fp32, fewer than 32 rows, mixed biases decline', () => {
    const x = tf.zeros([2, 20, 8]);
    const w = [tf.zeros([8, 8]), tf.zeros([8, 4]), tf.zeros([8, 4])] as const;
    const b = [tf.zeros([8]), tf.zeros([4]), tf.zeros([4])] as const;
    const none = [undefined, undefined, undefined] as const;
    expect(nativeLinear3(x, w, b)).toBeUndefined(); // fp32
    const small = tf.zeros([1, 20, 8]);
    expect(withPrecision('bf16', () => nativeLinear3(small, w, b))).toBeUndefined(); // 20 rows
    const mixed = [b[0], undefined, b[2]] as const;
    expect(withPrecision('bf16', () => nativeLinear3(x, w, mixed))).toBeUndefined();
    const got = [
      withPrecision('bf16', () => nativeLinear3(x, w, b)),
      withPrecision('bf16', () => nativeLinear3(x, w, none)),
    ];
    for (const g of got) {
      expect(g?.map((t) => t.shape)).toEqual([
        [2, 20, 8],
        [2, 20, 4],
        [2, 20, 4],
      ]);
    }
    tf.dispose([x, small, ...w, ...b, ...got.flatMap((g) => g ?? [])]);
  });

  it.each([
    ['biases, GQA widths', 40, 48, [48, 16, 16], true],
    ['no biases, equal widths', 72, 32, [32, 32, 32], false],
  ] as [string, number, number, [number, number, number], boolean][])(
    '%s: forward bit for bit as three TroupeLinear; dW, db, dx against float64 and the three-product path',
    async (_name, R, I, O, biased) => {
      const rng = RandomStream.of({ seed: 43, step: R, actor: 'linear3-grad' });
      const xv = rng.normal(R * I);
      const wv = O.map((o) => rng.normal(I * o));
      const bv = O.map((o) => rng.normal(o));
      const cv = O.map((o) => rng.normal(R * o)); // the cotangents: loss = Σ_i Σ c_i ⊙ y_i
      await expectNoLeak(() => {
        const x = tf.tensor(xv, [2, R / 2, I]);
        const w = O.map((o, i) => tf.tensor(wv[i], [I, o]));
        const b = O.map((o, i) => tf.tensor(bv[i], [o]));
        const c = O.map((o, i) => tf.tensor(cv[i], [2, R / 2, o]));
        const params = [x, ...w, ...(biased ? b : [])];
        const run = (one: boolean) =>
          withPrecision('bf16', () => {
            // params: x, W0..W2 (, b0..b2)
            const forward = (ps: tf.Tensor[]) => {
              const [xi, w0, w1, w2, b0, b1, b2] = ps;
              const ys = one
                ? nativeLinear3(xi, [w0, w1, w2], [b0, b1, b2])
                : [w0, w1, w2].map((wi, i) => linear(xi, wi, [b0, b1, b2][i]));
              if (!ys) throw new Error('TroupeLinear3 declined');
              return ys;
            };
            const ys = tf.tidy(() => forward(params));
            const grads = tf.grads((...ps: tf.Tensor[]) =>
              tf.addN(forward(ps).map((y, i) => tf.sum(tf.mul(y, c[i])))),
            )(params);
            const out = {
              y: ys.map((t) => t.dataSync() as Float32Array),
              g: grads.map((t) => t.dataSync() as Float32Array),
            };
            tf.dispose([...ys, ...grads]);
            return out;
          });
        const one = run(true);
        const three = withoutLinear3(() => run(false));
        // forward: each output the bits of its own TroupeLinear
        for (let i = 0; i < 3; i++) expect(bitsOf(one.y[i]), `y${i}`).toEqual(bitsOf(three.y[i]));
        // gradients: dx = Σ_i c_i·W_iᵀ (three bf16 products of K = out_i, summed in fp32)
        const dxRef = { sum: new Float64Array(R * I), scale: new Float64Array(R * I) };
        for (let i = 0; i < 3; i++) {
          const r = bf16Product(cv[i], wv[i], R, I, O[i], false, true);
          for (let j = 0; j < R * I; j++) {
            dxRef.sum[j] += r.sum[j];
            dxRef.scale[j] += r.scale[j];
          }
        }
        const Kx = O[0] + O[1] + O[2];
        expect(outside(one.g[0], dxRef, Kx), 'dx').toBe(0);
        expect(outside(three.g[0], dxRef, Kx), 'dx (three products)').toBe(0);
        for (let i = 0; i < 3; i++) {
          // dW_i = xᵀ·c_i, db_i = Σ_rows c_i (fp32 sums of R values)
          expect(
            outside(one.g[1 + i], bf16Product(xv, cv[i], I, O[i], R, true, false), R),
            `dW${i}`,
          ).toBe(0);
          expect(bitsOf(one.g[1 + i]), `dW${i} as the three-product path's`).toEqual(
            bitsOf(three.g[1 + i]),
          );
          if (!biased) continue;
          const db = { sum: new Float64Array(O[i]), scale: new Float64Array(O[i]) };
          for (let r = 0; r < R; r++)
            for (let o = 0; o < O[i]; o++) {
              db.sum[o] += cv[i][r * O[i] + o];
              db.scale[o] += Math.abs(cv[i][r * O[i] + o]);
            }
          expect(outside(one.g[4 + i], db, R), `db${i}`).toBe(0);
          expect(bitsOf(one.g[4 + i]), `db${i} as the three-product path's`).toEqual(
            bitsOf(three.g[4 + i]),
          );
        }
        tf.dispose([x, ...w, ...b, ...c]);
      });
    },
  );
});

describe.skipIf(skip !== null)(
  `a bf16 model's q, k, v as one call${skip ? ` (${skip})` : ''}`,
  () => {
    afterAll(() => startRuntime({ backend: 'wasm' }));
    const configs: [string, ModelConfig][] = [
      ['gpt2 (q, k, v biases)', gpt2Config({ vocabSize: 64, layers: 2, heads: 4, hidden: 64 })],
      [
        'llama (GQA: k, v narrower, no biases)',
        llamaConfig({
          vocabSize: 64,
          layers: 2,
          heads: 4,
          kvHeads: 2,
          hidden: 64,
          intermediate: 96,
        }),
      ],
    ];
    it.each(configs)(
      '%s: TroupeLinear3 runs; loss bit for bit and every gradient within 1e-3 of the largest as with three TroupeLinear',
      async (_, config) => {
        await startRuntime({ backend: 'wasm', precision: 'bf16' });
        const model = CausalLM.init(config, { seed: 3 });
        const batch = rightPad(
          Array.from({ length: 4 }, (_, r) =>
            Array.from({ length: 24 }, (_, t) => (r * 7 + t * 5) % 64),
          ),
          0,
        );
        const vars = [...model.params.values()] as tf.Variable[];
        const run = () => {
          const { value, grads } = tf.variableGrads(() => lmLoss(model, batch).loss, vars);
          const out = {
            loss: value.dataSync()[0],
            grads: vars.map((v) => grads[v.name].dataSync() as Float32Array),
          };
          tf.dispose([value, ...Object.values(grads)]);
          return out;
        };
        try {
          const before = tf.memory().numTensors;
          const prof = await tf.profile(() => tf.tidy(() => lmLoss(model, batch).loss));
          tf.dispose(prof.result);
          expect(prof.kernelNames).toContain(LINEAR3);
          const one = run();
          const three = withoutLinear3(run);
          expect(tf.memory().numTensors).toBe(before);
          expect(one.loss).toBe(three.loss);
          for (let i = 0; i < vars.length; i++) {
            const [g1, g3] = [one.grads[i], three.grads[i]];
            const top = g3.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
            expect(top, vars[i].name).toBeGreaterThan(0);
            let worst = 0;
            for (let j = 0; j < g3.length; j++) worst = Math.max(worst, Math.abs(g1[j] - g3[j]));
            expect(worst, vars[i].name).toBeLessThanOrEqual(1e-3 * top);
          }
        } finally {
          model.dispose();
        }
      },
    );
  },
);
