import { afterAll, describe, expect, it } from 'vitest';
import { fnv1a, philox4x32, RandomStream } from '../../src/kernels/random.js';
import { BACKEND_CASES, expectNoLeak, read, useBackend } from '../helpers/backends.js';

// Random123's published known-answer vectors for Philox4x32-10 (tests/kat_vectors).
const KAT: Array<[number[], number[], number[]]> = [
  [
    [0, 0, 0, 0],
    [0, 0],
    [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
  ],
  [
    [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    [0xffffffff, 0xffffffff],
    [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
  ],
  [
    [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
    [0xa4093822, 0x299f31d0],
    [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
  ],
];

const key = { seed: 1234, step: 7, actor: 'policy' };

describe('philox4x32-10', () => {
  it.each(KAT)('matches the Random123 known answer for counter %j key %j', (c, k, want) => {
    expect(Array.from(philox4x32(c, k))).toEqual(want);
  });

  it('fnv1a matches the published test vectors', () => {
    expect(fnv1a('')).toBe(0x811c9dc5);
    expect(fnv1a('a')).toBe(0xe40c292c);
    expect(fnv1a('foobar')).toBe(0xbf9cf968);
  });
});

describe('RandomStream', () => {
  it('gives the same draws for the same key and different draws for any other key', () => {
    const a = RandomStream.of(key).uniform(64);
    expect(RandomStream.of(key).uniform(64)).toEqual(a);
    for (const other of [
      { ...key, seed: 1235 },
      { ...key, step: 8 },
      { ...key, actor: 'critic' },
      { ...key, purpose: 'dropout' },
      { ...key, seed: 1234 + 2 ** 32 },
    ]) {
      const b = RandomStream.of(other).uniform(64);
      expect(b, JSON.stringify(other)).not.toEqual(a);
    }
  });

  it('resumes at any position exactly as the uninterrupted stream continues', () => {
    const whole = RandomStream.of(key);
    const all = Array.from({ length: 23 }, () => whole.nextUint32());
    for (const cut of [0, 1, 3, 4, 5, 11, 22]) {
      const first = RandomStream.of(key);
      for (let i = 0; i < cut; i++) first.nextUint32();
      const resumed = RandomStream.at(key, first.position);
      const rest = Array.from({ length: 23 - cut }, () => resumed.nextUint32());
      expect(rest, `cut at ${cut}`).toEqual(all.slice(cut));
    }
  });

  it('draws uniforms in [0, 1) and normals with the right moments', () => {
    const s = RandomStream.of(key);
    const u = s.uniform(100_000);
    let mean = 0;
    let lo = 1;
    let hi = 0;
    for (const x of u) {
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
      mean += x / u.length;
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    expect(mean).toBeCloseTo(0.5, 2);
    const n = s.normal(100_001, 2, 3);
    let m = 0;
    let v = 0;
    for (const x of n) m += x / n.length;
    for (const x of n) v += (x - m) ** 2 / (n.length - 1);
    expect(m).toBeCloseTo(2, 1);
    expect(Math.sqrt(v)).toBeCloseTo(3, 1);
    const d = s.nextDouble();
    expect(d >= 0 && d < 1).toBe(true);
  });

  it('permutes, shuffles and draws integers uniformly', () => {
    const s = RandomStream.of({ ...key, purpose: 'shuffle' });
    const p = s.permutation(1000);
    expect([...p].sort((a, b) => a - b)).toEqual([...Array(1000).keys()]);
    expect(p).not.toEqual(Int32Array.from(Array(1000).keys()));
    expect(s.shuffle(['a', 'b', 'c']).sort()).toEqual(['a', 'b', 'c']);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 70_000; i++) counts[s.nextInt(7)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    expect(() => s.nextInt(0)).toThrow(/max must be an integer/);
  });

  it('samples categoricals with the given frequencies and never a zero-probability class', () => {
    const s = RandomStream.of({ ...key, purpose: 'sample' });
    const rows = 20_000;
    const probs = new Float32Array(rows * 4);
    for (let r = 0; r < rows; r++) probs.set([0.1, 0, 0.6, 0.3], r * 4);
    const picks = s.categorical(probs, rows);
    const freq = [0, 0, 0, 0];
    for (const p of picks) freq[p] += 1 / rows;
    expect(freq[1]).toBe(0);
    expect(freq[0]).toBeCloseTo(0.1, 1);
    expect(freq[2]).toBeCloseTo(0.6, 1);
    expect(freq[3]).toBeCloseTo(0.3, 1);
    expect(() => s.categorical([0, 0], 1)).toThrow(/row 0 has total probability 0/);
    expect(() => s.categorical([1, 2, 3], 2)).toThrow(/do not split into 2 rows/);
  });

  it('rejects a bad key with the field named', () => {
    expect(() => RandomStream.of({ ...key, seed: -1 })).toThrow(/'seed' must be/);
    expect(() => RandomStream.of({ ...key, step: 1.5 })).toThrow(/'step' must be/);
    expect(() => RandomStream.of({ ...key, actor: '' })).toThrow(/'actor' must be/);
  });
});

describe('random tensors are the same on every backend', () => {
  const reference: { uniform?: Float64Array; dropout?: Float64Array } = {};
  afterAll(() => {
    expect(reference.uniform).toBeDefined();
  });
  for (const [backend, skip] of BACKEND_CASES) {
    it.skipIf(skip !== null)(`${backend}${skip ? ` (skipped: ${skip})` : ''}`, async () => {
      await useBackend(backend);
      const s = RandomStream.of({ ...key, purpose: 'dropout' });
      const [u, d] = await expectNoLeak(async () => {
        const ut = s.uniformTensor([3, 5]);
        const dt = s.dropoutMask([4, 8], 0.25);
        const out = [await read(ut), await read(dt)];
        ut.dispose();
        dt.dispose();
        return out;
      });
      for (const x of d) expect([0, 1 / 0.75].some((v) => Math.abs(x - v) < 1e-6)).toBe(true);
      reference.uniform ??= u;
      reference.dropout ??= d;
      expect(u).toEqual(reference.uniform);
      expect(d).toEqual(reference.dropout);
    });
  }
});
