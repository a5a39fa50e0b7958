import { transfer } from '../../actors/role.js';
import type { Actor } from '../../actors/supervisor.js';
import type { RlConfig } from '../../config/schema.js';
import { shard } from '../../data/batching/shard.js';
import { minibatchRows } from '../../rollout/assemble.js';
import { encodeExperience } from '../../rollout/codec.js';
import { type Experience, sliceExperience } from '../../rollout/experience.js';
import type { Scorers } from '../../rollout/maker.js';
import type { CriticRole } from '../roles/critic.js';
import type { PolicyRole, RlStepMetrics } from '../roles/policy.js';
import type { WeightsSubscriber } from './rollouts.js';
import { scoreSpread } from './spread.js';
import { oldLogpFromGenerator, oldLogpInStep, sharesWeights } from './topology.js';

/*
 * The learners of an RL run: the policy replicas and, for `gae`, the critic replicas. They score
 * a rollout (π_old, V), take the iteration's epochs × minibatches of optimiser steps (policy ∥
 * critic) and publish the policy's weights for the generator.
 */

/** The micro-batches of each replica: the rows split evenly over replicas, then over `micro`. */
function shardRows(rows: readonly number[], replicas: number, micro: number): number[][][] {
  return shard(rows.length, replicas, micro, (lo, hi) => rows.slice(lo, hi));
}

/** Mean of each key over a list of metric records. */
function meanOf(records: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const r of records) for (const [k, v] of Object.entries(r)) sums[k] = (sums[k] ?? 0) + v;
  return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / records.length]));
}

/** An RL learner's step as metrics under its namespace (`actor/loss`, `critic/grad_norm`, …). */
function record(ns: 'actor' | 'critic', m: RlStepMetrics): Record<string, number> {
  return { [`${ns}/loss`]: m.loss, [`${ns}/grad_norm`]: m.gradNorm, ...m.metrics };
}

export class Learners {
  constructor(
    private readonly c: RlConfig,
    /** Policy replicas, rank 0 first (it scores rollouts, publishes and saves). */
    readonly policy: readonly Actor<PolicyRole>[],
    /** Critic replicas (none without `gae`). */
    readonly critics: readonly Actor<CriticRole>[],
    private readonly subscriber: WeightsSubscriber,
  ) {}

  /** Critic replicas on the policy replicas' threads (`actors.critic.colocateWith: policy`). */
  private get sharedThreads(): boolean {
    return this.critics.length > 1 && this.c.actors?.critic?.colocateWith === 'policy';
  }

  /** The critic's rank 0, when the run has one. */
  get critic(): Actor<CriticRole> | undefined {
    return this.critics[0];
  }

  /**
   * The learners' scorers of a rollout frame: π_old (and entropy), unless the update computes
   * it itself (oldLogpInStep) or it is the generator's (oldLogpFromGenerator), and V with a
   * critic.
   */
  scorers(): Pick<Scorers, 'policy' | 'critic'> {
    const { policy, critics } = this;
    const n = this.c.rollout.samplesPerPrompt;
    // Over every replica (the same weights), each its share of the frame's groups; with one
    // replica, the frame as it is.
    const policyLogprobs = async (frame: ArrayBuffer) => {
      const [logp, entropy] = await scoreSpread(frame, policy.length, n, async (i, part) => {
        const r = await policy[i].call.actionLogprobs(part);
        return [r.logp, r.entropy];
      });
      return { logp, entropy };
    };
    const values = async (frame: ArrayBuffer) =>
      (
        await scoreSpread(frame, critics.length, n, async (i, part) => [
          await critics[i].call.values(part),
        ])
      )[0];
    return {
      policy: oldLogpInStep(this.c) || oldLogpFromGenerator(this.c) ? undefined : policyLogprobs,
      critic: critics.length > 0 ? values : undefined,
    };
  }

  /** epochs × minibatches optimiser steps of the policy (and the critic, in parallel). */
  async update(e: Experience, step: number, lr: number): Promise<Record<string, number>> {
    const { c, policy, critics } = this;
    const policyRecords: Record<string, number>[] = [];
    const criticRecords: Record<string, number>[] = [];
    const criticLr = lr * ((c.critic.lr ?? c.optim.lr) / c.optim.lr);
    let k = 0;
    for (let epoch = 0; epoch < c.rl.epochs; epoch++) {
      const batches = minibatchRows(e.shape.batch, c.rl.miniBatches, {
        seed: c.seed,
        step,
        actor: 'trainer',
        purpose: `minibatch/${epoch}`,
      });
      for (const rows of batches) {
        const micro = shardRows(rows, policy.length, c.train.gradAccum);
        // Fresh frames for each learner, handed over (transferred), not copied.
        const frames = (rs: number[][]) => {
          const fs = rs.map((r) => encodeExperience(sliceExperience(e, r)));
          return transfer(fs, fs);
        };
        const key = step * c.rl.epochs * c.rl.miniBatches + k++;
        const criticMicro = shardRows(rows, critics.length, 1);
        const policySteps = () =>
          Promise.all(policy.map((p, i) => p.call.step(frames(micro[i]), lr, key)));
        const criticSteps = () =>
          Promise.all(critics.map((v, i) => v.call.step(frames(criticMicro[i]), criticLr, key)));
        // Replicas block their thread in the all-reduce until every peer arrives. Two groups
        // sharing threads (critic replicas colocated with the policy's: the hybrid) would
        // deadlock if one thread entered the policy's while its peer entered the critic's, so
        // there the groups take turns; apart, they step in parallel.
        const [ps, cs] = this.sharedThreads
          ? [await policySteps(), await criticSteps()]
          : await Promise.all([policySteps(), criticSteps()]);
        policyRecords.push(record('actor', ps[0]));
        if (cs.length > 0) criticRecords.push(record('critic', cs[0]));
      }
    }
    return { ...meanOf(policyRecords), ...(this.critic ? meanOf(criticRecords) : {}) };
  }

  /**
   * Publish the policy's weights as those of after step `step` (0: the start weights); resolves
   * when the rollouts can sample with them (see WeightsSubscriber).
   */
  async publish(step: number): Promise<void> {
    // Generators colocated with the replicas sample with each replica's own tensors (the same
    // weights after the all-reduced step): every replica counts the publish. Else rank 0
    // writes the shared memory the generator copies from.
    const publishers = sharesWeights(this.c) ? this.policy : this.policy.slice(0, 1);
    const versions = await Promise.all(publishers.map((p) => p.call.publishWeights()));
    await this.subscriber.published(versions[0], step);
  }
}
