import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RandomStream } from '../../src/kernels/random.js';
import {
  blockAbsmax,
  DYNAMIC_CODE,
  dequantizeNF4,
  NF4_CODE,
  nf4Bytes,
  quantizeNF4,
} from '../../src/policy/quantize/nf4.js';

/**
 * The paper's procedure (QLoRA §3, Dettmers et al. 2023) written out again in float64, plainly:
 * nearest code by a full scan (no midpoints, no binary search), absmax by a loop, the double
 * quantisation's mean by a loop. Only what bitsandbytes does in fp32 (x·(1/absmax) and the
 * centred statistics) is rounded to fp32 here too, so that the two agree code for code.
 */
const f = Math.fround;

/** The NF4 values as the QLoRA paper defines them: quantiles of N(0, 1), normalised to [-1, 1]. */
function paperNF4(): number[] {
  // bitsandbytes' create_normal_map(offset = 0.9677083): 8 positive quantiles Φ⁻¹ on
  // linspace(δ, 0.5, 9)[:-1], 7 negative on linspace(δ, 0.5, 8)[:-1], 0, divided by the max.
  const probit = (p: number) => {
    // Φ⁻¹ by bisection on erf (float64): independent of any library.
    const cdf = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2));
    let lo = -10;
    let hi = 10;
    for (let i = 0; i < 200; i++) {
      const m = (lo + hi) / 2;
      if (cdf(m) < p) lo = m;
      else hi = m;
    }
    return (lo + hi) / 2;
  };
  const lin = (a: number, b: number, n: number) =>
    Array.from({ length: n }, (_, i) => f(a + ((b - a) * i) / (n - 1)));
  const pos = lin(0.9677083, 0.5, 9).slice(0, -1).map(probit);
  const neg = lin(0.9677083, 0.5, 8)
    .slice(0, -1)
    .map((p) => -probit(p));
  const v = [...pos, 0, ...neg].sort((a, b) => a - b);
  const max = Math.max(...v);
  return v.map((x) => x / max);
}

/** erf by its Taylor series (|x| ≤ 3) or continued fraction (float64, ~1e-15). */
function erf(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  if (a < 3) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 100; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return (s * 2 * sum) / Math.sqrt(Math.PI);
  }
  let cf = 0;
  for (let n = 60; n >= 1; n--) cf = n / 2 / (a + cf);
  return s * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + cf));
}

const relErr = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);

function argminAbs(x: number, code: ArrayLike<number>): number {
  let best = 0;
  for (let k = 1; k < code.length; k++)
    if (Math.abs(x - code[k]) < Math.abs(x - code[best])) best = k;
  return best;
}

interface RefQuant {
  idx: number[];
  absmax: number[];
}

function refBlockwise(x: ArrayLike<number>, block: number, code: ArrayLike<number>): RefQuant {
  const idx: number[] = [];
  const absmax: number[] = [];
  for (let b = 0; b * block < x.length; b++) {
    const part = Array.from(x).slice(b * block, (b + 1) * block);
    let m = 0;
    for (const v of part) if (Math.abs(v) > m) m = Math.abs(v);
    absmax.push(m);
    for (const v of part) {
      const s = m === 0 ? 0 : Math.min(1, Math.max(-1, f(v * f(1 / m))));
      idx.push(argminAbs(s, code));
    }
  }
  return { idx, absmax };
}

/** Quantise then dequantise by the paper's procedure, in float64. */
function reference(w: Float32Array) {
  const q4 = refBlockwise(w, 64, NF4_CODE);
  let sum = 0;
  for (const a of q4.absmax) sum += a;
  const offset = f(sum / q4.absmax.length);
  const centred = q4.absmax.map((a) => f(a - offset));
  const q8 = refBlockwise(centred, 256, DYNAMIC_CODE);
  const absmax = q4.absmax.map((_, b) => DYNAMIC_CODE[q8.idx[b]] * q8.absmax[b >> 8] + offset);
  const deq = q4.idx.map((k, i) => NF4_CODE[k] * absmax[Math.floor(i / 64)]);
  return { q4, q8, offset, absmax, deq };
}

function nibbles(codes: Uint8Array, n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i & 1 ? codes[i >> 1] & 15 : codes[i >> 1] >> 4));
}

function heavyTailed(n: number, seed: number): Float32Array {
  const r = RandomStream.of({ seed, step: 0, actor: 'test', purpose: 'nf4' });
  const g = r.normal(n, 0, 1);
  const s = r.normal(n, 0, 0.5);
  return Float32Array.from(g, (x, i) => 0.02 * x * Math.exp(s[i]));
}

describe('NF4 code tables', () => {
  it('NF4 is the normal-quantile code of the paper (bitsandbytes constants)', () => {
    const paper = paperNF4();
    for (let k = 0; k < 16; k++) expect(NF4_CODE[k]).toBeCloseTo(paper[k], 6);
    expect(NF4_CODE[7]).toBe(0);
    expect([NF4_CODE[0], NF4_CODE[15]]).toEqual([-1, 1]);
  });

  it('the 8-bit dynamic map is bitsandbytes create_dynamic_map(signed=True) (to 1 fp32 ulp)', () => {
    const fixture = JSON.parse(
      readFileSync(new URL('../fixtures/quantize/nf4.json', import.meta.url), 'utf8'),
    );
    // PyTorch's float32 linspace is 1 ulp off the exact midpoints for some values
    for (let k = 0; k < 256; k++)
      expect(Math.abs(DYNAMIC_CODE[k] - fixture.dynamic_map[k])).toBeLessThanOrEqual(
        Math.abs(fixture.dynamic_map[k]) * 2 ** -23,
      );
    // its structure by hand: 127 negatives, 0 at 127, 1 at 255, 0.99296875 = 10⁰·(0.9859375+1)/2
    expect(DYNAMIC_CODE[127]).toBe(0);
    expect(DYNAMIC_CODE[255]).toBe(1);
    expect(DYNAMIC_CODE[254]).toBeCloseTo(0.99296875, 7);
    expect(DYNAMIC_CODE[128]).toBeCloseTo(0.55e-6, 12); // 10⁻⁶ · (0.1 + 1)/2
  });
});

describe('quantizeNF4 / dequantizeNF4', () => {
  it('equals bitsandbytes’ CPU procedure on its golden tensor (PyTorch fixture)', () => {
    const fx = JSON.parse(
      readFileSync(new URL('../fixtures/quantize/nf4.json', import.meta.url), 'utf8'),
    );
    const w = Float32Array.from(fx.weight.data as number[]);
    const q = quantizeNF4(w, fx.weight.shape);
    expect(Array.from(q.codes)).toEqual(fx.packed);
    // PyTorch sums the mean in float32; Troupe in float64 (1 ulp here)
    expect(q.offset).toBeCloseTo(fx.offset, 7);
    expect(Array.from(q.absmaxCodes)).toEqual(fx.absmax_codes);
    for (let c = 0; c < fx.absmax_scale.length; c++)
      expect(relErr(q.absmaxScale[c], fx.absmax_scale[c])).toBeLessThanOrEqual(2 ** -22);
    const d = dequantizeNF4(q);
    for (let i = 0; i < d.length; i++)
      expect(relErr(d[i], fx.dequantized[i])).toBeLessThanOrEqual(2 ** -21);
  });

  it.each([
    ['whole blocks', 64, 96],
    ['blocks straddling rows, a partial last block', 7, 45],
    ['more than 256 blocks (two absmax groups)', 130, 130],
    ['odd count (last byte half used)', 3, 11],
  ])('agrees with the float64 reference: %s', (_name, rows, cols) => {
    const w = heavyTailed(rows * cols, rows + cols);
    const q = quantizeNF4(w, [rows, cols]);
    const ref = reference(w);
    const n = rows * cols;
    expect(q.codes.length).toBe(Math.ceil(n / 2));
    expect(nibbles(q.codes, n)).toEqual(ref.q4.idx);
    expect(q.offset).toBe(ref.offset);
    expect(Array.from(q.absmaxCodes)).toEqual(ref.q8.idx);
    expect(Array.from(q.absmaxScale)).toEqual(ref.q8.absmax.map(f));
    for (let b = 0; b < ref.absmax.length; b++)
      expect(blockAbsmax(q, b)).toBeCloseTo(ref.absmax[b], 7);
    const d = dequantizeNF4(q);
    let err = 0;
    for (let i = 0; i < n; i++) {
      expect(d[i]).toBeCloseTo(ref.deq[i], 7);
      err = Math.max(err, Math.abs(d[i] - w[i]));
    }
    // every value lands within half the widest NF4 gap of its block's (dequantised) absmax
    const widest = 1 - 0.6961928009986877; // NF4's widest gap, -1 to its neighbour
    for (let i = 0; i < n; i++) {
      const a = ref.absmax[Math.floor(i / 64)];
      const exact = ref.q4.absmax[Math.floor(i / 64)];
      expect(Math.abs(d[i] - w[i])).toBeLessThanOrEqual(
        (widest / 2) * exact + Math.abs(a - exact) + 1e-9,
      );
    }
    expect(err).toBeGreaterThan(0); // 4 bits do lose something
  });

  it('an all-zero block keeps its zeros (absmax 0, code 7), next to ordinary blocks', () => {
    const w = heavyTailed(192, 5);
    w.fill(0, 64, 128);
    const q = quantizeNF4(w, [3, 64]);
    expect(nibbles(q.codes, 192).slice(64, 128)).toEqual(Array(64).fill(7));
    const d = dequantizeNF4(q);
    expect(Array.from(d.subarray(64, 128))).toEqual(Array(64).fill(0));
  });

  it('codes each NF4 value (times its block absmax) as itself', () => {
    const w = Float32Array.from(NF4_CODE, (x) => x * 0.5);
    const q = quantizeNF4(w, [2, 8]);
    expect(nibbles(q.codes, 16)).toEqual(Array.from({ length: 16 }, (_, k) => k));
  });

  it('stores 4.127 bits a weight (codes, 8-bit statistics, fp32 scales per 256 blocks)', () => {
    const q = quantizeNF4(heavyTailed(64 * 512, 1), [64, 512]);
    expect(nf4Bytes(q)).toBe((64 * 512) / 2 + 512 + 2 * 4 + 4);
    expect((8 * nf4Bytes(q)) / (64 * 512)).toBeCloseTo(4 + 8 / 64 + 32 / (64 * 256), 2);
  });

  it('refuses a bad shape, naming it', () => {
    expect(() => quantizeNF4(new Float32Array(6), [2, 4])).toThrow(/6 values for shape \[2, 4\]/);
    expect(() => quantizeNF4(new Float32Array(0), [0, 4])).toThrow(/shape \[0,4\]/);
  });
});
