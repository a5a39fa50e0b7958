import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ADAMW_KERNEL,
  hostView,
  nativeAdamWKernel,
  setNativeOptim,
} from '../../src/kernels/custom/native-optim.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { AdamW } from '../../src/policy/optim/index.js';
import type { ParamSpec } from '../../src/policy/params.js';
import { BACKEND_CASES, expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

const addon = () => {
  if (!native.available) throw new Error('unreachable: the suite is skipped');
  return native.addon;
};

function normal(n: number, purpose: string, std = 1): Float32Array {
  return RandomStream.of({ seed: 3, step: 0, actor: 'native-optim', purpose }).normal(n, 0, std);
}

const LENGTHS = [0, 1, 7, 16, 17, 513, 1031];

/** The first index where a and b differ in bits (or length: -2), -1 where they are the same. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return -2;
  const [x, y] = [a, b].map((t) => new Uint32Array(t.buffer, t.byteOffset, t.length));
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

/** The JS stepOnHost loop: double arithmetic, float32 storage. */
function jsAdamW(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  [lr, b1, b2, eps, wd, bc1, bc2, gs]: readonly number[],
): void {
  const shrink = wd !== 0 ? 1 - lr * wd : 1;
  const step = lr / bc1;
  const sbc2 = Math.sqrt(bc2);
  for (let i = 0; i < p.length; i++) {
    const gi = gs === 1 ? g[i] : Math.fround(g[i] * gs);
    m[i] = b1 * m[i] + (1 - b1) * gi;
    v[i] = b2 * v[i] + (1 - b2) * gi * gi;
    p[i] = p[i] * shrink - (step * m[i]) / (Math.sqrt(v[i]) / sbc2 + eps);
  }
}

describe.skipIf(skip !== null)(`native host loops${skip ? ` (${skip})` : ''}`, () => {
  it.each(LENGTHS)('axpy over %i elements equals the JS loop bit for bit', (n) => {
    for (const alpha of [0, 1, -2.5, 1 / 3, 1e-30]) {
      for (const offset of [0, 3]) {
        const x = normal(n, `x${n}`);
        const y = normal(n + offset + 2, `y${n}`);
        const want = y.slice();
        for (let i = 0; i < n; i++) want[offset + i] += x[i] * alpha;
        addon().axpy(y, offset, x, alpha);
        expect(y).toEqual(want);
      }
    }
  });

  it('adamwSteps writes the pages of fresh moments before reading them: one page fault a page, not two', () => {
    // 4 M values (16 MiB) each of fresh, never-touched m and v: reading an untouched page maps
    // the shared zero page and the store after it faults again (copy on write); the loop writes
    // each page first, so about one fault a page (p and g are touched here beforehand)
    const n = 1 << 22;
    const pages = (2 * n * 4) / 4096;
    const p = normal(n, 'fault p');
    const g = normal(n, 'fault g');
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    const scalars = Float64Array.from([1e-3, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001, 1]);
    const before = process.resourceUsage().minorPageFault;
    addon().adamwSteps([p], [g], [m], [v], scalars);
    const faults = process.resourceUsage().minorPageFault - before;
    expect(faults).toBeGreaterThan(0.5 * pages); // the pages were fresh
    expect(faults).toBeLessThan(1.5 * pages);
    // and the values are the loop's: m = (1 − β₁)·g, v = (1 − β₂)·g², in double, as stored
    for (let i = 0; i < n; i += 4099) {
      expect(m[i]).toBe(Math.fround(0.1 * g[i]));
      expect(v[i]).toBe(Math.fround(0.001 * g[i] * g[i]));
    }
  });

  it('axpy works on views at an offset in a larger buffer (as the wasm heap)', () => {
    const buf = new Float32Array(100);
    buf.set(normal(100, 'buf'));
    const want = buf.slice();
    const y = buf.subarray(10, 40);
    const x = buf.subarray(50, 71);
    for (let i = 0; i < 21; i++) want[10 + 4 + i] += want[50 + i] * -0.75;
    addon().axpy(y, 4, x, -0.75);
    expect(buf).toEqual(want);
  });

  it.each(LENGTHS)('sumSquares over %i elements equals the float64 sum', (n) => {
    const x = normal(n, `s${n}`, 3);
    let want = 0;
    for (let i = 0; i < n; i++) want += x[i] * x[i];
    const got = addon().sumSquares(x);
    expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-13 * want);
    expect(addon().sumSquares(x.subarray(1))).toBeCloseTo(want - (n > 0 ? x[0] * x[0] : 0), 9);
  });

  it('sumSquares keeps double precision and passes non-finite values through', () => {
    // 2²⁴ + 1 ones: a float32 sum would stop at 2²⁴.
    expect(addon().sumSquares(new Float32Array(2 ** 24 + 1).fill(1))).toBe(2 ** 24 + 1);
    expect(addon().sumSquares(Float32Array.of(1, Number.NaN))).toBeNaN();
    expect(addon().sumSquares(Float32Array.of(1, Number.NEGATIVE_INFINITY))).toBe(
      Number.POSITIVE_INFINITY,
    );
    expect(addon().sumSquares(new Float32Array(0))).toBe(0);
  });

  it.each(LENGTHS)('scale over %i elements equals the JS loop bit for bit', (n) => {
    for (const alpha of [0, 1, -3, 1 / 7]) {
      const x = normal(n, `c${n}`);
      const want = x.map((a) => a * alpha);
      addon().scale(x, alpha);
      expect(x).toEqual(want);
    }
  });

  it('adamwStep equals the JS loop bit for bit over 5 steps, decayed or not, scaled or not', () => {
    for (const n of LENGTHS) {
      for (const [wd, gs] of [
        [0, 1],
        [0.1, 1],
        [0.01, 0.37],
      ]) {
        const p = normal(n, `p${n}`);
        const [m, v] = [new Float32Array(n), new Float32Array(n)];
        const [p2, m2, v2] = [p.slice(), m.slice(), v.slice()];
        const [b1, b2] = [0.9, 0.95];
        for (let t = 1; t <= 5; t++) {
          const g = normal(n, `g${n}/${t}`, t === 3 ? 1e-7 : 0.1 * t);
          const args = [1e-2 * t, b1, b2, 1e-8, wd, 1 - b1 ** t, 1 - b2 ** t, gs] as const;
          addon().adamwStep(p, g, m, v, ...args);
          jsAdamW(p2, g, m2, v2, args);
          expect(p).toEqual(p2);
          expect(m).toEqual(m2);
          expect(v).toEqual(v2);
        }
      }
    }
  });

  it('adamwStep on 2 threads (split in blocks of 512) equals the JS loop bit for bit, in place or not', () => {
    const a = addon();
    const saved = a.threads();
    try {
      a.setThreads(2);
      // 2^17 + 1031 values: two threads' ranges, the second ending inside a block
      const n = 2 ** 17 + 1031;
      const p = normal(n, 'p2t');
      const [m, v] = [normal(n, 'm2t', 0.1), normal(n, 'v2t', 0.1).map((x) => x * x)];
      const [p2, m2, v2] = [p.slice(), m.slice(), v.slice()];
      for (let t = 1; t <= 3; t++) {
        const g = normal(n, `g2t/${t}`, 0.1 * t);
        const args = [1e-2, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9 ** t, 1 - 0.95 ** t, 0.7] as const;
        const outs = [0, 1, 2].map(() => new Float32Array(n).fill(Number.NaN));
        const [pc, mc, vc] = [p.slice(), m.slice(), v.slice()];
        a.adamwStep(pc, g, mc, vc, ...args, outs[0], outs[1], outs[2]);
        a.adamwStep(p, g, m, v, ...args);
        jsAdamW(p2, g, m2, v2, args);
        expect(p).toEqual(p2);
        expect(m).toEqual(m2);
        expect(v).toEqual(v2);
        expect(outs).toEqual([p2, m2, v2]);
      }
    } finally {
      a.setThreads(saved);
    }
  });

  it('adamwStep writes to separate outputs and leaves its inputs alone', () => {
    const n = 37;
    const [p, g, m, v] = ['p', 'g', 'm', 'v'].map((k) => normal(n, `sep ${k}`));
    v.forEach((x, i) => {
      v[i] = x * x;
    });
    const copies = [p, g, m, v].map((a) => a.slice());
    const outs = [0, 1, 2].map(() => new Float32Array(n));
    const args = [1e-3, 0.9, 0.999, 1e-8, 0.1, 0.19, 0.002] as const;
    addon().adamwStep(p, g, m, v, ...args, 1, outs[0], outs[1], outs[2]);
    for (const [i, a] of [p, g, m, v].entries()) expect(a).toEqual(copies[i]);
    const [p2, m2, v2] = [p.slice(), m.slice(), v.slice()];
    jsAdamW(p2, g, m2, v2, [...args, 1]);
    expect(outs).toEqual([p2, m2, v2]);
  });

  it('axpyMany equals axpy per array bit for bit on 1 and 2 threads, gaps kept', () => {
    const a = addon();
    const saved = a.threads();
    const lengths = [0, 5, 2 ** 17 + 9, 1, 513, 3 * 2 ** 15];
    const gaps = [0, 3, 0, 7, 1, 0]; // values of y before each range that no x touches
    const offsets = new Float64Array(lengths.length);
    let at = 0;
    for (const [k, n] of lengths.entries()) {
      at += gaps[k];
      offsets[k] = at;
      at += n;
    }
    try {
      for (const threads of [1, 2]) {
        a.setThreads(threads);
        for (const alpha of [1, -0.37, 1e-30]) {
          const xs = lengths.map((n, k) => normal(n, `ax ${k}`));
          const y = normal(at + 4, 'ay');
          const want = y.slice();
          for (const [k, x] of xs.entries()) a.axpy(want, offsets[k], x, alpha);
          const js = y.slice();
          for (const [k, x] of xs.entries())
            for (let i = 0; i < x.length; i++) js[offsets[k] + i] += x[i] * alpha;
          a.axpyMany(y, offsets, xs, alpha);
          expect(firstDifference(y, want)).toBe(-1);
          expect(firstDifference(y, js)).toBe(-1);
        }
      }
    } finally {
      a.setThreads(saved);
    }
    const f = (n: number) => new Float32Array(n);
    const many = a.axpyMany as (...x: unknown[]) => void;
    const buf = f(10);
    const bad: Array<[() => void, RegExp]> = [
      [() => many(f(4), [0], [f(2)], 1), /axpyMany: offsets must be a Float64Array/],
      [() => many(f(4), Float64Array.of(0, 2), [f(2)], 1), /offsets has 2 numbers, xs has 1/],
      [() => many(f(4), Float64Array.of(3), [f(2)], 1), /offsets\[0\] \+ xs\[k\].length is past/],
      [
        () => many(f(8), Float64Array.of(2, 3), [f(2), f(2)], 1),
        /offsets\[1\] must be an integer at or past the end of the range before/,
      ],
      [() => many(f(8), Float64Array.of(0.5), [f(2)], 1), /offsets\[0\] must be an integer/],
      [
        () => many(buf.subarray(0, 6), Float64Array.of(0), [buf.subarray(4, 8)], 1),
        /xs\[0\] overlaps y/,
      ],
      [() => many(f(4), Float64Array.of(0), [f(2)], 'x'), /axpyMany: alpha must be a number/],
    ];
    for (const [fn, msg] of bad) expect(fn).toThrow(msg);
    many(f(4), new Float64Array(0), [], 2); // nothing to do
  });

  it('sumSquaresMany equals a loop of sumSquares bit for bit on 1 and 2 threads, and the float64 sum', () => {
    const a = addon();
    const saved = a.threads();
    // 2^17 + 3 values in one array: two threads' worth, so the second thread runs the rest
    const sets = [
      [],
      [new Float32Array(0)],
      [0, 1, 17, 2 ** 17 + 3, 513, 0, 2 ** 16, 7].map((n, i) => normal(n, `many ${i}`, 1 + i)),
      [5, 1031].map((n, i) => normal(n, `few ${i}`, 0.01)),
    ];
    try {
      for (const threads of [1, 2]) {
        a.setThreads(threads);
        for (const xs of sets) {
          let loop = 0;
          for (const x of xs) loop += a.sumSquares(x);
          expect(a.sumSquaresMany(xs)).toBe(loop);
          let want = 0;
          for (const x of xs) for (let i = 0; i < x.length; i++) want += x[i] * x[i];
          expect(Math.abs(a.sumSquaresMany(xs) - want)).toBeLessThanOrEqual(1e-13 * want);
        }
      }
      expect(a.sumSquaresMany([Float32Array.of(1), Float32Array.of(Number.NaN)])).toBeNaN();
      const buf = normal(40, 'shared');
      // the same memory twice (read only) counts twice
      expect(a.sumSquaresMany([buf, buf.subarray(0, 20)])).toBe(
        a.sumSquares(buf) + a.sumSquares(buf.subarray(0, 20)),
      );
    } finally {
      a.setThreads(saved);
    }
  });

  it('adamwSteps equals adamwStep per array and the JS loop bit for bit on 1 and 2 threads', () => {
    const a = addon();
    const saved = a.threads();
    // lengths across the threads' cut (the concatenation is 2^18 + ... values), with per-array
    // weight decay, step counts and gradient scales
    const lengths = [0, 1, 7, 513, 2 ** 17 + 1031, 16, 3 * 2 ** 15 + 5, 300];
    try {
      for (const threads of [1, 2]) {
        a.setThreads(threads);
        const ps = lengths.map((n, k) => normal(n, `ps ${k}`));
        const ms = lengths.map((n) => new Float32Array(n));
        const vs = lengths.map((n) => new Float32Array(n));
        const [ps2, ms2, vs2] = [ps, ms, vs].map((l) => l.map((x) => x.slice()));
        const [ps3, ms3, vs3] = [ps, ms, vs].map((l) => l.map((x) => x.slice()));
        for (let t = 1; t <= 3; t++) {
          const gs = lengths.map((n, k) => normal(n, `gs ${k}/${t}`, t === 2 ? 1e-7 : 0.1 * t));
          const scalars = new Float64Array(8 * lengths.length);
          const per = lengths.map((_, k) => {
            const tk = t + (k % 3); // the arrays' own counts
            const b1 = 0.9;
            const b2 = k % 2 ? 0.95 : 0.999;
            return [
              1e-2 * t,
              b1,
              b2,
              1e-8,
              k % 2 ? 0.1 : 0,
              1 - b1 ** tk,
              1 - b2 ** tk,
              k % 4 ? 0.37 : 1,
            ];
          });
          for (const [k, s] of per.entries()) scalars.set(s, 8 * k);
          a.adamwSteps(ps, gs, ms, vs, scalars);
          for (const [k, s] of per.entries()) {
            const [lr, b1, b2, eps, wd, bc1, bc2, gsc] = s;
            a.adamwStep(ps2[k], gs[k], ms2[k], vs2[k], lr, b1, b2, eps, wd, bc1, bc2, gsc);
            jsAdamW(ps3[k], gs[k], ms3[k], vs3[k], s);
          }
          for (const [got, ...wants] of [
            [ps, ps2, ps3],
            [ms, ms2, ms3],
            [vs, vs2, vs3],
          ]) {
            for (const want of wants)
              for (const [k, x] of got.entries()) expect(firstDifference(x, want[k])).toBe(-1);
          }
        }
      }
    } finally {
      a.setThreads(saved);
    }
  });

  it('adamwSteps lets gradients share memory, nothing else, and checks every argument by name', () => {
    const a = addon();
    const f = (n: number) => new Float32Array(n);
    const s1 = [1e-3, 0.9, 0.999, 1e-8, 0, 0.1, 0.001, 1];
    const sc = (n: number) => Float64Array.from({ length: 8 * n }, (_, i) => s1[i % 8]);
    // one gradient for two parameters (tfjs can hand the same tensor to both)
    const g = normal(6, 'one grad', 0.1);
    const [p, q] = [normal(6, 'p shared grad'), normal(6, 'q shared grad')];
    const [p2, q2] = [p.slice(), q.slice()];
    const [m, v, m2, v2] = [f(6), f(6), f(6), f(6)];
    a.adamwSteps([p, q], [g, g], [f(6), f(6)], [f(6), f(6)], sc(2));
    a.adamwStep(p2, g, m, v, ...(s1 as [number, number, number, number, number, number, number]));
    a.adamwStep(q2, g, m2, v2, ...(s1 as [number, number, number, number, number, number, number]));
    expect([p, q]).toEqual([p2, q2]);
    const buf = f(16);
    const steps = a.adamwSteps as (...x: unknown[]) => void;
    const bad: Array<[() => void, RegExp]> = [
      [() => steps([f(2)], [f(2)], [f(2)], [f(2)]), /adamwSteps: takes 5 arguments/],
      [() => steps(f(2), [f(2)], [f(2)], [f(2)], sc(1)), /adamwSteps: params must be an array/],
      [() => steps([f(2)], [[1, 2]], [f(2)], [f(2)], sc(1)), /grads\[0\] must be a Float32Array/],
      [() => steps([f(2)], [f(2)], [f(2)], [f(2)], [1]), /scalars must be a Float64Array/],
      [
        () => steps([f(2)], [f(2), f(2)], [f(2)], [f(2)], sc(1)),
        /grads has 2 arrays, params has 1/,
      ],
      [() => steps([f(2)], [f(2)], [f(2)], [f(2)], sc(2)), /scalars has 16 numbers, expected 8/],
      [
        () => steps([f(2), f(3)], [f(2), f(3)], [f(2), f(4)], [f(2), f(3)], sc(2)),
        /ms\[1\] has length 4, params\[1\] has 3/,
      ],
      [
        () => {
          const s = sc(2);
          s[8 + 2] = 1;
          steps([f(2), f(2)], [f(2), f(2)], [f(2), f(2)], [f(2), f(2)], s);
        },
        /scalars\[1\].beta2 must be in \[0, 1\)/,
      ],
      [
        () => steps([buf.subarray(0, 4)], [f(4)], [buf.subarray(2, 6)], [f(4)], sc(1)),
        /params\[0\] overlaps ms\[0\]/,
      ],
      [
        () =>
          steps(
            [f(4), buf.subarray(0, 4)],
            [buf.subarray(3, 7), f(4)],
            [f(4), f(4)],
            [f(4), f(4)],
            sc(2),
          ),
        /params\[1\] overlaps grads\[0\]/,
      ],
    ];
    for (const [fn, msg] of bad) expect(fn).toThrow(msg);
    expect(() => steps([f(2)], [f(2)], [f(2)], [f(2)], sc(2))).toThrow(RangeError);
    expect(() => steps([f(2)], [[1, 2]], [f(2)], [f(2)], sc(1))).toThrow(TypeError);
    steps([], [], [], [], sc(0)); // nothing to do
  });

  it('refuses bad arguments with a TypeError or RangeError naming the function and argument', () => {
    const a = addon();
    const f = (n: number) => new Float32Array(n);
    const bad = [
      [
        () => a.axpy(f(4), 0, new Float64Array(4) as never, 1),
        TypeError,
        /axpy: x must be a Float32Array/,
      ],
      [() => a.axpy([1, 2] as never, 0, f(2), 1), TypeError, /axpy: y must be a Float32Array/],
      [() => a.axpy(f(4), 0, f(2), '1' as never), TypeError, /axpy: alpha must be a number/],
      [() => a.axpy(f(4), -1, f(2), 1), RangeError, /axpy: offset must be an integer >= 0/],
      [() => a.axpy(f(4), 1.5, f(2), 1), RangeError, /axpy: offset must be/],
      [() => a.axpy(f(4), 3, f(2), 1), RangeError, /axpy: y is shorter than offset \+ x.length/],
      [
        () => (a.axpy as (...x: unknown[]) => void)(f(4), 0, f(2)),
        TypeError,
        /axpy: takes 4 arguments/,
      ],
      [
        () => {
          const b = f(8);
          a.axpy(b, 0, b.subarray(2, 6), 1);
        },
        RangeError,
        /axpy: x overlaps y/,
      ],
      [
        () => a.sumSquares(new Int32Array(3) as never),
        TypeError,
        /sumSquares: x must be a Float32Array/,
      ],
      [() => a.scale(f(3), Number.NaN as never), null, null],
      [() => a.scale(f(3), undefined as never), TypeError, /scale: alpha must be a number/],
      [() => a.scale({} as never, 1), TypeError, /scale: x must be a Float32Array/],
    ] as const;
    for (const [fn, type, msg] of bad) {
      if (type === null) fn();
      else expect(fn).toThrow(type as unknown as typeof Error);
      if (msg) expect(fn).toThrow(msg);
    }
    const s = [1e-3, 0.9, 0.999, 1e-8, 0, 0.1, 0.001] as const;
    const w = a.adamwStep;
    expect(() => w(f(4), f(3), f(4), f(4), ...s)).toThrow(
      /adamwStep: grad has length 3, param has 4/,
    );
    expect(() => w(f(4), f(4), f(4), f(5), ...s)).toThrow(RangeError);
    expect(() => w(f(4), f(4), f(4), f(4), ...s, 1, f(4), f(3))).toThrow(/mOut has length 3/);
    expect(() => w(f(4), f(4), f(4), f(4), 1e-3, 0.9, 1, 1e-8, 0, 0.1, 0.001)).toThrow(
      /beta2 must be in \[0, 1\)/,
    );
    expect(() => w(f(4), f(4), f(4), f(4), 1e-3, 0.9, 0.99, 1e-8, 0, 0, 0.001)).toThrow(
      /bc1 must be in \(0, 1\]/,
    );
    expect(() => w(f(4), f(4), f(4), f(4), 1e-3, 0.9, 0.99, 'x' as never, 0, 0.1, 0.01)).toThrow(
      /adamwStep: eps must be a number/,
    );
    expect(() => w(f(4), f(4), f(4), new Uint8Array(4) as never, ...s)).toThrow(
      /adamwStep: v must be a Float32Array/,
    );
    expect(() => (w as (...x: unknown[]) => void)(f(4), f(4), f(4), f(4), 1)).toThrow(
      /adamwStep: takes 11 to 15 arguments/,
    );
    const buf = f(12);
    const [p, g] = [buf.subarray(0, 4), buf.subarray(4, 8)];
    expect(() => w(p, g, buf.subarray(2, 6), f(4), ...s)).toThrow(/adamwStep: param overlaps m/);
    expect(() => w(p, g, f(4), f(4), ...s, 1, buf.subarray(4, 8))).toThrow(
      /adamwStep: grad overlaps paramOut/,
    );
    // In place is allowed: each output its own input.
    w(p, g, buf.subarray(8, 12), f(4), ...s, 1, p, buf.subarray(8, 12));
  });
});

const SPECS: ParamSpec[] = [
  { name: 'w', shape: [33, 17], kind: 'matrix' },
  { name: 'b', shape: [17], kind: 'bias' },
  { name: 'n', shape: [5], kind: 'norm' },
];

function makeParams(): Map<string, tf.Variable> {
  return new Map(
    SPECS.map((s) => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      return [
        s.name,
        tf.tidy(() => tf.variable(tf.tensor(normal(n, `init ${s.name}`), [...s.shape]))),
      ];
    }),
  );
}

function gradsAt(step: number): Map<string, tf.Tensor> {
  return new Map(
    SPECS.map((s) => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const std = (s.name === 'n' ? 1e-7 : 0.1) * (step + 1);
      return [s.name, tf.tensor(normal(n, `grad ${s.name} ${step}`, std), [...s.shape])];
    }),
  );
}

/** Runs 4 steps of `opt` (step or stepOnHost) and returns every parameter, read back. */
async function run(offload: boolean, weightDecay: number, gradScale: number, tensorGrads = false) {
  const params = makeParams();
  const opt = new AdamW(params, SPECS, { lr: 1e-2, betas: [0.9, 0.95], weightDecay, offload });
  for (let step = 0; step < 4; step++) {
    const grads = gradsAt(step);
    const lr = 1e-2 * (step + 1);
    if (offload && tensorGrads) {
      await expectNoLeak(() => opt.stepOnHost(grads, lr, gradScale));
    } else if (offload) {
      const host = new Map<string, Float32Array>();
      for (const [k, g] of grads) host.set(k, (await g.data()) as Float32Array);
      await expectNoLeak(() => opt.stepOnHost(host, lr, gradScale));
    } else await expectNoLeak(() => opt.step(grads, lr, gradScale));
    tf.dispose([...grads.values()]);
  }
  const out = new Map<string, Float32Array>();
  for (const [k, p] of params) out.set(k, (await p.data()) as Float32Array);
  const state = await opt.stateDict();
  opt.dispose();
  tf.dispose([...params.values()]);
  return { params: out, state };
}

for (const [backend, backendSkip] of BACKEND_CASES) {
  const why = skip ?? backendSkip;
  describe.skipIf(why !== null)(`native AdamW on ${backend}${why ? ` (${why})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });
    afterEach(() => setNativeOptim(true));

    it('registers TroupeAdamW on wasm and cpu only', () => {
      expect(nativeAdamWKernel()).toBe(backend !== 'webgpu');
      expect(tf.getKernel(ADAMW_KERNEL, backend) !== undefined).toBe(backend !== 'webgpu');
      setNativeOptim(false);
      expect(nativeAdamWKernel()).toBe(false);
    });

    it('hostView is the tensor storage without a copy on wasm and cpu, undefined elsewhere', async () => {
      const x = tf.tensor(normal(19, 'view'), [19]);
      const v = hostView(x);
      if (backend === 'webgpu') expect(v).toBeUndefined();
      else {
        expect(v).toEqual(await x.data());
        // The same memory: a reshape shares it.
        const r = tf.reshape(x, [1, 19]);
        expect(hostView(r)?.byteOffset).toBe(v?.byteOffset);
        r.dispose();
      }
      expect(hostView(tf.tensor([1, 2], [2], 'int32'))).toBeUndefined();
      x.dispose();
      expect(hostView(x)).toBeUndefined();
    });

    for (const wd of [0, 0.1]) {
      it(`stepOnHost with the addon equals the JS loop bit for bit (weight decay ${wd})`, async () => {
        setNativeOptim(false);
        const js = await run(true, wd, 0.5);
        setNativeOptim(true);
        const nat = await run(true, wd, 0.5);
        for (const [k, p] of js.params) expect(nat.params.get(k)).toEqual(p);
        for (const [k, t] of js.state.tensors)
          expect(nat.state.tensors.get(k)?.data).toEqual(t.data);
      });

      it(`stepOnHost takes gradient tensors as it takes host arrays (weight decay ${wd})`, async () => {
        const arrays = await run(true, wd, 0.5);
        const tensors = await run(true, wd, 0.5, true);
        for (const [k, p] of arrays.params) expect(tensors.params.get(k)).toEqual(p);
        setNativeOptim(false);
        const js = await run(true, wd, 0.5, true);
        for (const [k, p] of arrays.params) expect(js.params.get(k)).toEqual(p);
      });

      it(`step on the device with TroupeAdamW equals stepOnHost bit for bit and tfjs' ops closely (weight decay ${wd})`, async () => {
        const host = await run(true, wd, 0.5);
        const dev = await run(false, wd, 0.5);
        setNativeOptim(false);
        const ops = await run(false, wd, 0.5);
        for (const [k, p] of host.params) {
          if (backend !== 'webgpu') expect(dev.params.get(k)).toEqual(p);
          expectClose(ops.params.get(k)!, p, { atol: 1e-6, rtol: 1e-5, what: k });
        }
        for (const [k, t] of host.state.tensors) {
          if (backend !== 'webgpu') expect(dev.state.tensors.get(k)?.data).toEqual(t.data);
          expectClose(ops.state.tensors.get(k)!.data, t.data, { atol: 1e-9, rtol: 1e-5, what: k });
        }
      });
    }

    it('never writes into tensors that share the parameter or gradient storage', async () => {
      const init = tf.tensor(normal(8, 'shared p'), [8]);
      const p = tf.variable(init); // shares init's storage
      const g = tf.tensor(normal(8, 'shared g'), [8]);
      const gAlias = tf.reshape(g, [2, 4]); // shares g's storage
      const [p0, g0] = [await read(init), await read(g)];
      for (const offload of [false, true]) {
        const opt = new AdamW(new Map([['p', p]]), () => 'matrix', { offload, weightDecay: 0.1 });
        if (offload) await opt.stepOnHost(new Map([['p', (await g.data()) as Float32Array]]), 0.1);
        else opt.step(new Map([['p', g]]), 0.1, 0.5);
        opt.dispose();
      }
      expect(await read(init)).toEqual(p0);
      expect(await read(gAlias)).toEqual(g0);
      expect(await read(p)).not.toEqual(p0);
      tf.dispose([init, p, g, gAlias]);
    });

    it('step takes host arrays for gradients with the bits it gives their tensors', async () => {
      const results = [];
      for (const hostGrads of [false, true]) {
        const params = makeParams();
        const opt = new AdamW(params, SPECS, { lr: 1e-2, weightDecay: 0.1 });
        for (let step = 0; step < 3; step++) {
          const grads = gradsAt(step);
          const host = new Map<string, Float32Array>();
          for (const [k, g] of grads) host.set(k, ((await g.data()) as Float32Array).slice());
          await expectNoLeak(() => opt.step(hostGrads ? host : grads, 1e-2, 0.7));
          tf.dispose([...grads.values()]);
        }
        const out = new Map<string, Float32Array>();
        for (const [k, p] of params) out.set(k, (await p.data()) as Float32Array);
        results.push(out);
        expect(() => opt.step(new Map([['w', new Float32Array(3)]]))).toThrow(
          /gradient for 'w' has shape \[3\]/,
        );
        opt.dispose();
        tf.dispose([...params.values()]);
      }
      for (const [k, p] of results[0]) expect(results[1].get(k)).toEqual(p);
    });

    it('refuses a bad gradScale', () => {
      const params = makeParams();
      const opt = new AdamW(params, SPECS, {});
      const grads = gradsAt(0);
      expect(() => opt.step(grads, 1e-3, -1)).toThrow(/gradScale must be a finite number ≥ 0/);
      expect(() => opt.step(grads, 1e-3, Number.NaN)).toThrow(/gradScale/);
      expect(opt.stepCount).toBe(0);
      opt.dispose();
      tf.dispose([...params.values(), ...grads.values()]);
    });
  });
}
