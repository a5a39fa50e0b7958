import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/kernels/tf.js';
import { clipGradNorm, reference as ref } from '../../../src/policy/optim/index.js';
import {
  BACKEND_CASES,
  expectClose,
  expectNoLeak,
  read,
  useBackend,
} from '../../helpers/backends.js';
import { disposeAll, f32, normal } from './helpers.js';

const SHAPES: Record<string, number[]> = { w: [4, 5], b: [5], e: [3, 2, 2] };
const DATA = Object.fromEntries(
  Object.entries(SHAPES).map(([n, s]) => [
    n,
    normal(
      s.reduce((a, b) => a * b, 1),
      0,
      n,
    ),
  ]),
);
/** Σ of 37 squares of N(0, 1) draws: the reference norm is about 6. */
const gradsOf = (data: Record<string, ArrayLike<number>>) =>
  new Map(Object.entries(SHAPES).map(([n, s]) => [n, f32(data[n], s)]));

/** Clip, read the results, dispose them, and check nothing else was left behind. */
async function clipAndRead(data: Record<string, ArrayLike<number>>, maxNorm: number) {
  const grads = gradsOf(data);
  const out = await expectNoLeak(async () => {
    const r = await clipGradNorm(grads, maxNorm);
    const vals = new Map<string, Float64Array>();
    for (const [n, g] of r.grads) vals.set(n, await read(g));
    disposeAll(r.grads);
    return { ...r, vals };
  });
  disposeAll(grads);
  return out;
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`clipGradNorm on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it('scales by maxNorm/(‖g‖ + 1e-6) when over the max, as the plain loop does', async () => {
      const want = ref.clipGradNorm(Object.values(DATA), 1.5);
      expect(want.totalNorm).toBeGreaterThan(1.5);
      const got = await clipAndRead(DATA, 1.5);
      expect(got.totalNorm).toBeCloseTo(want.totalNorm, 5);
      expect(got.coef).toBeCloseTo(1.5 / (want.totalNorm + 1e-6), 6);
      for (const [i, name] of Object.keys(SHAPES).entries()) {
        expectClose(got.vals.get(name)!, want.grads[i], { what: name });
      }
      let sq = 0;
      for (const v of got.vals.values()) for (const x of v) sq += x * x;
      expect(Math.sqrt(sq)).toBeCloseTo(1.5, 4);
    });

    it('computes the norm of many gradients (a model has dozens; WebGPU limits buffers per pipeline)', async () => {
      const many = new Map(
        Array.from({ length: 40 }, (_, i) => [`p${i}`, f32(normal(6, 0, `p${i}`), [2, 3])]),
      );
      let sq = 0;
      for (const g of many.values()) for (const x of await read(g)) sq += x * x;
      const r = await clipGradNorm(many, 1e9);
      expect(r.totalNorm).toBeCloseTo(Math.sqrt(sq), 4);
      disposeAll(r.grads);
      disposeAll(many);
    });

    it('leaves grads exactly as they were when under the max', async () => {
      const got = await clipAndRead(DATA, 100);
      expect(got.coef).toBe(1);
      for (const [name, v] of got.vals) expect(v).toEqual(Float64Array.from(DATA[name]));
    });

    it('reports a NaN or infinite norm and does not scale', async () => {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
        const data = { ...DATA, b: Float32Array.from(DATA.b) };
        data.b[2] = bad;
        const got = await clipAndRead(data, 1);
        expect(got.totalNorm).toBe(bad); // Object.is: NaN is NaN
        expect(got.coef).toBe(1);
        expect(got.vals.get('w')).toEqual(Float64Array.from(DATA.w));
      }
    });
  });
}

describe('clipGradNorm edge cases', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('gives 0 for no grads and refuses a bad maxNorm', async () => {
    expect((await clipGradNorm(new Map(), 1)).totalNorm).toBe(0);
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(clipGradNorm(new Map(), bad)).rejects.toThrow(
        'maxNorm must be a finite number > 0',
      );
    }
    const g = new Map([['x', tf.zeros([3])]]);
    const r = await clipGradNorm(g, 1);
    expect(r.totalNorm).toBe(0);
    disposeAll(r.grads);
    disposeAll(g);
  });
});
