import { z } from 'zod';
import { AGG_MODES, POLICY_LOSSES } from '../algorithms/losses/ppo.js';
import { KL_ESTIMATORS, type KlEstimatorName } from '../kernels/numerics/kl.js';
import { ADVANTAGE_ESTIMATORS, type AdvantageEstimatorName } from '../rollout/advantages.js';
import { actorsSchema } from './actors.js';
import {
  batchRules,
  common,
  dataSchema,
  positiveInt,
  QUANTIZE_NOT_YET,
  registryEnum,
  registryName,
  trainSchema,
} from './components.js';

/*
 * The online algorithms' configs (ppo, grpo, rloo, reinforce): the shared components plus
 * rollout, rl, critic and reward sections, each algorithm with its own defaults.
 */

/** The online algorithms, and what each defaults to (OpenRLHF / verl / TRL conventions). */
export const RL_ALGORITHMS = ['ppo', 'grpo', 'rloo', 'reinforce'] as const;
export type RlAlgorithm = (typeof RL_ALGORITHMS)[number];

const RL_DEFAULTS: Readonly<
  Record<
    RlAlgorithm,
    {
      estimator: AdvantageEstimatorName;
      samplesPerPrompt: number;
      kl: { mode: 'reward' | 'loss' | 'none'; coef: number; estimator: KlEstimatorName };
    }
  >
> = {
  // PPO (Ouyang et al. 2022): KL in the reward, GAE with a critic.
  ppo: {
    estimator: 'gae',
    samplesPerPrompt: 1,
    kl: { mode: 'reward', coef: 0.05, estimator: 'k1' },
  },
  // GRPO (Shao et al. 2024): a group per prompt, KL as a k3 loss term (verl kl_loss_coef 0.001).
  grpo: {
    estimator: 'grpo',
    samplesPerPrompt: 4,
    kl: { mode: 'loss', coef: 0.001, estimator: 'k3' },
  },
  // RLOO (Ahmadian et al. 2024): leave-one-out baseline, KL in the reward (TRL kl_coef 0.05).
  rloo: {
    estimator: 'rloo',
    samplesPerPrompt: 4,
    kl: { mode: 'reward', coef: 0.05, estimator: 'k1' },
  },
  // REINFORCE++ (Hu 2025): token-level KL in the reward, batch-whitened returns.
  reinforce: {
    estimator: 'reinforce_plus_plus',
    samplesPerPrompt: 1,
    kl: { mode: 'reward', coef: 0.01, estimator: 'k1' },
  },
};

/** The default `reward.timeoutMs`: 10 minutes. */
export const REWARD_TIMEOUT_MS = 600_000;

/** One reward source: a built-in, a module, an HTTP scorer or a reward model, with its weight. */
const rewardSourceSchema = z
  .object({
    /** exact-match, regex, length, sentiment, module, http, model. */
    type: z.string(),
    /** Weight in the sum (default 1). */
    weight: z.number().default(1),
    /** Name in the metrics (`reward/<name>`); default the type. */
    name: z.string().optional(),
  })
  .catchall(z.unknown());

function rlSchema(algorithm: RlAlgorithm) {
  const d = RL_DEFAULTS[algorithm];
  return z
    .object({
      algorithm: z.literal(algorithm),
      ...common,
      /** Where each actor runs (backend, device, BLAS threads, colocation, replicas): config/actors.ts. */
      actors: actorsSchema(algorithm),
      data: dataSchema.extend({
        /** RL reads prompt rows ({prompt, ...columns}); the extra columns reach the rewards. */
        format: z.enum(['prompt']).default('prompt'),
        /** Longest prompt in tokens (longer ones are dropped). */
        maxLength: positiveInt.default(128),
      }),
      train: trainSchema.extend({
        /** Prompts per iteration (each sampled `rollout.samplesPerPrompt` times). */
        batchSize: positiveInt.default(8),
      }),
      rollout: z
        .object({
          /** Responses sampled per prompt (the group of GRPO / RLOO). */
          samplesPerPrompt: positiveInt.default(d.samplesPerPrompt),
          maxNewTokens: positiveInt.default(64),
          temperature: z.number().positive().default(1),
          topK: z.number().int().min(0).default(0),
          topP: z.number().gt(0).max(1).default(1),
          /**
           * One-step off-policy: generate the next batch (with the weights before this update)
           * while this one trains, as verl's one_step_off_policy recipe.
           */
          offPolicy: z.boolean().default(false),
        })
        .strict()
        .prefault({}),
      rl: z
        .object({
          /** The advantage estimator, by its name in ADVANTAGE_ESTIMATORS (src/rollout/advantages.ts). */
          estimator: registryEnum(ADVANTAGE_ESTIMATORS).default(d.estimator),
          /** γ (gae, reinforce_plus_plus). */
          gamma: z.number().min(0).max(1).default(1),
          /** GAE λ. */
          lambda: z.number().min(0).max(1).default(0.95),
          /** gae: whiten the advantages over the batch. */
          whiten: z.boolean().default(true),
          /** grpo: divide by the group std (false: Dr.GRPO). */
          normByStd: z.boolean().default(true),
          /** Passes over each rollout batch. */
          epochs: positiveInt.default(1),
          /** Optimiser steps per epoch (the batch is split into this many minibatches). */
          miniBatches: positiveInt.default(1),
          /**
           * Where π_old (the log-probs the ratio and a KL in the reward read) comes from, when the
           * update cannot take its own (rl/topology.ts oldLogpInStep): `recompute`, a forward of
           * the policy over the rollout (OpenRLHF, verl); `generator`, the generator's log-prob of
           * each token it sampled (TRL's PPOTrainer); `auto`, the generator's when it is colocated
           * with the policy (it samples with the policy's own tensors: the same weights, so the
           * pass would compute them again, to float32 rounding), else `recompute`.
           */
          oldLogprobs: z.enum(['auto', 'recompute', 'generator']).default('auto'),
          /**
           * The policy loss, by its name in POLICY_LOSSES (src/algorithms/losses/ppo.ts):
           * `vanilla` is PPO's clipped surrogate (ε_low/ε_high, dual clip), as verl's loss_mode.
           */
          policyLoss: registryName(POLICY_LOSSES, 'policy loss').default('vanilla'),
          /** PPO ε_low and ε_high (clip-higher: raise clipHigh). */
          clipLow: z.number().min(0).lt(1).default(0.2),
          clipHigh: z.number().min(0).default(0.2),
          /** Dual-clip c > 1 for negative advantages; unset: off. */
          dualClip: z.number().gt(1).optional(),
          /** How a per-token loss becomes a scalar, by its name in AGG_MODES (losses/ppo.ts). */
          aggMode: registryEnum(AGG_MODES).default('token-mean'),
          entropyCoef: z.number().min(0).default(0),
          kl: z
            .object({
              /** The KL to the reference: a penalty in the reward, a loss term, or none. */
              mode: z.enum(['reward', 'loss', 'none']).default(d.kl.mode),
              /** β (the initial one, with a target). */
              coef: z.number().min(0).default(d.kl.coef),
              /** By its name in KL_ESTIMATORS (src/kernels/numerics/kl.ts). */
              estimator: registryEnum(KL_ESTIMATORS).default(d.kl.estimator),
              /** Adaptive β (Ziegler et al. 2019): the KL to aim for; unset: fixed β. */
              target: z.number().positive().optional(),
              horizon: z.number().positive().default(10000),
            })
            .strict()
            .prefault({}),
          /** Clamp each reward to [low, high]. */
          rewardClip: z.tuple([z.number(), z.number()]).optional(),
          /** Normalise rewards over the batch. */
          rewardNormalize: z.boolean().default(false),
        })
        .strict()
        .prefault({}),
      critic: z
        .object({
          /** The critic's starting model (default: the policy's); a value head is added. */
          path: z.string().optional(),
          /** Critic learning rate (default optim.lr). */
          lr: z.number().positive().optional(),
          /** ε_v of the clipped value loss; 0: unclipped. */
          valueClip: z.number().min(0).default(0.2),
        })
        .strict()
        .prefault({}),
      reward: z
        .object({
          sources: z.array(rewardSourceSchema).min(1),
          /** Threads for `module` sources. */
          poolThreads: positiveInt.default(1),
          /**
           * Limit on each reward source's call, ms: past it the call is aborted and the run
           * stops with an error naming the source. Generous by default (10 min), so that a
           * scorer that never answers cannot hang a run; 0: no limit.
           */
          timeoutMs: z.number().int().min(0).default(REWARD_TIMEOUT_MS),
        })
        .strict(),
    })
    .strict()
    .superRefine((c, ctx) => {
      batchRules(c, ctx);
      if (c.model.quantize)
        ctx.addIssue({ code: 'custom', path: ['model', 'quantize'], message: QUANTIZE_NOT_YET.rl });
      const rows = c.train.batchSize * c.rollout.samplesPerPrompt;
      if (c.rl.miniBatches > rows) {
        ctx.addIssue({
          code: 'custom',
          path: ['rl', 'miniBatches'],
          message: `miniBatches ${c.rl.miniBatches} exceeds the ${rows} rows of a rollout (train.batchSize × rollout.samplesPerPrompt)`,
        });
      }
      const grouped = ['grpo', 'rloo', 'reinforce_plus_plus_baseline'].includes(c.rl.estimator);
      if (grouped && c.rollout.samplesPerPrompt < 2) {
        ctx.addIssue({
          code: 'custom',
          path: ['rollout', 'samplesPerPrompt'],
          message: `the '${c.rl.estimator}' estimator compares the samples of a prompt: set samplesPerPrompt ≥ 2`,
        });
      }
      if (c.rl.kl.mode === 'loss' && c.rl.kl.target !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['rl', 'kl', 'target'],
          message: 'an adaptive KL target applies to the KL in the reward (mode: reward)',
        });
      }
      if (c.rollout.offPolicy && c.actors?.generator?.colocateWith === 'policy') {
        ctx.addIssue({
          code: 'custom',
          path: ['actors', 'generator', 'colocateWith'],
          message:
            "a generator colocated with the policy samples with the policy's own weights on its thread, so it cannot sample the next batch while the policy trains (rollout.offPolicy); set rollout.offPolicy: false, or remove colocateWith",
        });
      }
    });
}

export const ppoConfigSchema = rlSchema('ppo');
export const grpoConfigSchema = rlSchema('grpo');
export const rlooConfigSchema = rlSchema('rloo');
export const reinforceConfigSchema = rlSchema('reinforce');
export type RlConfig = z.infer<ReturnType<typeof rlSchema>>;
