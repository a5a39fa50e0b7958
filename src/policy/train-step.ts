import { TroupeError } from '../errors.js';
import * as tf from '../kernels/tf.js';
import type { CausalLM } from './model/causal-lm.js';
import type { AdamW } from './optim/index.js';

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
 * One optimiser step over micro-batches (gradient accumulation): gradients of each loss,
 * averaged over micro-batches and replicas weighted by each one's `weight` (so N replicas × k
 * micro-batches equal one worker with the global batch), clipped, applied with AdamW. A
 * non-finite gradient norm skips the update (and is reported).
 */
export async function optimizerStep(
  model: CausalLM,
  opt: AdamW,
  lossFns: ReadonlyArray<() => WeightedLoss>,
  o: StepOptions,
): Promise<StepOutcome> {
  const names = o.trainable ? [...o.trainable] : [...model.params.keys()];
  const vars = names.map((n) => model.params.get(n)!);
  const sizes = vars.map((v) => v.size);
  const total = sizes.reduce((a, b) => a + b, 0);
  // Σ over micro-batches (and, reduced, over replicas) of weight × [grads..., loss, metrics...],
  // then the total weight: the global weighted mean is one division away.
  let flat = new Float32Array(0);
  let metricNames: string[] = [];
  let weight = 0;
  for (const lossFn of lossFns) {
    let w = 0;
    let metricTensors: Record<string, tf.Tensor> = {};
    const { value, grads } = tf.variableGrads(() => {
      const out = lossFn();
      w = out.weight;
      metricTensors = Object.fromEntries(
        Object.entries(out.metrics ?? {}).map(([k, t]) => [k, tf.keep(t)]),
      );
      return out.loss;
    }, vars);
    if (flat.length === 0) {
      metricNames = Object.keys(metricTensors);
      flat = new Float32Array(total + 2 + metricNames.length);
    }
    let off = 0;
    for (const [i, v] of vars.entries()) {
      const g = grads[v.name];
      if (g) {
        const data = await g.data();
        for (let j = 0; j < data.length; j++) flat[off + j] += data[j] * w;
      }
      off += sizes[i];
    }
    flat[total] += (await value.data())[0] * w;
    for (const [j, k] of metricNames.entries())
      flat[total + 1 + j] += (await metricTensors[k].data())[0] * w;
    weight += w;
    tf.dispose([value, ...Object.values(grads), ...Object.values(metricTensors)]);
  }
  flat[flat.length - 1] = weight;
  const reduced: Float32Array = o.reducer ? o.reducer.sum(flat) : flat;
  const globalWeight = reduced[reduced.length - 1];
  if (!(globalWeight > 0)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      'optimizer step: the batch selects no tokens (total weight 0)',
    );
  }
  for (let i = 0; i < reduced.length - 1; i++) reduced[i] /= globalWeight;
  // Clip on the host copy (PyTorch clip_grad_norm_: coef = max/(‖g‖ + 1e-6), applied if < 1),
  // so only one set of gradient tensors ever exists on the device.
  let sq = 0;
  for (let i = 0; i < total; i++) sq += reduced[i] * reduced[i];
  const gradNorm = Math.sqrt(sq);
  if (o.maxGradNorm > 0 && !Number.isFinite(gradNorm)) {
    return {
      loss: reduced[total],
      weight: globalWeight,
      gradNorm,
      metrics: metricsOf(metricNames, reduced, total),
    };
  }
  const coef = o.maxGradNorm > 0 ? o.maxGradNorm / (gradNorm + 1e-6) : 1;
  if (coef < 1) for (let i = 0; i < total; i++) reduced[i] *= coef;
  if (opt.offloaded) {
    // The moments live on the host: the update runs there, on the host gradients.
    const host = new Map<string, Float32Array>();
    let at = 0;
    for (const [i, n] of names.entries()) {
      host.set(n, reduced.subarray(at, at + sizes[i]));
      at += sizes[i];
    }
    await opt.stepOnHost(host, o.lr);
    return {
      loss: reduced[total],
      weight: globalWeight,
      gradNorm,
      metrics: metricsOf(metricNames, reduced, total),
    };
  }
  const gradTensors = new Map<string, tf.Tensor>();
  let off = 0;
  for (const [i, n] of names.entries()) {
    gradTensors.set(n, tf.tensor(reduced.subarray(off, off + sizes[i]), vars[i].shape));
    off += sizes[i];
  }
  try {
    opt.step(gradTensors, o.lr);
  } finally {
    tf.dispose([...gradTensors.values()]);
  }
  return {
    loss: reduced[total],
    weight: globalWeight,
    gradNorm,
    metrics: metricsOf(metricNames, reduced, total),
  };
}

function metricsOf(names: string[], reduced: Float32Array, total: number): Record<string, number> {
  return Object.fromEntries(names.map((k, j) => [k, reduced[total + 1 + j]]));
}
