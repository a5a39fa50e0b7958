import { TroupeError } from '../../errors.js';

/**
 * How a global batch of `count` rows is split for data parallelism: over `replicas` learners, and
 * each learner's share over `micro` gradient-accumulation micro-batches. Rows stay contiguous and
 * in order; at each level the sizes differ by at most one (the boundaries are ⌊i·n/k⌋, as
 * `torch.tensor_split` splits). An empty micro-batch is left out, so a learner with fewer rows
 * than `micro` gets fewer micro-batches, and one with no rows (count < replicas) gets none. No
 * replicas (a run without a critic) is no shards.
 * `take(begin, end)` makes the part of rows [begin, end): a slice of the trainer's own batch.
 *   → for each replica, its micro-batches
 */
export function shard<T>(
  count: number,
  replicas: number,
  micro: number,
  take: (begin: number, end: number) => T,
): T[][] {
  for (const [name, n, min] of [
    ['count', count, 0],
    ['replicas', replicas, 0],
    ['micro', micro, 1],
  ] as const) {
    if (!Number.isSafeInteger(n) || n < min) {
      throw new TroupeError('BAD_ARGUMENT', `shard: ${name} must be an integer ≥ ${min}, got ${n}`);
    }
  }
  const cut = (i: number, n: number, k: number) => Math.floor((i * n) / k);
  return Array.from({ length: replicas }, (_, r) => {
    const lo = cut(r, count, replicas);
    const n = cut(r + 1, count, replicas) - lo;
    const parts: T[] = [];
    for (let k = 0; k < micro; k++) {
      const begin = lo + cut(k, n, micro);
      const end = lo + cut(k + 1, n, micro);
      if (end > begin) parts.push(take(begin, end));
    }
    return parts;
  });
}
