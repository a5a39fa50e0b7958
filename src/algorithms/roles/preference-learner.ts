import type { AllReduceShared } from '../../actors/allreduce.js';
import { type RoleFactory, roleRef } from '../../actors/role.js';
import { createReplica } from '../../actors/roles/policy.js';
import * as tf from '../../kernels/tf.js';
import type { TokenBatch } from '../../policy/model/batch.js';
import type { CausalLM } from '../../policy/model/causal-lm.js';
import type { Trainable, TrainableArgs } from '../../policy/trainable.js';
import {
  bradleyTerryLoss,
  type PreferenceLossName,
  type PreferenceParams,
  preferenceLoss,
} from '../losses/index.js';

/**
 * A preference batch as plain arrays: 2B rows, the B chosen sequences then the B rejected ones,
 * right-padded; `lossMask` is 1 on reply tokens (the targets whose log-probs are summed).
 */
export interface PairBatch extends TokenBatch {
  readonly lossMask: Uint8Array;
  /**
   * KTO: the 2B rows are B examples then their B mismatched (KL) rows (each prompt with the
   * next row's completion, TRL `_get_kl_dataset`); `desirable` [B] labels the examples.
   */
  readonly desirable?: Uint8Array;
}

/** Per-sequence reference log-probs Σ log π_ref(reply), for the chosen and the rejected rows. */
export interface RefLogps {
  readonly chosen: Float32Array;
  readonly rejected: Float32Array;
}

export type Objective =
  | { readonly kind: 'dpo'; readonly loss: PreferenceLossName; readonly params: PreferenceParams }
  | { readonly kind: 'rm'; readonly margin?: number; readonly centerRewardsCoefficient?: number };

export interface PreferenceArgs extends TrainableArgs {
  readonly objective: Objective;
  readonly dataParallel?: { readonly shared: AllReduceShared; readonly rank: number };
}

export interface StepMetrics {
  readonly loss: number;
  readonly pairs: number;
  readonly gradNorm: number;
  readonly metrics: Readonly<Record<string, number>>;
}

export interface PreferenceRole {
  /** Σ log π(reply) of every row (no gradient): what a reference actor serves. */
  sequenceLogps(batch: PairBatch): Promise<RefLogps>;
  /** One optimiser step of the objective on this replica's pairs. */
  step(
    micro: readonly { batch: PairBatch; ref?: RefLogps }[],
    lr: number,
    step: number,
  ): Promise<StepMetrics>;
  /** The objective's loss and metrics on a batch, no update (held-out accuracy, …). */
  evaluate(
    batch: PairBatch,
    ref?: RefLogps,
  ): Promise<{ loss: number; metrics: Record<string, number> }>;
  /** Reward-model scores of each row (objective `rm`). */
  scores(batch: TokenBatch): Promise<Float32Array>;
  saveCheckpoint(dir: string): Promise<void>;
  saveMerged(dir: string): Promise<void>;
}

/** Σ and count of log π over each row's reply tokens.  → sum [2B], count [2B] */
function replyLogps(
  model: CausalLM,
  b: PairBatch,
  checkpoint: boolean,
): { sum: tf.Tensor; count: tf.Tensor } {
  const { batch: R, length: T } = b;
  const d = model.config.hidden;
  const hidden = model.forward(b, { checkpoint });
  const h = tf.reshape(tf.slice(hidden, [0, 0, 0], [R, T - 1, d]), [R * (T - 1), d]);
  const ids = tf.tensor2d(b.ids, [R, T], 'int32');
  const targets = tf.reshape(tf.slice(ids, [0, 1], [R, T - 1]), [R * (T - 1)]);
  const lp = tf.reshape(model.tokenLogProbs(h, targets), [R, T - 1]); // position t predicts t+1
  const mask = tf.slice(tf.tensor2d(b.lossMask, [R, T], 'float32'), [0, 1], [R, T - 1]);
  return { sum: tf.sum(tf.mul(lp, mask), 1), count: tf.sum(mask, 1) };
}

const halves = (x: tf.Tensor) => {
  const B = (x.shape[0] as number) / 2;
  return [tf.slice(x, [0], [B]), tf.slice(x, [B], [B])];
};

class PreferenceLearner implements PreferenceRole {
  constructor(
    private readonly t: Trainable,
    private readonly objective: Objective,
  ) {}

  /** The objective's loss on one batch: DPO family on reply log-probs, or Bradley–Terry on scores. */
  private lossOf(b: PairBatch, ref: RefLogps | undefined, checkpoint: boolean) {
    const model = this.t.model;
    if (this.objective.kind === 'rm') {
      const [chosenRewards, rejectedRewards] = halves(
        model.scores(model.forward(b, { checkpoint }), b),
      );
      const margin = this.objective.margin
        ? tf.fill([chosenRewards.shape[0] as number], this.objective.margin)
        : undefined;
      return bradleyTerryLoss(
        { chosenRewards, rejectedRewards, margin },
        { centerRewardsCoefficient: this.objective.centerRewardsCoefficient },
      );
    }
    const { sum, count } = replyLogps(model, b, checkpoint);
    if (this.objective.loss === 'kto') {
      if (!b.desirable || !ref)
        throw new Error('KTO needs desirable labels and reference log-probs');
      const [policyLogps, policyKlLogps] = halves(sum);
      return preferenceLoss(
        'kto',
        {
          policyLogps,
          policyKlLogps,
          refLogps: tf.tensor1d(ref.chosen),
          refKlLogps: tf.tensor1d(ref.rejected),
          desirable: tf.tensor1d(b.desirable, 'float32'),
        },
        this.objective.params,
      );
    }
    const [policyChosenLogps, policyRejectedLogps] = halves(sum);
    const [chosenLengths, rejectedLengths] = halves(count);
    const needsLengths =
      this.objective.loss === 'ipo' ||
      this.objective.loss === 'simpo' ||
      this.objective.loss === 'orpo';
    return preferenceLoss(
      this.objective.loss,
      {
        policyChosenLogps,
        policyRejectedLogps,
        ...(ref
          ? { refChosenLogps: tf.tensor1d(ref.chosen), refRejectedLogps: tf.tensor1d(ref.rejected) }
          : {}),
        ...(needsLengths ? { chosenLengths, rejectedLengths } : {}),
      } as never,
      this.objective.params,
    );
  }

  async sequenceLogps(b: PairBatch): Promise<RefLogps> {
    const sum = tf.tidy(() => replyLogps(this.t.model, b, false).sum);
    try {
      const all = (await sum.data()) as Float32Array;
      const B = b.batch / 2;
      return { chosen: all.slice(0, B), rejected: all.slice(B) };
    } finally {
      sum.dispose();
    }
  }

  async step(
    micro: readonly { batch: PairBatch; ref?: RefLogps }[],
    lr: number,
    step: number,
  ): Promise<StepMetrics> {
    const out = await this.t.step(
      micro.map(({ batch, ref }) => () => {
        const { loss, metrics } = this.lossOf(batch, ref, this.t.gradientCheckpointing);
        return { loss, weight: batch.batch / 2, metrics };
      }),
      lr,
      step,
    );
    return { loss: out.loss, pairs: out.weight, gradNorm: out.gradNorm, metrics: out.metrics };
  }

  async evaluate(b: PairBatch, ref?: RefLogps) {
    const { loss, metrics } = tf.tidy(() => {
      const out = this.lossOf(b, ref, false);
      return { loss: out.loss, metrics: out.metrics };
    });
    try {
      const values: Record<string, number> = {};
      for (const [k, v] of Object.entries(metrics)) values[k] = (await v.data())[0];
      return { loss: (await loss.data())[0], metrics: values };
    } finally {
      tf.dispose([loss, ...Object.values(metrics)]);
    }
  }

  async scores(b: TokenBatch): Promise<Float32Array> {
    const s = tf.tidy(() => this.t.model.scores(this.t.model.forward(b), b));
    try {
      return (await s.data()) as Float32Array;
    } finally {
      s.dispose();
    }
  }

  saveCheckpoint(dir: string) {
    return this.t.saveCheckpoint(dir);
  }

  saveMerged(dir: string) {
    return this.t.saveMerged(dir);
  }
}

export const createPreferenceLearner: RoleFactory<PreferenceRole, PreferenceArgs> = async (
  args,
  ctx,
) => {
  const heads = args.objective.kind === 'rm' ? (['score'] as const) : [];
  const t = await createReplica({ ...args, heads: [...(args.heads ?? []), ...heads] }, ctx.name);
  ctx.log(
    'info',
    `${args.objective.kind} learner ready: ${t.trainableNames.length} trainable tensors`,
  );
  return new PreferenceLearner(t, args.objective);
};

export const PREFERENCE_LEARNER = roleRef<PreferenceRole, PreferenceArgs>(
  import.meta.url,
  'createPreferenceLearner',
);
