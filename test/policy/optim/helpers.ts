import { expect } from 'vitest';
import { type ErrorCode, hasCode } from '../../../src/errors.js';
import { RandomStream } from '../../../src/kernels/random.js';
import * as tf from '../../../src/kernels/tf.js';

/** Assert `fn` throws a TroupeError with `code` whose message contains each of `parts`. */
export function expectTroupeError(fn: () => unknown, code: ErrorCode, ...parts: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(hasCode(caught, code), `expected TroupeError ${code}, got ${String(caught)}`).toBe(true);
  for (const p of parts) expect((caught as Error).message).toContain(p);
}

/** Seeded standard-normal float32 values, distinct per (step, purpose). */
export function normal(n: number, step: number, purpose: string, std = 1): Float32Array {
  return RandomStream.of({ seed: 11, step, actor: 'optim-test', purpose }).normal(n, 0, std);
}

/** A float32 tensor of `shape` from `data`. */
export function f32(data: ArrayLike<number>, shape: readonly number[]): tf.Tensor {
  return tf.tensor(Float32Array.from(data), [...shape], 'float32');
}

/** Dispose every tensor of a name → tensor map. */
export function disposeAll(m: ReadonlyMap<string, tf.Tensor>): void {
  tf.dispose([...m.values()]);
}
