import { type GradConfig, matMul, reshape, type Tensor } from '../tf.js';
import { sumToShape } from './broadcast-grads.js';

/**
 * Gradient of `BatchMatMul` that is correct under batch broadcasting. tfjs' own returns the
 * broadcast shape for the broadcast operand (`[2,5,4]·[4,6]` gives db of shape [2,4,6]), which
 * the tape rejects. Shapes: a [...Ba, M, K], b [...Bb, K, N], dy [...B, M, N] (before transposes).
 *
 * For a batched `a` against a shared 2-D `b` (every linear layer on [B, T, d] input) the batch
 * folds into rows, so db is one [K, B·M]·[B·M, N] product instead of a batched product and a sum.
 */
export const batchMatMulGrad: GradConfig = {
  kernelName: 'BatchMatMul',
  inputsToSave: ['a', 'b'],
  gradFunc: (dyIn: Tensor | Tensor[], saved: Tensor[], attrs) => {
    const dy = dyIn as Tensor;
    const [a, b] = saved;
    const { transposeA, transposeB } = attrs as unknown as {
      transposeA: boolean;
      transposeB: boolean;
    };
    const foldB = b.rank === 2 && a.rank > 2 && !transposeA;
    return {
      a: () => {
        const g = !transposeA
          ? matMul(dy, b, false, !transposeB)
          : transposeB
            ? matMul(b, dy, true, true)
            : matMul(b, dy, false, true);
        return sumToShape(g, a.shape);
      },
      b: () => {
        if (foldB) {
          const K = a.shape[a.rank - 1];
          const N = dy.shape[dy.rank - 1];
          const a2 = reshape(a, [-1, K]); // [B·M, K]
          const dy2 = reshape(dy, [-1, N]); // [B·M, N]
          return transposeB ? matMul(dy2, a2, true, false) : matMul(a2, dy2, true, false);
        }
        const g = !transposeB
          ? matMul(a, dy, !transposeA, false)
          : transposeA
            ? matMul(dy, a, true, true)
            : matMul(dy, a, true, false);
        return sumToShape(g, b.shape);
      },
    };
  },
};
