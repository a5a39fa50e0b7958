import { type RoleFactory, roleRef } from '../../actors/role.js';
import type { TokenBatch } from '../../data/batching/collate.js';
import * as tf from '../../kernels/tf.js';
import type { Trainable, TrainableArgs } from '../../policy/trainable.js';
import type { LossOutput, PreferenceParams } from '../losses/index.js';
import { preferenceObjective } from '../losses/objectives.js';
import { preferenceLossEntry } from '../losses/preference.js';
import { replyLogps } from './logprobs.js';
import { createReplica, type DataParallel } from './models.js';

/*
 * The preference learner: a policy trained by a DPO-family loss (DPO, cDPO, IPO, SimPO, ORPO,
 * KTO) on the log-probs of its replies, against the reference's where the loss reads them.
 */

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
  /** Reward models: [B] soft labels P(chosen ≻ rejected) (the pairs' `chosen_prob`). */
  readonly chosenProb?: Float32Array;
}

/** Per-sequence reference log-probs Σ log π_ref(reply), for the chosen and the rejected rows. */
export interface RefLogps {
  readonly chosen: Float32Array;
  readonly rejected: Float32Array;
}

export interface StepMetrics {
  readonly loss: number;
  readonly pairs: number;
  readonly gradNorm: number;
  readonly metrics: Readonly<Record<string, number>>;
}

/** What the preference trainer asks of a learner: the preference learner, or the reward model. */
export interface PairLearnerRole {
  /** One optimiser step of the learner's loss on this replica's pairs. */
  step(
    micro: readonly { batch: PairBatch; ref?: RefLogps }[],
    lr: number,
    step: number,
  ): Promise<StepMetrics>;
  /** The loss and metrics on a batch, no update (held-out accuracy, …). */
  evaluate(
    batch: PairBatch,
    ref?: RefLogps,
  ): Promise<{ loss: number; metrics: Record<string, number> }>;
  saveCheckpoint(dir: string): Promise<void>;
  saveMerged(dir: string): Promise<void>;
}

export interface PreferenceArgs extends TrainableArgs {
  /** A loss of `PREFERENCE_LOSSES`. */
  readonly loss: string;
  /** The module that registers it, when it is not built in: imported here before the lookup. */
  readonly lossModule?: string;
  readonly params: PreferenceParams;
  readonly dataParallel?: DataParallel;
}

/**
 * A pair learner over a Trainable, given its loss on one batch: the step (micro-batches, weighed
 * by their pairs), the evaluation and the checkpoints the preference trainer calls.
 */
export class PairLearner implements PairLearnerRole {
  constructor(
    protected readonly t: Trainable,
    private readonly lossOf: (b: PairBatch, ref: RefLogps | undefined, ckpt: boolean) => LossOutput,
  ) {}

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

  saveCheckpoint(dir: string) {
    return this.t.saveCheckpoint(dir);
  }

  saveMerged(dir: string) {
    return this.t.saveMerged(dir);
  }
}

export const createPreferenceLearner: RoleFactory<PairLearnerRole, PreferenceArgs> = async (
  args,
  ctx,
) => {
  if (args.lossModule) await import(args.lossModule);
  preferenceLossEntry(args.loss); // an unknown loss fails here, before the model is built
  const t = await createReplica(args, ctx.name);
  ctx.log('info', `dpo learner ready: ${t.trainableNames.length} trainable tensors`);
  return new PairLearner(t, (b, ref, checkpoint) => {
    const { sum, count } = replyLogps(t.model, b, checkpoint);
    return preferenceObjective(
      args.loss,
      {
        sum,
        count,
        ...(ref
          ? { refChosen: tf.tensor1d(ref.chosen), refRejected: tf.tensor1d(ref.rejected) }
          : {}),
        ...(b.desirable ? { desirable: tf.tensor1d(b.desirable, 'float32') } : {}),
      },
      args.params,
    );
  });
};

export const PREFERENCE_LEARNER = roleRef<PairLearnerRole, PreferenceArgs>(
  import.meta.url,
  'createPreferenceLearner',
);
