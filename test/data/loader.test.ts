import { describe, expect, it } from 'vitest';
import { DataLoader, type DataLoaderOptions } from '../../src/data/batching/loader.js';
import { splitTrainEval } from '../../src/data/split.js';

const items = Array.from({ length: 10 }, (_, i) => i);
const opts: DataLoaderOptions<number, number[]> = {
  batchSize: 3,
  seed: 7,
  collate: (xs) => xs,
};

function take<B>(it: Iterator<B>, n: number): B[] {
  const out: B[] = [];
  for (let i = 0; i < n; i++) {
    const r = it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

describe('DataLoader', () => {
  it('visits every item once per epoch, in a seeded order that changes with the epoch', () => {
    const loader = new DataLoader(items, opts);
    const epoch0 = take(loader, 4);
    expect(epoch0.map((b) => b.length)).toEqual([3, 3, 3, 1]);
    expect(epoch0.flat().sort((a, b) => a - b)).toEqual(items);
    expect(loader.position).toEqual({ epoch: 1, index: 0 });
    const epoch1 = take(loader, 4).flat();
    expect(epoch1.sort((a, b) => a - b)).toEqual(items);
    expect(take(loader, 4).flat()).not.toEqual(epoch0.flat());
  });

  it('is deterministic in the seed', () => {
    const a = take(new DataLoader(items, opts), 8);
    expect(take(new DataLoader(items, opts), 8)).toEqual(a);
    expect(take(new DataLoader(items, { ...opts, seed: 8 }), 8)).not.toEqual(a);
    expect(take(new DataLoader(items, { ...opts, shuffle: false }), 2)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
  });

  it('resumed from any saved position, yields exactly the batches of the uninterrupted run', () => {
    for (const dropLast of [false, true]) {
      const o = { ...opts, dropLast };
      const whole = take(new DataLoader(items, o), 12);
      for (let k = 0; k <= 11; k++) {
        const first = new DataLoader(items, o);
        take(first, k);
        const saved = JSON.parse(JSON.stringify(first.position));
        const resumed = new DataLoader(items, { ...o, position: saved });
        expect(take(resumed, 12 - k)).toEqual(whole.slice(k));
      }
    }
  });

  it('drops short last batches when asked, and stops after `epochs`', () => {
    const loader = new DataLoader(items, { ...opts, dropLast: true, epochs: 2 });
    expect(loader.batchesPerEpoch).toBe(3);
    const all = [...loader];
    expect(all).toHaveLength(6);
    expect(all.every((b) => b.length === 3)).toBe(true);
    expect(loader.position).toEqual({ epoch: 2, index: 0 });
  });

  it('refuses bad options with the value in the message', () => {
    expect(() => new DataLoader(items, { ...opts, batchSize: 0 })).toThrow(
      'DataLoader: batchSize must be a positive integer, got 0',
    );
    expect(() => new DataLoader(items, { ...opts, position: { epoch: 0, index: 11 } })).toThrow(
      'DataLoader: position must be { epoch ≥ 0, 0 ≤ index ≤ 10 } (integers), got {"epoch":0,"index":11}',
    );
    expect(() => new DataLoader([], opts)).toThrow('DataLoader: no items to load');
    expect(() => new DataLoader(items, { ...opts, batchSize: 11, dropLast: true })).toThrow(
      /no batch would ever come/,
    );
  });
});

describe('splitTrainEval', () => {
  const rows = Array.from({ length: 100 }, (_, i) => `row ${i}`);

  it('is deterministic, disjoint, complete and order-keeping', () => {
    const a = splitTrainEval(rows, { evalFraction: 0.1, seed: 1 });
    expect(splitTrainEval(rows, { evalFraction: 0.1, seed: 1 })).toEqual(a);
    expect(a.eval).toHaveLength(10);
    expect(a.train).toHaveLength(90);
    const evalSet = new Set(a.eval);
    expect(a.train.some((r) => evalSet.has(r))).toBe(false);
    expect([...a.train, ...a.eval].sort()).toEqual([...rows].sort());
    const index = (r: string) => Number(r.slice(4));
    expect(a.eval.map(index)).toEqual([...a.eval.map(index)].sort((x, y) => x - y));
    expect(splitTrainEval(rows, { evalFraction: 0.1, seed: 2 }).eval).not.toEqual(a.eval);
  });

  it('needs a fraction in (0, 1) that leaves both parts non-empty', () => {
    expect(() => splitTrainEval(rows, { evalFraction: 1, seed: 0 })).toThrow(
      'splitTrainEval: evalFraction must be in (0, 1), got 1',
    );
    expect(() => splitTrainEval(['a', 'b'], { evalFraction: 0.1, seed: 0 })).toThrow(
      /gives 0 eval items; both parts need at least one/,
    );
  });
});
