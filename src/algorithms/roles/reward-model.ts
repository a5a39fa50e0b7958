import { type RoleFactory, roleRef } from '../../actors/role.js';
import type { TokenBatch } from '../../data/batching/collate.js';
import * as tf from '../../kernels/tf.js';
import type { Trainable, TrainableArgs } from '../../policy/trainable.js';
import { rewardModelObjective } from '../losses/objectives.js';
import { createReplica, type DataParallel } from './models.js';
import { PairLearner, type PairLearnerRole } from './preference-learner.js';

/*
 * The reward model being trained: a scalar `score` head on the language model, fitted with the
 * Bradley–Terry loss to preference pairs (`troupe rm`). A trained one is then a `model` reward
 * source of the reward actor.
 */

export interface RewardModelArgs extends TrainableArgs {
  /** A `REWARD_MODEL_LOSSES` name (default bradley-terry; soft-bradley-terry reads soft labels). */
  readonly loss?: string;
  /** Margin m in −log σ(r_c − r_r − m). */
  readonly margin?: number;
  /** TRL's center_rewards_coefficient: + coef·mean((r_c + r_r)²). */
  readonly centerRewardsCoefficient?: number;
  readonly dataParallel?: DataParallel;
}

export interface RewardModelRole extends PairLearnerRole {
  /** The score of each row. */
  scores(batch: TokenBatch): Promise<Float32Array>;
}

class RewardModel extends PairLearner implements RewardModelRole {
  constructor(t: Trainable, args: RewardModelArgs) {
    super(t, (b, _ref, checkpoint) =>
      rewardModelObjective(
        t.model.scores(t.model.forward(b, { checkpoint }), b),
        args,
        b.chosenProb,
      ),
    );
  }

  async scores(b: TokenBatch): Promise<Float32Array> {
    const s = tf.tidy(() => this.t.model.scores(this.t.model.forward(b), b));
    try {
      return (await s.data()) as Float32Array;
    } finally {
      s.dispose();
    }
  }
}

export const createRewardModel: RoleFactory<RewardModelRole, RewardModelArgs> = async (
  args,
  ctx,
) => {
  const t = await createReplica({ ...args, heads: [...(args.heads ?? []), 'score'] }, ctx.name);
  ctx.log('info', `rm learner ready: ${t.trainableNames.length} trainable tensors`);
  return new RewardModel(t, args);
};

export const REWARD_MODEL = roleRef<RewardModelRole, RewardModelArgs>(
  import.meta.url,
  'createRewardModel',
);
