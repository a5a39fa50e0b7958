import { describe, expect, it } from 'vitest';
import { evalRows, trainLoader } from '../../src/algorithms/step-loop.js';

const config = (batchSize: number, evalBatches: number) => ({
  seed: 7,
  train: { batchSize, evalBatches },
});

describe("a trainer's batches", () => {
  it('evalRows: evalBatches batches of the held-out rows, all of them at 0', () => {
    expect(evalRows(config(3, 0), 10)).toBe(10);
    expect(evalRows(config(3, 2), 10)).toBe(6);
    expect(evalRows(config(3, 5), 10)).toBe(10);
  });

  it("trainLoader drops an epoch's short last batch, unless the items fill no batch", () => {
    const items = [0, 1, 2, 3, 4];
    const full = trainLoader(config(2, 0), items, (xs) => xs, undefined);
    const epoch = [full.next().value, full.next().value, full.next().value] as number[][];
    expect(epoch.map((b) => b.length)).toEqual([2, 2, 2]);
    // The first two batches are one epoch's first four items, every item at most once.
    expect(new Set(epoch.slice(0, 2).flat()).size).toBe(4);
    const small = trainLoader(config(4, 0), [0, 1], (xs) => xs, undefined);
    expect((small.next().value as number[]).sort()).toEqual([0, 1]);
  });

  it('trainLoader resumed at a position yields what the uninterrupted loader yields next', () => {
    const items = Array.from({ length: 9 }, (_, i) => i);
    const a = trainLoader(config(2, 0), items, (xs) => xs, undefined);
    for (let i = 0; i < 5; i++) a.next();
    const b = trainLoader(config(2, 0), items, (xs) => xs, a.position);
    for (let i = 0; i < 6; i++) expect(b.next().value).toEqual(a.next().value);
  });
});
