import { type GradConfig, getGradient, reshape, type Tensor, unsortedSegmentSum } from '../tf.js';

/**
 * Gradient of `GatherV2` for the embedding lookup (axis 0, no batch dims) as one
 * `UnsortedSegmentSum` straight into the table's shape. tfjs' own gradient follows it with a
 * transpose even when the permutation is the identity, which copies the whole [V, d] gradient (a
 * 147 MB temporary at GPT-2's vocabulary). Other gathers keep tfjs' gradient.
 *
 *   x: [V, ...inner]   indices: any shape   dy: [...indices, ...inner]  →  dx: [V, ...inner]
 */
export function embeddingGatherGrad(): GradConfig {
  const stock = getGradient('GatherV2');
  if (!stock) throw new Error('tfjs registered no GatherV2 gradient');
  return {
    kernelName: 'GatherV2',
    inputsToSave: ['x', 'indices'],
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs) => {
      const { axis, batchDims } = attrs as unknown as { axis: number; batchDims: number };
      const [x, indices] = saved;
      const normalized = axis < 0 ? axis + x.rank : axis;
      if (normalized !== 0 || (batchDims ?? 0) !== 0) return stock.gradFunc(dy, saved, attrs);
      const inner = x.shape.slice(1);
      const rows = indices.size;
      return {
        x: () =>
          unsortedSegmentSum(
            reshape(dy as Tensor, [rows, ...inner]),
            reshape(indices, [rows]),
            x.shape[0],
          ),
        indices: () => indices,
      };
    },
  };
}
