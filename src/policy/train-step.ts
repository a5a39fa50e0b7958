import * as tf from '../kernels/tf.js';
import type { CausalLM } from './model/causal-lm.js';
import { type AdamW, clipGradNorm } from './optim/index.js';

/** Sums a vector over data-parallel replicas (an all-reduce); every replica gets the same sum. */
export interface Reducer {
  sum(values: Float32Array): Float32Array;
}

/**
 * A loss for one step: the scalar to minimise, its weight in the global mean (tokens, pairs,
 * sequences), and scalar metrics (means over this replica's batch).
 */
export interface WeightedLoss {
  readonly loss: tf.Scalar;
  readonly weight: number;
  readonly metrics?: Readonly<Record<string, tf.Tensor>>;
}

export interface StepOptions {
  readonly lr: number;
  /** Global gradient-norm clip; 0 = off. */
  readonly maxGradNorm: number;
  /** All-reduce across data-parallel replicas; absent on a single worker. */
  readonly reducer?: Reducer;
  /** Parameters to train (default: every parameter of the model). */
  readonly trainable?: readonly string[];
}

export interface StepOutcome {
  /** The loss as a weighted mean over every replica's batch. */
  readonly loss: number;
  readonly weight: number;
  /** Pre-clip global gradient norm (NaN/Inf: the step was skipped). */
  readonly gradNorm: number;
  /** Metrics, weighted-mean over replicas like the loss. */
  readonly metrics: Record<string, number>;
}

/**
 * One optimiser step: gradients of `lossFn`, averaged over replicas weighted by each replica's
 * `weight` (so N replicas equal one worker with the global batch), clipped, applied with AdamW.
 * A non-finite gradient norm skips the update (and is reported).
 */
export async function optimizerStep(
  model: CausalLM,
  opt: AdamW,
  lossFn: () => WeightedLoss,
  o: StepOptions,
): Promise<StepOutcome> {
  const names = o.trainable ? [...o.trainable] : [...model.params.keys()];
  const vars = names.map((n) => model.params.get(n)!);
  let weight = 0;
  let metricTensors: Readonly<Record<string, tf.Tensor>> = {};
  const { value, grads } = tf.variableGrads(() => {
    const out = lossFn();
    weight = out.weight;
    metricTensors = Object.fromEntries(
      Object.entries(out.metrics ?? {}).map(([k, t]) => [k, tf.keep(t)]),
    );
    return out.loss;
  }, vars);
  const metricNames = Object.keys(metricTensors);
  // Layout of the reduced vector: [grads × weight..., loss × weight, metrics × weight..., weight]
  const sizes = vars.map((v) => v.size);
  const total = sizes.reduce((a, b) => a + b, 0);
  const flat = new Float32Array(total + 2 + metricNames.length);
  let off = 0;
  for (const [i, v] of vars.entries()) {
    const g = grads[v.name];
    if (g) flat.set(await g.data(), off);
    off += sizes[i];
  }
  flat[total] = (await value.data())[0];
  for (const [j, k] of metricNames.entries())
    flat[total + 1 + j] = (await metricTensors[k].data())[0];
  tf.dispose([value, ...Object.values(grads), ...Object.values(metricTensors)]);

  let reduced: Float32Array = flat;
  let globalWeight = weight;
  if (o.reducer) {
    for (let i = 0; i < flat.length - 1; i++) flat[i] *= weight;
    flat[flat.length - 1] = weight;
    reduced = o.reducer.sum(flat);
    globalWeight = reduced[reduced.length - 1];
    for (let i = 0; i < reduced.length - 1; i++) reduced[i] /= globalWeight;
  }
  const gradTensors = new Map<string, tf.Tensor>();
  off = 0;
  for (const [i, n] of names.entries()) {
    gradTensors.set(n, tf.tensor(reduced.subarray(off, off + sizes[i]), vars[i].shape));
    off += sizes[i];
  }
  let gradNorm = Number.NaN;
  try {
    if (o.maxGradNorm > 0) {
      const clipped = await clipGradNorm(gradTensors, o.maxGradNorm);
      gradNorm = clipped.totalNorm;
      if (Number.isFinite(gradNorm)) opt.step(clipped.grads, o.lr);
      tf.dispose([...clipped.grads.values()]);
    } else {
      opt.step(gradTensors, o.lr);
    }
  } finally {
    tf.dispose([...gradTensors.values()]);
  }
  return {
    loss: reduced[total],
    weight: globalWeight,
    gradNorm,
    metrics: Object.fromEntries(metricNames.map((k, j) => [k, reduced[total + 1 + j]])),
  };
}
