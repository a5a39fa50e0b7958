import { type GradConfig, getGradient, type Tensor, zeros } from '../tf.js';

/**
 * Ops whose output is piecewise constant in their inputs (comparisons, logic, predicates).
 * tfjs registers no gradient for them, so any `where(a > b, …)` inside a differentiated
 * function throws; their true gradient is zero almost everywhere.
 */
export const ZERO_GRADIENT_OPS: Readonly<Record<string, readonly string[]>> = {
  Equal: ['a', 'b'],
  NotEqual: ['a', 'b'],
  Greater: ['a', 'b'],
  GreaterEqual: ['a', 'b'],
  Less: ['a', 'b'],
  LessEqual: ['a', 'b'],
  LogicalAnd: ['a', 'b'],
  LogicalOr: ['a', 'b'],
  LogicalXor: ['a', 'b'],
  LogicalNot: ['x'],
  IsNan: ['x'],
  IsInf: ['x'],
  IsFinite: ['x'],
  ArgMax: ['x'],
  ArgMin: ['x'],
};

// The tape wants float32 gradients even for bool inputs (it rejects `zerosLike(bool)`).
function zeroGradient(kernelName: string, inputs: readonly string[]): GradConfig {
  return {
    kernelName,
    inputsToSave: [...inputs],
    gradFunc: (_dy: Tensor | Tensor[], saved: Tensor[]) =>
      Object.fromEntries(inputs.map((name, i) => [name, () => zeros(saved[i].shape, 'float32')])),
  };
}

/** The zero-gradient configs for ops that have no gradient yet in this thread. */
export function missingZeroGradients(): GradConfig[] {
  return Object.entries(ZERO_GRADIENT_OPS)
    .filter(([name]) => getGradient(name) === undefined)
    .map(([name, inputs]) => zeroGradient(name, inputs));
}
