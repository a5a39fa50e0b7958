import { expect } from 'vitest';
import type { LossOutput, PairedInputs } from '../../../src/algorithms/losses/index.js';
import { hasCode } from '../../../src/errors.js';
import { RandomStream } from '../../../src/kernels/random.js';
import * as tf from '../../../src/kernels/tf.js';
import { expectClose, expectNoLeak, read } from '../../helpers/backends.js';
import type { RefOut } from './reference.js';

export const f32 = (data: ArrayLike<number>, shape?: number[]) =>
  tf.tensor(Float32Array.from(data), shape ?? [data.length], 'float32');

/** Seeded draws, rounded to float32 so that the tensor and the float64 reference see one input. */
export function stream(purpose: string): RandomStream {
  return RandomStream.of({ seed: 2024, step: 0, actor: 'losses', purpose });
}
export function normal(purpose: string, n: number, mean = 0, std = 1): Float64Array {
  return Float64Array.from(stream(purpose).normal(n, mean, std));
}
export function uniform(purpose: string, n: number): Float64Array {
  return Float64Array.from(stream(purpose).uniform(n));
}
/** Integers in [lo, hi]. */
export function ints(purpose: string, n: number, lo: number, hi: number): Float64Array {
  const s = stream(purpose);
  return Float64Array.from({ length: n }, () => lo + s.nextInt(hi - lo + 1));
}

export interface Evaluated {
  loss: number;
  metrics: Record<string, number>;
}

/**
 * Build tensors with `make`, run `loss` on them, read loss and metrics, dispose everything,
 * and check that no tensor outlived the call.
 */
export function evaluate<I extends object>(
  make: () => I,
  loss: (inputs: I) => LossOutput,
): Promise<Evaluated> {
  return expectNoLeak(async () => {
    const inputs = make();
    const out = loss(inputs);
    try {
      expect(out.loss.shape).toEqual([]);
      const metrics: Record<string, number> = {};
      for (const [k, v] of Object.entries(out.metrics)) {
        expect(v.shape, k).toEqual([]);
        metrics[k] = (await read(v))[0];
      }
      return { loss: (await read(out.loss))[0], metrics };
    } finally {
      tf.dispose([out.loss, ...Object.values(out.metrics)]);
      tf.dispose(Object.values(inputs).filter((v) => v instanceof tf.Tensor));
    }
  });
}

/** Compare loss and every metric (same key set) with a reference. */
export function expectMatches(
  got: Evaluated,
  want: RefOut,
  tol: { atol?: number; rtol?: number } = {},
  what = 'loss',
): void {
  expect(Object.keys(got.metrics).sort()).toEqual(Object.keys(want.metrics).sort());
  const { atol = 1e-5, rtol = 1e-4 } = tol;
  expectClose([got.loss], [want.loss], { atol, rtol, what: `${what}: loss` });
  for (const [k, v] of Object.entries(want.metrics)) {
    expectClose([got.metrics[k]], [v], { atol, rtol, what: `${what}: ${k}` });
  }
}

/** Assert `fn` throws a TroupeError with `code` whose message contains each of `parts`. */
export function expectTroupeError(fn: () => unknown, code: string, ...parts: string[]): void {
  try {
    fn();
  } catch (e) {
    expect(hasCode(e, code as never), String(e)).toBe(true);
    for (const p of parts) expect((e as Error).message).toContain(p);
    return;
  }
  throw new Error(`expected a TroupeError ${code}`);
}

/** Run `fn` on tensors `make()` builds, disposing them afterwards; asserts nothing leaks. */
export function withInputs<I extends object>(
  make: () => I,
  fn: (inputs: I) => void,
): Promise<void> {
  return expectNoLeak(() => {
    const inputs = make();
    try {
      fn(inputs);
    } finally {
      tf.dispose(Object.values(inputs).filter((v) => v instanceof tf.Tensor));
    }
  });
}

/*
 * DPO fixture, β = 0.1:
 *   row 0: π_c − r_c = −10 − (−11) = 1, π_r − r_r = −12 − (−11) = −1 → h = 2, βh = 0.2
 *   row 1: π_c = r_c = −5, π_r = r_r = −7 → h = 0
 */
export const DPO_DATA: Readonly<Record<string, number[]>> = {
  policyChosenLogps: [-10, -5],
  policyRejectedLogps: [-12, -7],
  refChosenLogps: [-11, -5],
  refRejectedLogps: [-11, -7],
};
/** The DPO fixture as tensors, with `over` replacing or adding fields (made only if used). */
export const dpoInputs = (over: Record<string, () => tf.Tensor> = {}): PairedInputs => {
  const fields: Record<string, () => tf.Tensor> = {};
  for (const [k, v] of Object.entries(DPO_DATA)) fields[k] = () => f32(v);
  Object.assign(fields, over);
  return Object.fromEntries(
    Object.entries(fields).map(([k, make]) => [k, make()]),
  ) as unknown as PairedInputs;
};
