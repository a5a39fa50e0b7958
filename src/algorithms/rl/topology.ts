import { join } from 'node:path';
import type { RlAlgorithm, RlConfig } from '../../config/schema.js';
import { planBlasThreads } from '../../kernels/native.js';
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

/**
 * A generator colocated with the policy (`actors.generator.colocateWith: policy`) samples with
 * the policy's own tensors: the policy publishes by counting a version, nothing is copied, and
 * the generator need not wait for the policy's shared-memory handle.
 */
export const sharesWeights = (c: RlConfig): boolean =>
  c.actors?.generator?.colocateWith === 'policy';

/**
 * Whether π_old can be the update's own log π_θ, detached, with no pass computing it first: the
 * batch gets exactly one optimiser step (on-policy, one epoch of one minibatch), with the
 * weights that sampled it, and nothing before the update reads π_old (no KL in the reward) nor
 * makes the update's forward differ from that pass's (no dropout, no LoRA dropout). TRL's
 * GRPOTrainer does the same with num_iterations 1.
 */
export function oldLogpInStep(c: RlConfig): boolean {
  const t = trainableOptions(c);
  return (
    !c.rollout.offPolicy &&
    c.rl.epochs === 1 &&
    c.rl.miniBatches === 1 &&
    !(c.rl.kl.mode === 'reward' && usesReference(c)) &&
    (t.dropout?.rates ?? false) === false &&
    (t.lora?.dropout ?? 0) === 0
  );
}

/**
 * Whether the update's forward may run a prompt that several rows repeat (GRPO's and RLOO's n
 * samples of a prompt) once and continue each row from a copy of its KV cache
 * (targetLogProbs' `sharePrefix`; the policy also needs gradient checkpointing off): every row
 * of a group must see the same forward of its prompt, so no dropout and no LoRA dropout. The
 * loss and gradients are the full forward's up to float32 rounding (the gradients' sums run in
 * another order).
 */
export function sharePrefixInStep(c: RlConfig): boolean {
  const t = trainableOptions(c);
  return (t.dropout?.rates ?? false) === false && (t.lora?.dropout ?? 0) === 0;
}

/**
 * Whether π_old is the generator's log-prob of each sampled token, with no pass of the policy
 * over the rollout (`rl.oldLogprobs`; `auto`: where the generator samples with the policy's own
 * tensors). Only where the update cannot be its own π_old (oldLogpInStep): a KL in the reward,
 * several steps per batch, off-policy. The update then reports the entropy and the mismatch.
 */
export function oldLogpFromGenerator(c: RlConfig): boolean {
  if (oldLogpInStep(c)) return false;
  const how = c.rl.oldLogprobs;
  return how === 'generator' || (how === 'auto' && sharesWeights(c));
}

/**
 * BLAS threads for the generator while it samples: the run's configured count (runtime.blasThreads,
 * TROUPE_BLAS_THREADS), else every core, where nothing else computes meanwhile: on-policy, the
 * reference, critic, reward and learners all wait for the rollout, so the cores planned for them
 * would sit idle. Not with several generators (the hybrid's, one per policy replica, sample at
 * once), off-policy (the policy trains meanwhile), or a generator given its own
 * `actors.generator.blasThreads`. PPO's generation on 2 cores (profile-generate ppo 16): 0.75 s
 * with one thread, 0.59 with two.
 */
export function samplingThreads(c: RlConfig, generators: number): number | undefined {
  if (c.rollout.offPolicy || generators > 1) return undefined;
  if (c.actors?.generator?.blasThreads !== undefined) return undefined;
  return planBlasThreads(1, c.runtime.blasThreads);
}

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
 * shared memory, so it starts after the policy, or, colocated with it, samples with the
 * policy's own tensors), a reward actor (the configured sources, on
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
        sharesWeights: sharesWeights(c),
        oldLogpInStep: oldLogpInStep(c),
        oldLogpFromGenerator: oldLogpFromGenerator(c),
        sharePrefix: sharePrefixInStep(c),
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
    needs: (c: RlConfig) => (sharesWeights(c) ? [] : ['policy']),
    // Not retried where it shares the policy's thread (launch.ts): the run stops with the crash.
    retryCrashed: true,
    args: async (c: RlConfig, x: RlInput, p, started) => ({
      ...(sharesWeights(c)
        ? // beside each policy replica (colocated generators have the policy's replicas)
          { sharesWith: p.replicas > 1 ? `policy/${p.replica}` : 'policy' }
        : { model: x.model, weights: await started.actor(POLICY, 'policy').call.weightsHandle() }),
      samplingThreads: samplingThreads(c, p.replicas),
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
