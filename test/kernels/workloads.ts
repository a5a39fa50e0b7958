import { leftPad } from '../../src/data/batching/collate.js';
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
import { lmLoss } from '../../src/policy/lm-loss.js';
import { Lora } from '../../src/policy/lora.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { KVCache } from '../../src/policy/model/kv-cache.js';
import { randomRows, randomState, TINY } from '../policy/fixtures.js';

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

/** A model workload: forward and backward of the LM loss, heads, a cached decoding step. */
function model(
  name: string,
  family: keyof typeof TINY,
  opts: { checkpoint?: boolean; lora?: boolean } = {},
): Workload {
  return {
    name,
    run: () => {
      const c = TINY[family];
      const m = CausalLM.fromState(c, randomState(c, 1, ['value_head', 'score']), [
        'value_head',
        'score',
      ]);
      try {
        if (opts.lora) {
          const targets =
            family === 'gpt2'
              ? ['c_attn', 'c_proj', 'c_fc']
              : ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];
          const lora = new Lora(
            m,
            { rank: 2, alpha: 4, dropout: 0.1, targetModules: targets },
            { seed: 1 },
          );
          lora.dropoutKey = { seed: 1, step: 0, actor: 'workload' };
        }
        const batch = leftPad(randomRows(c, [5, 3], 1), 0);
        tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => {
            const h = m.forward(batch, { checkpoint: opts.checkpoint });
            const extra = tf.add(tf.sum(m.values(h)), tf.sum(m.scores(h, batch)));
            return tf.add(
              lmLoss(m, batch, { checkpoint: opts.checkpoint }).loss,
              tf.mul(extra, 1e-3),
            ) as tf.Scalar;
          });
          tf.dispose([value, ...Object.values(grads)]);
        });
        const cache = new KVCache(2);
        tf.dispose(m.forward(batch, { cache }));
        tf.dispose(m.logits(m.forward(leftPad([[1], [2]], 0), { cache })));
        cache.dispose();
      } finally {
        m.dispose();
      }
    },
  };
}

export const MODEL_WORKLOADS: readonly Workload[] = [
  model('policy/gpt2', 'gpt2'),
  model('policy/llama-gqa', 'llama'),
  model('policy/qwen2', 'qwen2'),
  model('policy/llama-checkpointed-lora', 'llama', { checkpoint: true, lora: true }),
  model('policy/gpt2-lora', 'gpt2', { lora: true }),
];
