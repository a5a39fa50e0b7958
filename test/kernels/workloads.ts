import {
  entropyFromLogits,
  klEstimate,
  logProbsFromLogits,
  logSoftmax,
  maskedMean,
  maskedSum,
  maskedVar,
  maskedWhiten,
} from '../../src/kernels/numerics/index.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';

/**
 * Workloads whose kernels the coverage test checks: each runs a piece of the project forward and
 * backward on small inputs. New models and losses add a workload here.
 */
export interface Workload {
  readonly name: string;
  readonly run: () => void;
}

const B = 2;
const T = 5;
const V = 11;

function draws(step: number) {
  const s = RandomStream.of({ seed: 7, step, actor: 'workload' });
  return {
    logits: tf.tensor(s.normal(B * T * V), [B, T, V]),
    labels: tf.tensor(
      Int32Array.from({ length: B * T }, () => s.nextInt(V)),
      [B, T],
      'int32',
    ),
    x: tf.tensor(s.normal(B * T), [B, T]),
    y: tf.tensor(s.normal(B * T), [B, T]),
    mask: tf.tensor(
      Float32Array.from({ length: B * T }, () => (s.nextInt(3) > 0 ? 1 : 0)),
      [B, T],
    ),
  };
}

/** Forward and gradient of Σ f(x) with respect to `x`, all tensors freed. */
function forwardBackward(f: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor): void {
  tf.tidy(() => {
    f(x);
    tf.grad((v: tf.Tensor) => tf.sum(f(v)))(x);
  });
}

function numerics(name: string, body: (d: ReturnType<typeof draws>) => void): Workload {
  return {
    name,
    run: () => {
      const d = draws(name.length);
      try {
        body(d);
      } finally {
        tf.dispose(Object.values(d));
      }
    },
  };
}

export const WORKLOADS: readonly Workload[] = [
  numerics('numerics/logSoftmax', (d) => forwardBackward((z) => logSoftmax(z), d.logits)),
  numerics('numerics/logProbsFromLogits', (d) =>
    forwardBackward((z) => logProbsFromLogits(z, d.labels), d.logits),
  ),
  numerics('numerics/entropyFromLogits', (d) =>
    forwardBackward((z) => entropyFromLogits(z), d.logits),
  ),
  numerics('numerics/masked', (d) => {
    forwardBackward((v) => maskedSum(v, d.mask), d.x);
    forwardBackward((v) => maskedMean(v, d.mask), d.x);
    forwardBackward((v) => maskedMean(v, d.mask, 1), d.x);
    forwardBackward((v) => maskedVar(v, d.mask), d.x);
    forwardBackward((v) => maskedWhiten(v, d.mask), d.x);
    forwardBackward((v) => maskedWhiten(v, d.mask, false), d.x);
  }),
  numerics('numerics/kl', (d) => {
    for (const k of ['k1', 'k2', 'k3'] as const) {
      forwardBackward((v) => klEstimate(k, v, d.y), d.x);
      forwardBackward((v) => klEstimate(k, v, d.y, { clamp: 10 }), d.x);
    }
  }),
];
