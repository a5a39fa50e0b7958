import { join } from 'node:path';
import type { RlAlgorithm, RlConfig } from '../../config/schema.js';
import type { ModelSource } from '../../policy/source.js';
import { trainableOptions } from '../common.js';
import { type AlgorithmTopology, plays } from '../launch.js';
import { CRITIC } from '../roles/critic.js';
import { GENERATOR } from '../roles/generator.js';
import { POLICY, type PolicyArgs } from '../roles/policy.js';
import { REFERENCE } from '../roles/reference.js';
import { REWARD } from '../roles/reward.js';

/*
 * Online RL's topology as data: which actors a run of each RL algorithm starts, what each
 * plays, when a run has it and what its arguments are (the launcher, ../launch.ts, starts it).
 */

const usesReference = (c: RlConfig) => c.rl.kl.mode !== 'none' && c.rl.kl.coef > 0;

/** What an RL run hands its actors. */
export interface RlInput {
  /** The policy's start (also the generator's, the reference's and by default the critic's). */
  readonly model: PolicyArgs['model'];
  readonly criticSource: ModelSource | undefined;
  /** The reward sources, `model` paths resolved. */
  readonly rewardSources: RlConfig['reward']['sources'];
  readonly resumeFrom: string | undefined;
}

/**
 * Online RL: policy replicas (trainers), a generator (samples; pulls the policy's weights from
 * shared memory, so it starts after the policy), a reward actor (the configured sources, on
 * `cpu` unless placed), and a reference (when a KL is used) and a critic (the `gae` estimator).
 */
export const RL_TOPOLOGY: AlgorithmTopology<RlAlgorithm, RlConfig, RlInput> = {
  policy: plays(POLICY, {
    args: (c: RlConfig, x: RlInput, p) => ({
      model: x.model,
      ...trainableOptions(c),
      resumeFrom: x.resumeFrom,
      dataParallel: p.dataParallel,
      rl: {
        temperature: c.rollout.temperature,
        loss: {
          name: c.rl.policyLoss,
          clipLow: c.rl.clipLow,
          clipHigh: c.rl.clipHigh,
          dualClip: c.rl.dualClip,
          aggMode: c.rl.aggMode,
          entropyCoef: c.rl.entropyCoef,
          klLoss:
            c.rl.kl.mode === 'loss' && c.rl.kl.coef > 0
              ? { coef: c.rl.kl.coef, estimator: c.rl.kl.estimator }
              : undefined,
        },
      },
    }),
  }),
  generator: plays(GENERATOR, {
    needs: ['policy'],
    retryCrashed: true,
    args: async (_c: RlConfig, x: RlInput, _p, started) => ({
      model: x.model,
      weights: await started.actor(POLICY, 'policy').call.weightsHandle(),
    }),
  }),
  reward: plays(REWARD, {
    placement: { backend: 'cpu' },
    computes: () => false,
    retryCrashed: true,
    args: (c: RlConfig, x: RlInput) => ({
      sources: x.rewardSources,
      poolThreads: c.reward.poolThreads,
      timeoutMs: c.reward.timeoutMs,
    }),
  }),
  reference: plays(REFERENCE, {
    when: usesReference,
    retryCrashed: true,
    args: (c: RlConfig, x: RlInput) => ({ model: x.model, temperature: c.rollout.temperature }),
  }),
  critic: plays(CRITIC, {
    when: (c: RlConfig) => c.rl.estimator === 'gae',
    args: (c: RlConfig, x: RlInput, p) => ({
      model: x.criticSource ? { source: x.criticSource } : x.model,
      ...trainableOptions(c),
      resumeFrom: x.resumeFrom ? join(x.resumeFrom, 'critic') : undefined,
      loss: {
        clip: c.critic.valueClip > 0 ? c.critic.valueClip : undefined,
        aggMode: c.rl.aggMode,
      },
      dataParallel: p.dataParallel,
    }),
  }),
};
