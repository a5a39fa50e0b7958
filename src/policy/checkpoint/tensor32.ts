import { TroupeError } from '../../errors.js';

/** A dense float32 tensor in row-major order: plain typed arrays, no tfjs. */
export interface Tensor32 {
  shape: number[];
  data: Float32Array;
}

/** Parameter name → tensor. Checkpoint IO reads and writes these. */
export type StateDict = Map<string, Tensor32>;

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/** `[2, 3]` for messages. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** The tensor's bits as uint32s: copies and comparisons on these keep NaN payloads exact. */
export function bits(t: Float32Array): Uint32Array {
  return new Uint32Array(t.buffer, t.byteOffset, t.length);
}

/**
 * The error for a malformed checkpoint: `<file>: tensor '<name>': <what>` (or `<file>: <what>`
 * when no tensor is concerned). `details` always carries `file`, and `tensor` when there is one.
 */
export function badCheckpoint(
  file: string,
  what: string,
  details: { tensor?: string; field?: string; [k: string]: unknown } = {},
  cause?: unknown,
): TroupeError {
  const where = details.tensor === undefined ? '' : ` tensor '${details.tensor}':`;
  return new TroupeError('BAD_CHECKPOINT', `${file}:${where} ${what}`, {
    details: { file, ...details },
    cause,
  });
}
