import * as tf from '../../kernels/tf.js';

/**
 * Keys and values of every layer for the tokens seen so far, plus which of them are real.
 * Owned tensors: the cache keeps them across `await`s and disposes them on `dispose()`.
 *
 *   keys[l], values[l]: [B, KV, S, hd]     mask: [B·S]     seen: [B] real tokens per row
 */
export class KVCache {
  private keys: tf.Tensor[] = [];
  private values: tf.Tensor[] = [];
  private keyMask: Uint8Array;
  private realCounts: Int32Array;
  private len = 0;

  constructor(readonly batch: number) {
    this.keyMask = new Uint8Array(0);
    this.realCounts = new Int32Array(batch);
  }

  /** Cached tokens per row (real and padding). */
  get length(): number {
    return this.len;
  }

  /** Real tokens per row so far: the next token's position. */
  get seen(): Int32Array {
    return this.realCounts;
  }

  /** Mask of cached tokens followed by `newMask` ([B·T]): the keys the next forward attends. */
  keyMaskWith(newMask: Uint8Array, T: number): Uint8Array {
    const B = this.batch;
    const S = this.len + T;
    const out = new Uint8Array(B * S);
    for (let b = 0; b < B; b++) {
      out.set(this.keyMask.subarray(b * this.len, (b + 1) * this.len), b * S);
      out.set(newMask.subarray(b * T, (b + 1) * T), b * S + this.len);
    }
    return out;
  }

  /** Layer l's cached keys and values (undefined before the first forward). */
  layer(l: number): { k: tf.Tensor; v: tf.Tensor } | undefined {
    return this.keys[l] ? { k: this.keys[l], v: this.values[l] } : undefined;
  }

  /**
   * Replace every layer's keys/values with the extended ones (already concatenated, and kept
   * out of any tidy by the caller) and record the new tokens' mask.
   */
  commit(keys: tf.Tensor[], values: tf.Tensor[], newMask: Uint8Array, T: number): void {
    const keyMask = this.keyMaskWith(newMask, T);
    tf.dispose([...this.keys, ...this.values]);
    this.keys = keys;
    this.values = values;
    this.keyMask = keyMask;
    this.len += T;
    for (let b = 0; b < this.batch; b++) {
      for (let t = 0; t < T; t++) this.realCounts[b] += newMask[b * T + t];
    }
  }

  dispose(): void {
    tf.dispose([...this.keys, ...this.values]);
    this.keys = [];
    this.values = [];
  }
}
