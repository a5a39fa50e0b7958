import { describe, expect, it } from 'vitest';
import {
  checkGatherIndices,
  gatherRowsInto,
  segmentSumInto,
} from '../../src/kernels/custom/row-loops.js';
import * as tf from '../../src/kernels/tf.js';
import { useBackend } from '../helpers/backends.js';

describe('the row loops the cpu and wasm kernels share', () => {
  it('segmentSumInto sums rows by segment, drops negative ids, refuses one past numSegments', () => {
    const xs = Float32Array.from([1, 2, 10, 20, 100, 200, 1000, 2000]); // [4, 2]
    const out = new Float32Array(3 * 2);
    segmentSumInto(out, xs, Int32Array.from([2, 0, 2, -1]), 2, 3);
    expect(Array.from(out)).toEqual([10, 20, 0, 0, 101, 202]);
    expect(() => segmentSumInto(out, xs, Int32Array.from([0, 3, 0, 0]), 2, 3)).toThrow(
      'UnsortedSegmentSum: segment id 3 at 1 is >= numSegments 3',
    );
  });

  it('gatherRowsInto copies x[b, o, idx[b, i], :] (hand case with a batch and an outer axis)', () => {
    // x [batch 2, outer 1, dim 3, slice 2]: row r of batch b holds 100b + 10r + (0, 1).
    const xs = Float32Array.from([0, 1, 10, 11, 20, 21, 100, 101, 110, 111, 120, 121]);
    const idx = Int32Array.from([2, 0, 1, 1]); // [2, n 2]
    const out = new Float32Array(2 * 2 * 2);
    gatherRowsInto(out, xs, idx, { batchSize: 2, outerSize: 1, dimSize: 3, sliceSize: 2 });
    expect(Array.from(out)).toEqual([20, 21, 0, 1, 110, 111, 110, 111]);
    // outer 2, no batch: x [2, 2, 1] rows per outer, the same indices for each.
    const ys = Float32Array.from([1, 2, 3, 4]);
    const o2 = new Float32Array(4);
    gatherRowsInto(o2, ys, Int32Array.from([1, 0]), {
      batchSize: 1,
      outerSize: 2,
      dimSize: 2,
      sliceSize: 1,
    });
    expect(Array.from(o2)).toEqual([2, 1, 4, 3]);
    expect(() => checkGatherIndices(Int32Array.from([0, 3]), 3)).toThrow(
      'GatherV2: the index value 3 is not in [0, 2]',
    );
    expect(() => checkGatherIndices(Int32Array.from([-1]), 3)).toThrow('index value -1');
  });

  it.each(['cpu', 'wasm'] as const)(
    '%s: a row gather with an index out of range is refused by name, and leaks nothing',
    async (backend) => {
      await useBackend(backend);
      const x = tf.ones([4, 16]); // rows of 16: the row-copy kernel, not the stock one
      const before = tf.memory().numTensors;
      expect(() => tf.gather(x, tf.tensor1d([1, 4], 'int32'))).toThrow(
        'GatherV2: the index value 4 is not in [0, 3]',
      );
      expect(tf.memory().numTensors).toBeLessThanOrEqual(before + 1); // the index tensor
      x.dispose();
    },
  );
});
