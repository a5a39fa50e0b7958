import { describe, expect, it } from 'vitest';
import { type NF4Matrix, nativeNF4Linear } from '../../src/kernels/custom/native-nf4-linear.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { DYNAMIC_CODE, dequantizeNF4, quantizeNF4 } from '../../src/policy/quantize/nf4.js';
import { expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

const draw = (n: number, seed: number, std = 1) =>
  Float32Array.from(
    RandomStream.of({ seed, step: 0, actor: 'test', purpose: 'nf4-kernel' }).normal(n, 0, std),
  );

/** An NF4 matrix [out, in] of random weights, and its dequantised values (TypeScript). */
function matrix(out: number, inDim: number, seed: number): { q: NF4Matrix; deq: Float32Array } {
  const t = quantizeNF4(draw(out * inDim, seed, 0.05), [out, inDim]);
  return { q: { ...t, absmaxCode: DYNAMIC_CODE }, deq: dequantizeNF4(t) };
}

/** y = x·Q̂ᵀ (forward) or dx = dy·Q̂ (backward), float64 loops over the dequantised Q̂ [out, in]. */
function reference(g: Float32Array, deq: Float32Array, rows: number, out: number, inDim: number) {
  const forward = g.length === rows * inDim;
  const res = new Float64Array(rows * (forward ? out : inDim));
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inDim; i++) {
        if (forward) res[r * out + o] += g[r * inDim + i] * deq[o * inDim + i];
        else res[r * inDim + i] += g[r * out + o] * deq[o * inDim + i];
      }
  return res;
}

const args = (q: NF4Matrix) =>
  [q.codes, q.absmaxCodes, q.absmaxScale, q.absmaxCode, q.offset] as const;

describe.skipIf(skip !== null)('native NF4 kernels (native/nf4.c)', () => {
  const addon = native.available ? native.addon : (undefined as never);

  it('nf4Dequantize equals the TypeScript dequantisation bit for bit, for any range', () => {
    const { q, deq } = matrix(9, 45, 1); // 405 values: 7 blocks, the last partial
    for (const [start, count] of [
      [0, 405],
      [1, 100], // odd start: a low nibble first
      [63, 3], // across a block boundary
      [64, 64],
      [400, 5], // the partial last block, ending on a high nibble
      [7, 0],
    ]) {
      const y = new Float32Array(count);
      addon.nf4Dequantize(...args(q), start, count, y);
      expect(Array.from(y)).toEqual(Array.from(deq.subarray(start, start + count)));
    }
  });

  it('nf4QuantizeBlocks gives the TypeScript codes, ties and zero blocks included', () => {
    const w = draw(64 * 9 + 13, 12, 0.05); // a partial last block
    w.fill(0, 64, 128); // an all-zero block
    w[200] = 0.05; // block 3's absmax, and a value next to the midpoint of NF4 codes 11 and 12
    w[201] = 0.05 * ((0.33791524171829224 + 0.44070982933044434) / 2);
    const shape: [number, number] = [1, w.length];
    const fast = quantizeNF4(w, shape);
    const slow = quantizeNF4(w, shape, { native: false });
    expect(Array.from(fast.codes)).toEqual(Array.from(slow.codes));
    expect(Array.from(fast.absmaxCodes)).toEqual(Array.from(slow.absmaxCodes));
    expect(Array.from(fast.absmaxScale)).toEqual(Array.from(slow.absmaxScale));
    expect(fast.offset).toBe(slow.offset);
    expect(() => addon.nf4QuantizeBlocks(w, new Uint8Array(10), new Float32Array(10))).toThrow(
      /codes is shorter than ⌈n\/2⌉/,
    );
  });

  it.each([
    ['auto tiles (one)', 0],
    ['one row a tile', 1],
    ['3 rows a tile, a partial last tile', 3],
  ])('nf4Linear and nf4LinearGradX equal x·Q̂ᵀ and dy·Q̂ in float64: %s', (_n, tileRows) => {
    const [rows, out, inDim] = [6, 11, 70]; // in·out not a multiple of 64: blocks straddle rows
    const { q, deq } = matrix(out, inDim, 2);
    const x = draw(rows * inDim, 3);
    const y = new Float32Array(rows * out);
    addon.nf4Linear(x, ...args(q), rows, inDim, out, tileRows, y);
    expectClose(y, reference(x, deq, rows, out, inDim), { atol: 1e-5, rtol: 1e-5, what: 'y' });
    const dy = draw(rows * out, 4);
    const dx = new Float32Array(rows * inDim);
    dx.fill(Number.NaN); // the first tile writes (β = 0): nothing of dx is read
    addon.nf4LinearGradX(dy, ...args(q), rows, inDim, out, tileRows, dx);
    expectClose(dx, reference(dy, deq, rows, out, inDim), { atol: 1e-5, rtol: 1e-5, what: 'dx' });
  });

  it('one row (decoding) and zero rows', () => {
    const { q, deq } = matrix(5, 64, 5);
    const x = draw(64, 6);
    const y = new Float32Array(5);
    addon.nf4Linear(x, ...args(q), 1, 64, 5, 0, y);
    expectClose(y, reference(x, deq, 1, 5, 64), { atol: 1e-6, rtol: 1e-5 });
    expect(() =>
      addon.nf4Linear(new Float32Array(0), ...args(q), 0, 64, 5, 0, new Float32Array(0)),
    ).not.toThrow();
  });

  it('refuses bad arguments, naming them', () => {
    const { q } = matrix(4, 64, 7);
    const x = new Float32Array(2 * 64);
    const y = new Float32Array(2 * 4);
    const call = (over: Partial<Record<string, unknown>>) => () =>
      addon.nf4Linear(
        (over.x ?? x) as Float32Array,
        (over.codes ?? q.codes) as Uint8Array,
        (over.absmaxCodes ?? q.absmaxCodes) as Uint8Array,
        q.absmaxScale,
        (over.absmaxCode ?? q.absmaxCode) as Float32Array,
        q.offset,
        2,
        64,
        4,
        0,
        (over.y ?? y) as Float32Array,
      );
    expect(call({ codes: new Float32Array(128) })).toThrow(/nf4Linear: codes must be a Uint8Array/);
    expect(call({ codes: q.codes.subarray(1) })).toThrow(/codes is shorter than ⌈n\/2⌉/);
    expect(call({ absmaxCodes: q.absmaxCodes.subarray(1) })).toThrow(/absmaxCodes is shorter/);
    expect(call({ absmaxCode: new Float32Array(16) })).toThrow(/absmaxCode is shorter than 256/);
    expect(call({ x: new Float32Array(64) })).toThrow(/x is shorter than rows·in/);
    expect(call({ y: x })).toThrow(/y is shorter than rows·out|y overlaps x/);
    expect(call({ y: x.subarray(0, 8) })).toThrow(/y overlaps x/);
    expect(() => (addon.nf4Linear as (...a: unknown[]) => void)(x)).toThrow(/takes 11 arguments/);
  });
});

describe.skipIf(skip !== null)('TroupeNF4Linear through tfjs', () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    it(`${backend}: forward x·Q̂ᵀ, gradient dy·Q̂ for x only, no leak`, async () => {
      await useBackend(backend);
      const [B, T, out, inDim] = [2, 3, 13, 40];
      const { q, deq } = matrix(out, inDim, 8);
      const xs = draw(B * T * inDim, 9);
      const dys = draw(B * T * out, 10);
      await expectNoLeak(async () => {
        const x = tf.tensor(xs, [B, T, inDim]);
        const dy = tf.tensor(dys, [B, T, out]);
        const y = nativeNF4Linear(x, q, 4)!;
        expect(y.shape).toEqual([B, T, out]);
        expectClose(await read(y), reference(xs, deq, B * T, out, inDim), { rtol: 1e-5 });
        // the loss Σ dy ⊙ y: its gradient in x is dy·Q̂
        const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(nativeNF4Linear(v, q, 4)!, dy)))(x);
        expect(g.shape).toEqual([B, T, inDim]);
        expectClose(await read(g), reference(dys, deq, B * T, out, inDim), { rtol: 1e-5 });
        tf.dispose([x, dy, y, g]);
      });
    });
  }

  it('declines what it does not take (another width, int32)', async () => {
    await useBackend('wasm');
    const { q } = matrix(4, 64, 11);
    const x = tf.zeros([2, 63]);
    expect(nativeNF4Linear(x, q)).toBeUndefined();
    const xi = tf.zeros([2, 64], 'int32');
    expect(nativeNF4Linear(xi, q)).toBeUndefined();
    tf.dispose([x, xi]);
  });
});
