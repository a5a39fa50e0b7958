import {
  broadcast_util,
  cast,
  type GradConfig,
  greater,
  greaterEqual,
  less,
  lessEqual,
  mul,
  reshape,
  sub,
  sum,
  type Tensor,
} from '../tf.js';

/**
 * Sum a gradient taken at the broadcast output shape back to an input's shape (the reduction
 * broadcasting implies). g: outShape → inShape.
 */
export function sumToShape(g: Tensor, inShape: number[]): Tensor {
  if (g.shape.length === inShape.length && g.shape.every((d, i) => d === inShape[i])) return g;
  const axes = broadcast_util.getReductionAxes(inShape, g.shape);
  return reshape(axes.length > 0 ? sum(g, axes) : g, inShape);
}

type Pick = (a: Tensor, b: Tensor) => Tensor;

/**
 * tfjs' gradients for `Maximum`, `Minimum` and `SquaredDifference` return the broadcast shape
 * for a broadcast input (`maximum([3,5], [5])` gives db of shape [3,5]), which the tape rejects.
 * These are the same derivatives, reduced to each input's shape.
 */
function binaryGrad(kernelName: string, dA: Pick, dB: Pick): GradConfig {
  return {
    kernelName,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
      const [a, b] = saved;
      return {
        a: () => sumToShape(mul(dy as Tensor, dA(a, b)), a.shape),
        b: () => sumToShape(mul(dy as Tensor, dB(a, b)), b.shape),
      };
    },
  };
}

const f32 = (t: Tensor) => cast(t, 'float32');

export const BROADCAST_SAFE_GRADS: readonly GradConfig[] = [
  // d max(a,b): to a where a ≥ b (ties go to a, as tfjs does), else to b.
  binaryGrad(
    'Maximum',
    (a, b) => f32(greaterEqual(a, b)),
    (a, b) => f32(less(a, b)),
  ),
  // d min(a,b): to a where a ≤ b, else to b.
  binaryGrad(
    'Minimum',
    (a, b) => f32(lessEqual(a, b)),
    (a, b) => f32(greater(a, b)),
  ),
  // d (a−b)²: 2(a−b) to a, −2(a−b) to b.
  binaryGrad(
    'SquaredDifference',
    (a, b) => mul(sub(a, b), 2),
    (a, b) => mul(sub(a, b), -2),
  ),
];
