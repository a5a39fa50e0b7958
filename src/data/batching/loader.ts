import { TroupeError } from '../../errors.js';
import { RandomStream } from '../../kernels/random.js';

/** Where a loader is: the epoch, and the index (in that epoch's order) of the next item. */
export interface LoaderPosition {
  readonly epoch: number;
  readonly index: number;
}

export interface DataLoaderOptions<T, B> {
  /** Items per batch. */
  readonly batchSize: number;
  /** Run seed; epoch e's order is `RandomStream.of({ seed, step: e, actor, purpose: 'shuffle' })`. */
  readonly seed: number;
  /** Items → batch (e.g. `items => collateSft(items, { padId })`). */
  readonly collate: (items: T[]) => B;
  /** Shuffle each epoch. Default true; false keeps the items' order. */
  readonly shuffle?: boolean;
  /** Skip an epoch's last batch when it is short. Default false. */
  readonly dropLast?: boolean;
  /** Stop after this many epochs. Default: never stop. */
  readonly epochs?: number;
  /** Start here (a `position` saved with a checkpoint). Default { epoch: 0, index: 0 }. */
  readonly position?: LoaderPosition;
  /** The stream's actor name (one loader per data-parallel rank may differ). Default 'data'. */
  readonly actor?: string;
}

/**
 * Batches over in-memory items, epoch after epoch, in an order drawn from a seeded stream keyed by
 * the epoch. The order of an epoch depends only on (seed, epoch, actor, item count), so a loader
 * rebuilt from a saved `position` yields exactly the batches the uninterrupted loader would have.
 */
export class DataLoader<T, B = T[]> implements IterableIterator<B> {
  private readonly items: readonly T[];
  private readonly opts: DataLoaderOptions<T, B>;
  private epoch: number;
  private index: number;
  private order: Int32Array | undefined;
  private orderEpoch = -1;

  constructor(items: readonly T[], opts: DataLoaderOptions<T, B>) {
    const bad = (msg: string) => new TroupeError('BAD_ARGUMENT', `DataLoader: ${msg}`);
    if (items.length === 0) throw bad('no items to load');
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
      throw bad(`batchSize must be a positive integer, got ${opts.batchSize}`);
    }
    if (opts.dropLast && opts.batchSize > items.length) {
      throw bad(
        `batchSize ${opts.batchSize} is more than the ${items.length} items and dropLast is set, so no batch would ever come`,
      );
    }
    if (opts.epochs !== undefined && !(Number.isInteger(opts.epochs) && opts.epochs >= 0)) {
      throw bad(`epochs must be a non-negative integer, got ${opts.epochs}`);
    }
    const { epoch = 0, index = 0 } = opts.position ?? {};
    if (
      !Number.isInteger(epoch) ||
      epoch < 0 ||
      !Number.isInteger(index) ||
      index < 0 ||
      index > items.length
    ) {
      throw bad(
        `position must be { epoch ≥ 0, 0 ≤ index ≤ ${items.length} } (integers), got ${JSON.stringify(opts.position)}`,
      );
    }
    this.items = items;
    this.opts = opts;
    this.epoch = epoch;
    this.index = index;
    this.settle();
  }

  /** Where the next batch starts: save it with a checkpoint, pass it back as `position`. */
  get position(): LoaderPosition {
    return { epoch: this.epoch, index: this.index };
  }

  /** Full batches in an epoch (plus one short batch unless `dropLast`). */
  get batchesPerEpoch(): number {
    const n = this.items.length / this.opts.batchSize;
    return this.opts.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** The order of an epoch's items (indices into `items`). */
  orderOf(epoch: number): Int32Array {
    if (this.orderEpoch !== epoch || !this.order) {
      const n = this.items.length;
      this.order =
        this.opts.shuffle === false
          ? Int32Array.from({ length: n }, (_, i) => i)
          : RandomStream.of({
              seed: this.opts.seed,
              step: epoch,
              actor: this.opts.actor ?? 'data',
              purpose: 'shuffle',
            }).permutation(n);
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  next(): IteratorResult<B> {
    if (this.opts.epochs !== undefined && this.epoch >= this.opts.epochs) {
      return { done: true, value: undefined };
    }
    const order = this.orderOf(this.epoch);
    const end = Math.min(this.index + this.opts.batchSize, order.length);
    const batch = Array.from(order.subarray(this.index, end), (i) => this.items[i]);
    this.index = end;
    this.settle();
    return { done: false, value: this.opts.collate(batch) };
  }

  [Symbol.iterator](): IterableIterator<B> {
    return this;
  }

  /** Move to the next epoch when this one has no batch left. */
  private settle(): void {
    const left = this.items.length - this.index;
    if (left === 0 || (this.opts.dropLast && left < this.opts.batchSize)) {
      this.epoch++;
      this.index = 0;
    }
  }
}
