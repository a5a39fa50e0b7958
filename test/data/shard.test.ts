import { describe, expect, it } from 'vitest';
import { shard } from '../../src/data/batching/shard.js';
import { thrown } from '../helpers/thrown.js';

const ranges = (count: number, replicas: number, micro: number) =>
  shard(count, replicas, micro, (begin, end) => [begin, end] as const);

describe('shard: one split of a batch over replicas × micro-batches', () => {
  it('hand cases: an even split, and uneven ones whose sizes differ by at most one', () => {
    // 8 rows, 2 replicas, 2 micro-batches: what every trainer did for a batch that divides.
    expect(ranges(8, 2, 2)).toEqual([
      [
        [0, 2],
        [2, 4],
      ],
      [
        [4, 6],
        [6, 8],
      ],
    ]);
    // 5 rows over 4 replicas: 1, 1, 1, 2 (no replica idles while another has 2 more).
    expect(ranges(5, 4, 1)).toEqual([[[0, 1]], [[1, 2]], [[2, 3]], [[3, 5]]]);
    // 5 rows, one replica, 4 micro-batches: exactly 4 parts of 1, 1, 1, 2.
    expect(ranges(5, 1, 4)).toEqual([
      [
        [0, 1],
        [1, 2],
        [2, 3],
        [3, 5],
      ],
    ]);
    // Fewer rows than replicas or micro-batches: empty parts are left out.
    expect(ranges(1, 2, 1)).toEqual([[], [[0, 1]]]);
    expect(ranges(2, 1, 3)).toEqual([
      [
        [0, 1],
        [1, 2],
      ],
    ]);
    expect(ranges(0, 2, 2)).toEqual([[], []]);
    // No replicas at all (a run without a critic): no shards.
    expect(ranges(6, 0, 2)).toEqual([]);
  });

  it('covers every row once, in order, balanced at both levels (all small cases)', () => {
    for (let count = 0; count <= 13; count++) {
      for (let replicas = 1; replicas <= 5; replicas++) {
        for (let micro = 1; micro <= 4; micro++) {
          const out = ranges(count, replicas, micro);
          expect(out).toHaveLength(replicas);
          const flat = out.flat();
          // contiguous and complete: each part starts where the last ended, the last ends at count
          let at = 0;
          for (const [b, e] of flat) {
            expect(b).toBe(at);
            expect(e).toBeGreaterThan(b);
            at = e;
          }
          expect(at).toBe(count);
          const per = out.map((parts) => parts.reduce((n, [b, e]) => n + e - b, 0));
          expect(Math.max(...per) - Math.min(...per)).toBeLessThanOrEqual(1);
          for (const parts of out) {
            const sizes = parts.map(([b, e]) => e - b);
            if (sizes.length > 0)
              expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
            const n = sizes.reduce((a, b) => a + b, 0);
            expect(parts).toHaveLength(Math.min(micro, n));
          }
        }
      }
    }
  });

  it('hands each range to take, which slices the caller’s own batch', () => {
    const rows = [10, 11, 12, 13, 14, 15, 16];
    expect(shard(rows.length, 2, 2, (b, e) => rows.slice(b, e))).toEqual([
      [[10], [11, 12]],
      [
        [13, 14],
        [15, 16],
      ],
    ]);
  });

  it('refuses counts that are not whole numbers, naming the argument', () => {
    expect(thrown(() => ranges(4, -1, 1)).message).toBe(
      'shard: replicas must be an integer ≥ 0, got -1',
    );
    expect(thrown(() => ranges(4, 1, 0)).message).toBe(
      'shard: micro must be an integer ≥ 1, got 0',
    );
    expect(thrown(() => ranges(4, 1, 1.5)).message).toBe(
      'shard: micro must be an integer ≥ 1, got 1.5',
    );
    expect(thrown(() => ranges(-1, 1, 1)).code).toBe('BAD_ARGUMENT');
  });
});
