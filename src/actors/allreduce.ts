import { TroupeError } from '../errors.js';

/**
 * All-reduce over shared memory for N replicas in N threads, in a fixed order: every replica
 * gets the same sum, bit for bit, whatever the timing.
 *
 * Layout of the SharedArrayBuffer:
 *   Int32 header [generation, arrived]   then   Float32 slots [N, length]   then   Float32 sum [length]
 */
export interface AllReduceShared {
  readonly buffer: SharedArrayBuffer;
  readonly replicas: number;
  readonly length: number;
}

const HEADER_BYTES = 8;
const GEN = 0;
const ARRIVED = 1;

/** Shared memory for `replicas` replicas reducing vectors of `length` floats (made once, by the controller). */
export function createAllReduce(replicas: number, length: number): AllReduceShared {
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `all-reduce: replicas must be an integer ≥ 1, got ${replicas}`,
    );
  }
  if (!Number.isInteger(length) || length < 1) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `all-reduce: length must be an integer ≥ 1, got ${length}`,
    );
  }
  return {
    buffer: new SharedArrayBuffer(HEADER_BYTES + (replicas + 1) * length * 4),
    replicas,
    length,
  };
}

/** One replica's side of an all-reduce group. Blocking: call it from a worker thread. */
export class AllReduce {
  private readonly header: Int32Array;
  private readonly slots: Float32Array;
  private readonly total: Float32Array;

  constructor(
    readonly shared: AllReduceShared,
    readonly rank: number,
    /** How long a replica waits for the others before failing (a dead peer must not hang it). */
    readonly timeoutMs = 600_000,
  ) {
    if (!Number.isInteger(rank) || rank < 0 || rank >= shared.replicas) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `all-reduce: rank ${rank} is outside [0, ${shared.replicas})`,
      );
    }
    this.header = new Int32Array(shared.buffer, 0, 2);
    this.slots = new Float32Array(shared.buffer, HEADER_BYTES, shared.replicas * shared.length);
    this.total = new Float32Array(
      shared.buffer,
      HEADER_BYTES + shared.replicas * shared.length * 4,
      shared.length,
    );
  }

  /**
   * Σ over replicas of `local` (length `shared.length`), each element summed in rank order
   * 0..N−1 (from 0, each add rounded to float32) so every replica gets the identical result. Reduce-scatter then gather: after
   * every slot is written (a barrier), replica r sums the r-th of N contiguous chunks of every
   * slot into the shared sum; after every chunk is summed (a barrier), each copies the sum out. A
   * fast replica's next call writes its slot and the sum only after the next first barrier, that
   * is after every replica has copied this one out.
   */
  sum(local: Float32Array): Float32Array {
    const { replicas, length } = this.shared;
    // Every replica sends the same number of values, at most the group's length.
    const n = local.length;
    if (n > length) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `all-reduce: replica ${this.rank} sent ${n} values, the group reduces at most ${length}`,
      );
    }
    this.slots.set(local, this.rank * length);
    this.barrier();
    const [from, to] = chunkOf(n, replicas, this.rank);
    const slots = this.slots;
    const total = this.total;
    for (let i = from; i < to; i++) {
      let s = 0;
      for (let r = 0; r < replicas; r++) s = Math.fround(s + slots[r * length + i]);
      total[i] = s;
    }
    this.barrier();
    return total.slice(0, n);
  }

  /** Sense-reversing barrier on the generation counter. */
  private barrier(): void {
    const h = this.header;
    const gen = Atomics.load(h, GEN);
    if (Atomics.add(h, ARRIVED, 1) === this.shared.replicas - 1) {
      Atomics.store(h, ARRIVED, 0);
      Atomics.add(h, GEN, 1);
      Atomics.notify(h, GEN);
      return;
    }
    const deadline = Date.now() + this.timeoutMs;
    while (Atomics.load(h, GEN) === gen) {
      const left = deadline - Date.now();
      if (left <= 0 || Atomics.wait(h, GEN, gen, left) === 'timed-out') {
        throw new TroupeError(
          'ACTOR_TIMEOUT',
          `all-reduce: replica ${this.rank} waited ${this.timeoutMs} ms for the other ${this.shared.replicas - 1}; ` +
            'a peer has died or stalled',
          { details: { rank: this.rank } },
        );
      }
    }
  }
}

/** [from, to) of chunk `rank` when n values are cut into `parts` contiguous chunks (sizes ⌈n/parts⌉…). */
export function chunkOf(n: number, parts: number, rank: number): [number, number] {
  const size = Math.ceil(n / parts);
  return [Math.min(n, rank * size), Math.min(n, (rank + 1) * size)];
}
