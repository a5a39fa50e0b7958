import { describe, expect, it } from 'vitest';
import * as tf from '../../src/kernels/tf.js';
import { permute } from '../../src/policy/model/layers.js';
import { useBackend } from '../helpers/backends.js';

describe('permute equals tf.transpose, and skips the copy when only size-1 axes move', () => {
  it.each([
    [
      [2, 1, 3, 4],
      [0, 2, 1, 3],
    ], // a decoding step's heads: a reshape
    [
      [2, 5, 3, 4],
      [0, 2, 1, 3],
    ], // a prompt's: a transpose
    [
      [1, 2, 3],
      [2, 1, 0],
    ],
    [
      [2, 1, 1, 3, 4],
      [0, 2, 3, 1, 4],
    ],
    [
      [3, 1, 2, 1, 4],
      [0, 3, 1, 2, 4],
    ],
  ])('%j by %j', async (shape, perm) => {
    await useBackend('wasm');
    const n = shape.reduce((a, b) => a * b, 1);
    const x = tf.tensor(
      Array.from({ length: n }, (_, i) => i),
      shape,
    );
    const want = tf.transpose(x, perm);
    const before = tf.memory().numTensors;
    const got = permute(x, perm);
    expect(got.shape).toEqual(want.shape);
    expect(Array.from(await got.data())).toEqual(Array.from(await want.data()));
    const sorted = perm.filter((a) => shape[a] > 1).every((a, i, m) => i === 0 || a > m[i - 1]);
    expect(got.dataId === x.dataId).toBe(sorted); // a reshape shares the input's data
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([x, want, got]);
  });
});
