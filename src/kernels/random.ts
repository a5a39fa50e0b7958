import { TroupeError } from '../errors.js';
import * as tf from './tf.js';

/**
 * Seeded random streams, keyed by (seed, step, actor[, purpose]).
 *
 * Draws come from Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11; the generator PyTorch and JAX use), evaluated in JavaScript, never by a backend: the same
 * key gives the same numbers on every backend, thread and machine. A counter-based generator
 * needs no state but its position, so any stream can be recreated from its key and resumed at
 * any draw (`position` / `at`).
 *
 *   key     = (seed_lo, seed_hi ⊕ fnv1a(actor))
 *   counter = (block_lo, block_hi, step, fnv1a(purpose))
 */
export interface StreamKey {
  /** Run seed: a non-negative integer below 2^53. */
  readonly seed: number;
  /** Training step (or any integer that advances); a non-negative integer below 2^32. */
  readonly step: number;
  /** The actor drawing (`policy`, `policy/1`, `critic`, …). */
  readonly actor: string;
  /** What the draws are for (`sample`, `shuffle`, `dropout`, …); streams per purpose are independent. */
  readonly purpose?: string;
}

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32s (the low half is `Math.imul`). */
function mulhi32(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const lh = al * bh;
  const hl = ah * bl;
  const mid = ((al * bl) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (ah * bh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox4x32 with `rounds` rounds on counter `c` and key `k`, written into `out`. */
export function philox4x32(
  c: readonly number[],
  k: readonly number[],
  out: Uint32Array = new Uint32Array(4),
  rounds = 10,
): Uint32Array {
  let c0 = c[0] >>> 0;
  let c1 = c[1] >>> 0;
  let c2 = c[2] >>> 0;
  let c3 = c[3] >>> 0;
  let k0 = k[0] >>> 0;
  let k1 = k[1] >>> 0;
  for (let r = 0; r < rounds; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi32(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
  return out;
}

/** 32-bit FNV-1a of a string's UTF-16 code units. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function checkKey(key: StreamKey): void {
  const bad = (field: string, want: string) =>
    new TroupeError(
      'BAD_ARGUMENT',
      `Random stream key: '${field}' must be ${want}, got ${JSON.stringify(key[field as keyof StreamKey])}`,
      {
        details: { field },
      },
    );
  if (!Number.isSafeInteger(key.seed) || key.seed < 0) throw bad('seed', 'an integer in [0, 2^53)');
  if (!Number.isInteger(key.step) || key.step < 0 || key.step >= 2 ** 32) {
    throw bad('step', 'an integer in [0, 2^32)');
  }
  if (typeof key.actor !== 'string' || key.actor === '') throw bad('actor', 'a non-empty string');
}

const TWO_POW_M24 = 2 ** -24;
const TWO_POW_M53 = 2 ** -53;

export class RandomStream {
  readonly key: Readonly<StreamKey>;
  private readonly k: [number, number];
  private readonly c23: [number, number];
  private readonly block = new Uint32Array(4);
  /** Index of the next uint32 to hand out: block = pos >> 2, lane = pos & 3. */
  private pos = 0;

  private constructor(key: StreamKey) {
    checkKey(key);
    this.key = Object.freeze({ ...key });
    const seedHi = Math.floor(key.seed / 2 ** 32);
    this.k = [key.seed >>> 0, (seedHi ^ fnv1a(key.actor)) >>> 0];
    this.c23 = [key.step >>> 0, fnv1a(key.purpose ?? '')];
  }

  /** The stream for `key`, at its first draw. */
  static of(key: StreamKey): RandomStream {
    return new RandomStream(key);
  }

  /** The stream for `key`, resumed at `position` (a value `position` returned). */
  static at(key: StreamKey, position: number): RandomStream {
    const s = new RandomStream(key);
    if (!Number.isSafeInteger(position) || position < 0) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Random stream position must be a non-negative integer, got ${position}`,
      );
    }
    s.pos = position;
    if (position & 3) s.refill(Math.floor(position / 4));
    return s;
  }

  /** How many uint32s have been drawn: with the key, all that is needed to resume. */
  get position(): number {
    return this.pos;
  }

  /** A stream for another purpose at the same (seed, step, actor). */
  fork(purpose: string): RandomStream {
    return RandomStream.of({ ...this.key, purpose });
  }

  private refill(blockIndex: number): void {
    philox4x32(
      [blockIndex >>> 0, Math.floor(blockIndex / 2 ** 32) >>> 0, this.c23[0], this.c23[1]],
      this.k,
      this.block,
    );
  }

  /** The next uniform uint32. */
  nextUint32(): number {
    const lane = this.pos & 3;
    if (lane === 0) this.refill(this.pos / 4);
    this.pos++;
    return this.block[lane];
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) * TWO_POW_M53;
  }

  /** `n` uniform float32s in [0, 1) (24 random bits each). */
  uniform(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (this.nextUint32() >>> 8) * TWO_POW_M24;
    return out;
  }

  /** `n` standard-normal float32s (Box–Muller on two 24-bit uniforms, never log(0)). */
  normal(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const u1 = ((this.nextUint32() >>> 8) + 0.5) * TWO_POW_M24;
      const u2 = (this.nextUint32() >>> 8) * TWO_POW_M24;
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i] = mean + std * r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < n) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * u2);
    }
    return out;
  }

  /** A uniform integer in [0, max), without modulo bias (rejection sampling). */
  nextInt(max: number): number {
    if (!Number.isInteger(max) || max <= 0 || max > 2 ** 32) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `nextInt: max must be an integer in [1, 2^32], got ${max}`,
      );
    }
    const limit = 2 ** 32 - (2 ** 32 % max);
    for (;;) {
      const u = this.nextUint32();
      if (u < limit) return u % max;
    }
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** A shuffled copy of `items`. */
  shuffle<T>(items: readonly T[]): T[] {
    return Array.from(this.permutation(items.length), (i) => items[i]);
  }

  /**
   * One draw per row from categorical distributions `probs` [rows, V] (non-negative, each row
   * summing to > 0; rows need not be normalised). Inverse CDF in float64, so equal probabilities
   * give equal samples on every backend.
   */
  categorical(probs: ArrayLike<number>, rows: number): Int32Array {
    const V = probs.length / rows;
    if (!Number.isInteger(V) || V <= 0) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `categorical: ${probs.length} probabilities do not split into ${rows} rows`,
      );
    }
    const out = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      let total = 0;
      for (let v = 0; v < V; v++) total += probs[r * V + v];
      if (!(total > 0) || !Number.isFinite(total)) {
        throw new TroupeError(
          'BAD_ARGUMENT',
          `categorical: row ${r} has total probability ${total}`,
        );
      }
      const target = this.nextDouble() * total;
      let acc = 0;
      let pick = V - 1;
      for (let v = 0; v < V; v++) {
        acc += probs[r * V + v];
        if (target < acc) {
          pick = v;
          break;
        }
      }
      // Never pick a zero-probability token through rounding at the end of the row.
      while (probs[r * V + pick] <= 0 && pick > 0) pick--;
      out[r] = pick;
    }
    return out;
  }

  /** A float32 tensor of uniforms in [0, 1), drawn from this stream. */
  uniformTensor(shape: number[]): tf.Tensor {
    return tf.tensor(this.uniform(shape.reduce((a, b) => a * b, 1)), shape, 'float32');
  }

  /**
   * Inverted-dropout mask: 1/(1-rate) where kept, 0 where dropped, each kept with
   * probability 1 - rate. Multiply activations by it in training.
   */
  dropoutMask(shape: number[], rate: number): tf.Tensor {
    if (!(rate >= 0 && rate < 1)) {
      throw new TroupeError('BAD_ARGUMENT', `dropoutMask: rate must be in [0, 1), got ${rate}`);
    }
    const u = this.uniform(shape.reduce((a, b) => a * b, 1));
    const scale = 1 / (1 - rate);
    for (let i = 0; i < u.length; i++) u[i] = u[i] >= rate ? scale : 0;
    return tf.tensor(u, shape, 'float32');
  }
}
