import { type RoleFactory, roleRef, transfer } from '../../actors/role.js';
import * as tf from '../../kernels/tf.js';
import { decodeRollout } from '../../rollout/codec.js';
import { actionLogProbs, read, replyLogps } from './logprobs.js';
import { frozenModel, type ModelSpec } from './models.js';
import type { PairBatch, RefLogps } from './preference-learner.js';

/*
 * The reference: the frozen start policy π_ref, whose log-probs anchor the KL of online RL and
 * the implicit rewards of the DPO family. It holds no optimizer and never changes.
 */

export interface ReferenceArgs {
  readonly model: ModelSpec;
  /** Sampling temperature of the rollouts it scores (log-probs of logits/τ). Default 1. */
  readonly temperature?: number;
}

export interface ReferenceRole {
  /** log π_ref of every action of a rollout frame.  → (B, A) */
  actionLogprobs(frame: ArrayBuffer): Promise<Float32Array>;
  /** Σ log π_ref(reply) of every row of a preference batch (chosen rows, then rejected rows). */
  sequenceLogps(batch: PairBatch): Promise<RefLogps>;
  /** Free the model (`Actor.stop()` on a reference that shares its thread with others). */
  dispose(): void;
}

export const createReference: RoleFactory<ReferenceRole, ReferenceArgs> = async (args, ctx) => {
  const model = await frozenModel(args.model);
  const temperature = args.temperature ?? 1;
  ctx.log('info', 'reference ready');
  return {
    async actionLogprobs(frame) {
      const r = decodeRollout(frame);
      const lp = await read(
        tf.tidy(() => actionLogProbs(model, r, { temperature, sharePrefix: true }).logp),
      );
      return transfer(lp, [lp]);
    },
    async sequenceLogps(b) {
      const all = await read(tf.tidy(() => replyLogps(model, b, false).sum));
      const B = b.batch / 2;
      return { chosen: all.slice(0, B), rejected: all.slice(B) };
    },
    dispose: () => model.dispose(),
  };
};

export const REFERENCE = roleRef<ReferenceRole, ReferenceArgs>(import.meta.url, 'createReference');
