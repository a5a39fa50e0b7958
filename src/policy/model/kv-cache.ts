import type { HostKV } from '../../kernels/custom/native-decode.js';
import * as tf from '../../kernels/tf.js';

/**
 * Host buffers of disposed caches (and of those a cache outgrew), by length, for the next cache
 * of that size to take instead of a new Float32Array: a generation allocated its caches afresh
 * (16 MB at the GRPO bench job's 64 rows: the OS zeroing the pages as the prefill first wrote
 * them, and the external memory a GC each generation), and the next one asks for the same sizes.
 * A taken buffer keeps the values of its last use: the kernel writes each position before it
 * reads it (a forward appends its tokens before attending), growth and `expand` copy what is
 * written, and nothing reads past the cached length. At most SPARE_BYTES are kept (a thread's).
 */
const spare = new Map<number, Float32Array[]>();
let spareBytes = 0;
const SPARE_BYTES = 64 * 2 ** 20;

function takeBuffer(length: number): Float32Array {
  const kept = spare.get(length)?.pop();
  if (!kept) return new Float32Array(length);
  spareBytes -= kept.byteLength;
  return kept;
}

function giveBack(b: Float32Array): void {
  if (spareBytes + b.byteLength > SPARE_BYTES) return;
  const list = spare.get(b.length) ?? [];
  list.push(b);
  spare.set(b.length, list);
  spareBytes += b.byteLength;
}

/**
 * Keys and values of every layer for the tokens seen so far, plus which of them are real. Two
 * stores, chosen by the model at the first forward:
 *
 *   tensors (any backend): keys[l], values[l] [B, KV, S, hd], owned (kept across `await`s,
 *     disposed on `dispose()`), replaced by longer ones each step; after `expand`, until the
 *     next forward, those of the source's rows and which row each copies (`layerRows`)
 *   host (the native decoder block, wasm/cpu): per layer two buffers [B, KV, capacity, hd] the
 *     kernel writes in place; capacity doubles when a forward would overflow it
 *
 *   mask: [B·S] 1 = real token     seen: [B] real tokens per row
 */
export class KVCache {
  private keys: tf.Tensor[] = [];
  private values: tf.Tensor[] = [];
  private host: HostKV[] = [];
  private store?: 'tensors' | 'host';
  private keyMask: Uint8Array;
  private realCounts: Int32Array;
  private len = 0;
  /**
   * After `expand` (tensor store), until the next commit: keys[l] and values[l] are still the
   * source cache's [D, KV, P, hd] (clones: this cache owns them) for the layers where `pending`
   * holds, and row b copies the source's row `index[b]` ([B] int32). A forward
   * joins them with its new keys in one pass (block.ts expandedKV) instead of a copy of every
   * row here and a concatenation there; `layer` makes the copy when asked for the tensors.
   */
  private source?: { index: tf.Tensor; pending: boolean[] };

  private readonly capacity: number;

  /**
   * `capacity`: the tokens per row the host store reserves at first (prompt + new tokens);
   * `store`: which store to use (default: the model's choice at the first forward).
   */
  constructor(
    readonly batch: number,
    opts: { readonly capacity?: number; readonly store?: 'tensors' | 'host' } = {},
  ) {
    this.capacity = opts.capacity ?? 0;
    this.store = opts.store;
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

  /** Which store holds the keys and values (undefined before the first forward). */
  get kind(): 'tensors' | 'host' | undefined {
    return this.store;
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

  /** Layer l's cached keys and values as tensors (undefined before the first forward). */
  layer(l: number): { k: tf.Tensor; v: tf.Tensor } | undefined {
    this.use('tensors');
    const src = this.source;
    if (src?.pending[l]) {
      const [k, v] = [this.keys[l], this.values[l]];
      // kept: a caller's tidy around this call must not take the cache's tensors
      this.keys[l] = tf.keep(tf.gather(k, src.index));
      this.values[l] = tf.keep(tf.gather(v, src.index));
      tf.dispose([k, v]);
      src.pending[l] = false;
    }
    return this.keys[l] ? { k: this.keys[l], v: this.values[l] } : undefined;
  }

  /**
   * Layer l's cached keys and values for a forward: as `layer` gives them, or after `expand`
   * those of the source's rows ([D, KV, P, hd]) with `rows` ([B] int32): row b continues the
   * source's row rows[b] (block.ts joins them with the new keys).
   */
  layerRows(l: number): { k: tf.Tensor; v: tf.Tensor; rows?: tf.Tensor } | undefined {
    this.use('tensors');
    const src = this.source;
    if (!src?.pending[l]) return this.layer(l);
    return { k: this.keys[l], v: this.values[l], rows: src.index };
  }

  /**
   * Layer l's host buffers, holding at least `length + T` positions per row: allocated at the
   * first forward (`capacity` or more), doubled (cached positions copied) when too small.
   */
  hostLayer(l: number, kvHeads: number, headDim: number, T: number): HostKV {
    this.use('host');
    const need = this.len + T;
    const old = this.host[l];
    if (old && old.capacity >= need) return old;
    const capacity = Math.max(need, this.capacity, old ? 2 * old.capacity : 0);
    const rows = this.batch * kvHeads;
    const grown = {
      k: takeBuffer(rows * capacity * headDim),
      v: takeBuffer(rows * capacity * headDim),
      capacity,
    };
    if (old) {
      const used = this.len * headDim;
      for (let r = 0; r < rows; r++) {
        const from = r * old.capacity * headDim;
        grown.k.set(old.k.subarray(from, from + used), r * capacity * headDim);
        grown.v.set(old.v.subarray(from, from + used), r * capacity * headDim);
      }
      giveBack(old.k);
      giveBack(old.v);
    }
    this.host[l] = grown;
    return grown;
  }

  /**
   * Replace every layer's keys/values with the extended ones (already concatenated, and kept
   * out of any tidy by the caller) and record the new tokens' mask.
   */
  commit(keys: tf.Tensor[], values: tf.Tensor[], newMask: Uint8Array, T: number): void {
    tf.dispose([...this.keys, ...this.values]);
    this.dropSource();
    this.keys = keys;
    this.values = values;
    this.advance(newMask, T);
  }

  /** Record T new tokens per row (their keys and values already written to the host store). */
  advance(newMask: Uint8Array, T: number): void {
    this.keyMask = this.keyMaskWith(newMask, T);
    this.len += T;
    for (let b = 0; b < this.batch; b++) {
      for (let t = 0; t < T; t++) this.realCounts[b] += newMask[b * T + t];
    }
  }

  /**
   * A cache of `rows.length` rows, row i a copy of this cache's row rows[i] (keys, values, mask
   * and counts): prompts shared by several samples are prefilled once and copied per sample.
   */
  expand(rows: ArrayLike<number>): KVCache {
    const n = rows.length;
    for (let i = 0; i < n; i++) {
      if (!Number.isInteger(rows[i]) || rows[i] < 0 || rows[i] >= this.batch) {
        throw new RangeError(
          `KVCache.expand: row ${rows[i]} (at ${i}) is not in 0..${this.batch - 1}`,
        );
      }
    }
    if (this.source) for (let l = 0; l < this.keys.length; l++) this.layer(l); // rows copied first
    const out = new KVCache(n, { capacity: this.capacity, store: this.store });
    out.len = this.len;
    out.keyMask = new Uint8Array(n * this.len);
    for (let i = 0; i < n; i++) {
      const r = rows[i];
      out.keyMask.set(this.keyMask.subarray(r * this.len, (r + 1) * this.len), i * this.len);
      out.realCounts[i] = this.realCounts[r];
    }
    if (this.store === 'tensors' && this.keys.length > 0) {
      // the rows are copied by the next forward's blocks (layerRows), or by `layer`
      out.keys = this.keys.map((k) => tf.clone(k));
      out.values = this.values.map((v) => tf.clone(v));
      out.source = {
        index: tf.tensor1d(Int32Array.from(rows), 'int32'),
        pending: this.keys.map(() => true),
      };
    }
    out.host = this.host.map(({ k, v, capacity }) => {
      const per = k.length / this.batch; // one row: KV · capacity · hd
      const grown = { k: takeBuffer(n * per), v: takeBuffer(n * per), capacity };
      for (let i = 0; i < n; i++) {
        grown.k.set(k.subarray(rows[i] * per, (rows[i] + 1) * per), i * per);
        grown.v.set(v.subarray(rows[i] * per, (rows[i] + 1) * per), i * per);
      }
      return grown;
    });
    return out;
  }

  dispose(): void {
    tf.dispose([...this.keys, ...this.values]);
    this.dropSource();
    this.keys = [];
    this.values = [];
    for (const { k, v } of this.host) {
      giveBack(k);
      giveBack(v);
    }
    this.host = [];
  }

  private dropSource(): void {
    this.source?.index.dispose();
    this.source = undefined;
  }

  private use(store: 'tensors' | 'host'): void {
    if (this.store && this.store !== store) {
      throw new Error(
        `KVCache: this cache holds ${this.store === 'host' ? 'host buffers' : 'tensors'}; ` +
          `a forward cannot switch it to ${store} (one cache per generation, one model per cache)`,
      );
    }
    this.store = store;
  }
}
