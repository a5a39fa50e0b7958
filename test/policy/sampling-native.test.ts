import { describe, expect, it } from 'vitest';
import type { NativeAddon } from '../../src/kernels/native.js';
import { RandomStream } from '../../src/kernels/random.js';
import {
  type SamplingOptions,
  sampleRows,
  sampleToken,
  sampleTokenJs,
} from '../../src/policy/sampling.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

/**
 * native/sample.c against the JavaScript it replaces: exp64 against Math.exp to the bit over
 * millions of inputs, and sampleToken (through the addon) against sampleTokenJs (Math.exp and
 * RandomStream.categorical): the same tokens, log-probabilities and draws.
 */
const addon = (native.available ? native.addon : undefined) as NativeAddon;
const stream = (purpose: string) => RandomStream.of({ seed: 3, step: 0, actor: 't', purpose });

/** The bits of a double, NaNs as one (Math.exp and C may carry different NaN payloads). */
function same(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
}

/** How many of x's exps differ from Math.exp's, and the first few. */
function mismatches(x: Float64Array): { count: number; first: string[] } {
  const y = new Float64Array(x.length);
  addon.exp64(x, y);
  let count = 0;
  const first: string[] = [];
  for (let i = 0; i < x.length; i++) {
    const want = Math.exp(x[i]);
    if (!same(y[i], want)) {
      count++;
      if (first.length < 5) first.push(`exp(${x[i]}): ${y[i]} vs Math.exp ${want}`);
    }
  }
  return { count, first };
}

/** Doubles from `draw`, n of them. */
function fill(n: number, draw: (r: RandomStream) => number, purpose: string): Float64Array {
  const r = stream(purpose);
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = draw(r);
  return x;
}

/** The doubles next to x (up and down `steps` ulps). */
function around(x: number, steps = 3): number[] {
  const b = new Float64Array([x]);
  const u = new BigInt64Array(b.buffer);
  const out: number[] = [];
  for (let s = -steps; s <= steps; s++) {
    const v = new BigInt64Array([u[0] + BigInt(s)]);
    out.push(new Float64Array(v.buffer)[0]);
  }
  return out;
}

/** A double from its high and low words. */
const word = (hi: number, lo = 0) => new Float64Array(new Uint32Array([lo, hi]).buffer)[0];

describe.skipIf(skip !== null)('native exp64: Math.exp to the bit', () => {
  it('the range sampling sees, [−750, 0], and 0 itself', () => {
    const x = fill(4_000_000, (r) => -750 * r.nextDouble(), 'sampling-range');
    x[0] = 0;
    x[1] = -0;
    expect(mismatches(x)).toEqual({ count: 0, first: [] });
  });

  it('[−1, 1], [−710, 710], and magnitudes from 2^-1080 to 2^10 of either sign', () => {
    const small = fill(1_000_000, (r) => 2 * r.nextDouble() - 1, 'unit');
    const wide = fill(1_000_000, (r) => 1420 * r.nextDouble() - 710, 'wide');
    const scales = fill(
      2_000_000,
      (r) => (r.nextUint32() & 1 ? -1 : 1) * (1 + r.nextDouble()) * 2 ** (r.nextInt(1091) - 1080),
      'scales',
    );
    for (const x of [small, wide, scales]) expect(mismatches(x)).toEqual({ count: 0, first: [] });
  });

  it('any 64-bit pattern: NaNs, infinities, subnormal inputs', () => {
    const r = stream('bits');
    const x = new Float64Array(2_000_000);
    const w = new Uint32Array(x.buffer);
    for (let i = 0; i < w.length; i++) w[i] = r.nextUint32();
    expect(mismatches(x)).toEqual({ count: 0, first: [] });
  });

  it('the edges: thresholds, the reduction ranges, subnormal and zero results, at every lane', () => {
    const edges = [
      0,
      -0,
      1,
      -1,
      Infinity,
      -Infinity,
      Number.NaN,
      Number.MIN_VALUE,
      -Number.MIN_VALUE,
      Number.MAX_VALUE,
      -Number.MAX_VALUE,
      Math.LN2,
      -Math.LN2,
      ...around(word(0x40862e42, 0xfefa39ef)), // overflow threshold, 709.78…
      ...around(word(0xc0874910, 0xd52d3051)), // underflow threshold, −745.13…
      ...around(-745), // the last subnormal results
      ...around(-744.4400719213812), // e^x = 2^-1074 there
      ...around(-708.3964185322641), // e^x = 2^-1022, the smallest normal
      ...around(-707.7032713517042), // k = −1021 ↔ −1022
      ...around(-708.7), // k = −1022
      ...around(-709.4), // k = −1023
      ...around(-709.78), // k = −1024
      ...around(709.4), // k = 1023 ↔ 1024
      ...around(709.7), // k = 1024
      ...around(word(0x3fd62e42), 2), // |x| = ln2/2: k = 0 ↔ ±1
      ...around(-word(0x3fd62e42), 2),
      ...around(word(0x3ff0a2b2), 2), // |x| = 1.5·ln2: k = ±1 ↔ the general k
      ...around(-word(0x3ff0a2b2), 2),
      ...around(word(0x3e300000), 2), // |x| = 2^-28
      ...around(-word(0x3e300000), 2),
      ...around(word(0x40862e42), 2), // |x| = 709.78…, the threshold words
      ...around(-word(0x40862e42), 2),
    ];
    // each edge at each of the 8 lanes of a vector, among main-path values, and after a tail
    const fillers = fill(16, (r) => -5 - 50 * r.nextDouble(), 'fillers');
    for (let lane = 0; lane < 8; lane++) {
      const x = new Float64Array(edges.length * 16 + 3);
      for (let i = 0; i < x.length; i++) x[i] = fillers[i % 16];
      edges.forEach((v, i) => {
        x[i * 16 + lane] = v;
        x[i * 16 + 8 + ((lane + 3) % 8)] = v;
      });
      x[x.length - 1] = edges[lane];
      expect(mismatches(x), `lane ${lane}`).toEqual({ count: 0, first: [] });
    }
  });

  it('exp64 checks its arguments', () => {
    expect(() => addon.exp64(new Float64Array(4), new Float64Array(3))).toThrow(/y has 3 elements/);
    expect(() => addon.exp64(new Float32Array(4) as never, new Float64Array(4))).toThrow(
      /x must be a Float64Array/,
    );
  });
});

/** A logits row like a language model's: N(0, spread²) float32s, with some ties at the max. */
function logitsRow(V: number, spread: number, purpose: string): Float32Array {
  const z = stream(purpose).normal(V, 0, spread);
  if (V > 10) z[V - 3] = z[7] = Math.max(...z) + 1;
  return z;
}

describe.skipIf(skip !== null)('sampleToken through the addon = sampleTokenJs', () => {
  it('sampleExpRow: the max, its first index, the exponentials and their sum', () => {
    for (const [V, spread, scale] of [
      [1, 1, 1],
      [7, 3, 1],
      [9, 3, 1 / 0.7],
      [1000, 4, 1],
      [50_257, 3, 1 / 1.3],
      [50_257, 30, 1 / 0.05], // far tails: subnormal and zero exponentials
    ] as const) {
      const z = logitsRow(V, spread, `row-${V}-${spread}`);
      const e = new Float64Array(V);
      const out = new Float64Array(3);
      addon.sampleExpRow(z, scale, e, out);
      let max = -Infinity;
      let arg = 0;
      for (let i = 0; i < V; i++)
        if (z[i] > max) {
          max = z[i];
          arg = i;
        }
      let total = 0;
      let bad = 0;
      for (let i = 0; i < V; i++) {
        const want = Math.exp((z[i] - max) * scale);
        if (!same(e[i], want)) bad++;
        total += want;
      }
      expect({ bad, max: out[0], arg: out[1], total: out[2] }, `V ${V}`).toEqual({
        bad: 0,
        max,
        arg,
        total,
      });
    }
  });

  it('the same tokens, log-probabilities and stream positions, at every temperature and filter', () => {
    const V = 50_257;
    const rows = Array.from({ length: 6 }, (_, i) => logitsRow(V, 1 + 2 * i, `gpt2-${i}`));
    const options: SamplingOptions[] = [
      { temperature: 0 },
      {},
      { temperature: 0.7 },
      { temperature: 1.3 },
      { temperature: 0.05 },
      { topK: 50 },
      { topP: 0.9, temperature: 0.8 },
      { topK: 5, topP: 0.5 },
    ];
    for (const o of options) {
      const a = stream('draws');
      const b = stream('draws');
      for (let rep = 0; rep < 4; rep++)
        for (const z of rows) {
          const got = sampleToken(z, o, a);
          const want = sampleTokenJs(z, o, b);
          expect(got, JSON.stringify(o)).toEqual(want);
          expect(Object.is(got.logprob, want.logprob)).toBe(true);
          expect(a.position).toBe(b.position);
        }
    }
  });

  it('sampleRows: each row as sampleTokenJs in order, skipped rows not drawn, 1 and 2 threads, 11 rows in two calls', () => {
    const V = 50_257;
    const B = 11; // two calls of at most 8 rows, the second of 3
    const logits = new Float32Array(B * V);
    for (let b = 0; b < B; b++) logits.set(logitsRow(V, 2 + (b % 5), `rows-${b}`), b * V);
    const skip = [false, true, false, false, true, false, false, false, false, true, false];
    const saved = addon.threads();
    try {
      for (const t of [1, 2])
        for (const o of [
          { temperature: 0 },
          { temperature: 0.8 },
          { topK: 20 },
        ] as SamplingOptions[]) {
          addon.setThreads(t);
          const a = stream(`rows-${t}`);
          const b = stream(`rows-${t}`);
          const got = sampleRows(logits, B, skip, o, a);
          const want = skip.map((s, r) =>
            s ? undefined : sampleTokenJs(logits.subarray(r * V, (r + 1) * V), o, b),
          );
          expect(got, `${t} threads ${JSON.stringify(o)}`).toEqual(want);
          expect(a.position).toBe(b.position);
        }
    } finally {
      addon.setThreads(saved);
    }
    const e = new Float64Array(2 * V);
    expect(() =>
      addon.sampleExpRows(logits.subarray(0, 2 * V + 1), 2, 1, e, new Float64Array(6)),
    ).toThrow(/sampleExpRows: z must hold rows rows/);
    expect(() =>
      addon.sampleExpRows(logits.subarray(0, 2 * V), 2, 1, e, new Float64Array(5)),
    ).toThrow(/out has 5 elements, needs 6/);
  });

  it('rows of many lengths (vector tails), −Infinity logits and a row the draw refuses', () => {
    for (let V = 1; V <= 40; V++) {
      const z = logitsRow(V, 2, `short-${V}`);
      if (V > 4) z[2] = Number.NEGATIVE_INFINITY; // e = 0: never drawn
      for (const o of [{ temperature: 0 }, { temperature: 0.9 }]) {
        const a = stream(`short-${V}`);
        const b = stream(`short-${V}`);
        for (let rep = 0; rep < 20; rep++)
          expect(sampleToken(z, o, a)).toEqual(sampleTokenJs(z, o, b));
      }
    }
    const nan = logitsRow(100, 2, 'nan');
    nan[40] = Number.NaN;
    const js = (() => {
      try {
        return sampleTokenJs(nan, {}, stream('nan'));
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(js).toMatch(/categorical: row 0 has total probability NaN/);
    expect(() => sampleToken(nan, {}, stream('nan'))).toThrow(js as string);
    expect(sampleToken(nan, { temperature: 0 }, undefined)).toEqual(
      sampleTokenJs(nan, { temperature: 0 }, undefined),
    );
  });

  it('categoricalRow is RandomStream.categorical given its target', () => {
    const e = new Float64Array([0, 0.25, 0, 0.5, 0.25, 0, 0]);
    const cases: [number, number][] = [
      [0, 1],
      [0.2499, 1],
      [0.25, 3],
      [0.75, 4],
      [0.9999, 4],
      [1, 4], // past the end: the last, then back past the zeros
    ];
    for (const [target, want] of cases)
      expect(addon.categoricalRow(e, target), `${target}`).toBe(want);
    const r = stream('walk');
    const probs = stream('walk-probs').uniform(5000);
    for (let i = 0; i < 200; i++) {
      const q = RandomStream.at(r.key, r.position);
      const want = r.categorical(probs, 1)[0];
      let total = 0;
      for (const p of probs) total += p;
      expect(addon.categoricalRow(Float64Array.from(probs), q.nextDouble() * total)).toBe(want);
    }
  });

  it('sampleExpRow and categoricalRow check their arguments', () => {
    const z = new Float32Array(8);
    expect(() => addon.sampleExpRow(z, 1, new Float64Array(7), new Float64Array(3))).toThrow(
      /sampleExpRow: e has 7 elements, needs 8/,
    );
    expect(() => addon.sampleExpRow(z, 1, new Float64Array(8), new Float64Array(2))).toThrow(
      /out has 2 elements/,
    );
    expect(() =>
      addon.sampleExpRow(new Float32Array(0), 1, new Float64Array(8), new Float64Array(3)),
    ).toThrow(/z is empty/);
    const shared = new Float64Array(11);
    expect(() => addon.sampleExpRow(z, 1, shared.subarray(0, 8), shared.subarray(7))).toThrow(
      /out overlaps e/,
    );
    expect(() => addon.categoricalRow(new Float64Array(0), 0)).toThrow(
      /categoricalRow: e is empty/,
    );
    expect(() => addon.categoricalRow(new Float64Array(2), Number.NaN)).toThrow(
      /target must be a number/,
    );
  });
});
