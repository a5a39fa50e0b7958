import { type RoleFactory, roleRef, transfer } from '../../actors/role.js';
import * as tf from '../../kernels/tf.js';
import type { CausalLM } from '../../policy/model/causal-lm.js';
import type { Trainable, TrainableArgs } from '../../policy/trainable.js';
import type { RolloutLayout } from '../../rollout/assemble.js';
import { decodeExperience, decodeRollout } from '../../rollout/codec.js';
import { type AggMode, valueLoss } from '../losses/index.js';
import { read } from './logprobs.js';
import { createReplica, type DataParallel } from './models.js';
import { microWeight, perAction, type RlStepMetrics } from './policy.js';

/*
 * The critic: V(s) on a value head, trained with PPO's clipped value loss (the `gae` estimator
 * only). Rollouts arrive as `rollout` frames to value, experience as `experience` frames.
 */

export interface CriticArgs extends TrainableArgs {
  readonly loss: { readonly clip?: number; readonly aggMode: AggMode };
  readonly dataParallel?: DataParallel;
}

export interface CriticRole {
  /** V(s_t) before each action of a rollout frame, (B, A), no gradient. */
  values(frame: ArrayBuffer): Promise<Float32Array>;
  /** One optimiser step of the clipped value loss on this replica's micro-batches. */
  step(frames: readonly ArrayBuffer[], lr: number, step: number): Promise<RlStepMetrics>;
  saveCheckpoint(dir: string): Promise<void>;
}

/** V(s_t) for each action t: the value head at position P − 1 + t.  → (B, A) */
function actionValues(model: CausalLM, r: RolloutLayout, checkpoint: boolean): tf.Tensor {
  const { batch: B, length: L, actions: A } = r.shape;
  const hidden = model.forward(
    { ids: r.sequences, mask: r.attentionMask, batch: B, length: L },
    { checkpoint },
  );
  const d = model.config.hidden;
  return model.values(tf.slice(hidden, [0, r.promptLength - 1, 0], [B, A, d]));
}

class Critic implements CriticRole {
  constructor(
    private readonly t: Trainable,
    private readonly args: CriticArgs,
  ) {}

  async values(frame: ArrayBuffer) {
    const r = decodeRollout(frame);
    const v = await read(tf.tidy(() => actionValues(this.t.model, r, false)));
    return transfer(v, [v]);
  }

  async step(frames: readonly ArrayBuffer[], lr: number, step: number): Promise<RlStepMetrics> {
    const micro = frames.map((f) => decodeExperience(f));
    const { clip, aggMode } = this.args.loss;
    const out = await this.t.step(
      micro.map((e) => () => {
        const values = actionValues(this.t.model, e, this.t.gradientCheckpointing);
        const { loss, metrics } = valueLoss(
          {
            values,
            oldValues: perAction(e, e.values, 'values'),
            returns: perAction(e, e.returns, 'returns'),
            mask: tf.tensor2d(e.actionMask, [e.shape.batch, e.shape.actions], 'float32'),
          },
          { clip, aggMode },
        );
        return { loss, metrics, weight: microWeight(e, aggMode) };
      }),
      lr,
      step,
    );
    return { loss: out.loss, gradNorm: out.gradNorm, metrics: out.metrics };
  }

  saveCheckpoint(dir: string) {
    return this.t.saveCheckpoint(dir);
  }
}

export const createCritic: RoleFactory<CriticRole, CriticArgs> = async (args, ctx) => {
  const t = await createReplica({ ...args, heads: ['value_head'] }, ctx.name);
  ctx.log('info', `critic ready: ${t.trainableNames.length} trainable tensors`);
  return new Critic(t, args);
};

export const CRITIC = roleRef<CriticRole, CriticArgs>(import.meta.url, 'createCritic');
