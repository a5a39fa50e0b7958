import { z } from 'zod';
import { PREFERENCE_LOSSES } from '../algorithms/losses/preference.js';
import { REWARD_MODEL_LOSSES } from '../algorithms/losses/reward-model.js';
import { actorsSchema } from './actors.js';
import { common, lmRules, registryName, trainSchema } from './components.js';

/**
 * The run config of each algorithm, composed from the components (components.ts; the online
 * algorithms' in rl-schema.ts). Every field documents itself; unknown keys fail; cross-field
 * rules say why and how to fix. Validated once at the boundary (`loadConfig`, with the schema
 * the algorithm's ALGORITHMS entry names), then frozen.
 */

export * from './components.js';
export * from './rl-schema.js';

export const pretrainConfigSchema = z
  .object({
    algorithm: z.literal('pretrain'),
    ...common,
    /** Where each actor runs (backend, device, BLAS threads, colocation, replicas): config/actors.ts. */
    actors: actorsSchema('pretrain'),
    train: trainSchema,
  })
  .strict()
  .superRefine(lmRules);

export const sftConfigSchema = z
  .object({
    algorithm: z.literal('sft'),
    ...common,
    /** Where each actor runs (backend, device, BLAS threads, colocation, replicas): config/actors.ts. */
    actors: actorsSchema('sft'),
    train: trainSchema,
    sft: z
      .object({
        /** Loss on the completion / assistant tokens only (TRL's completion_only_loss). */
        completionOnly: z.boolean().default(true),
      })
      .strict()
      .default({ completionOnly: true }),
  })
  .strict()
  .superRefine(lmRules);

export const rmConfigSchema = z
  .object({
    algorithm: z.literal('rm'),
    ...common,
    /** Where each actor runs (backend, device, BLAS threads, colocation, replicas): config/actors.ts. */
    actors: actorsSchema('rm'),
    train: trainSchema,
    rm: z
      .object({
        /**
         * bradley-terry (hard labels), or soft-bradley-terry: cross-entropy against each pair's
         * `chosen_prob` (Constitutional AI's feedback probabilities). Unset: soft-bradley-terry
         * when the training pairs carry `chosen_prob`, else bradley-terry.
         */
        loss: registryName(REWARD_MODEL_LOSSES, 'reward-model loss').optional(),
        /** Margin m in −log σ(r_c − r_r − m) (TRL's `margin` column, here one value). */
        margin: z.number().default(0),
        /** TRL's center_rewards_coefficient: + coef·mean((r_c + r_r)²). */
        centerRewardsCoefficient: z.number().min(0).default(0),
      })
      .strict()
      .default({ margin: 0, centerRewardsCoefficient: 0 }),
  })
  .strict()
  .superRefine(lmRules);

export const dpoConfigSchema = z
  .object({
    algorithm: z.literal('dpo'),
    ...common,
    /** Where each actor runs (backend, device, BLAS threads, colocation, replicas): config/actors.ts. */
    actors: actorsSchema('dpo'),
    train: trainSchema,
    dpo: z
      .object({
        /**
         * A loss of PREFERENCE_LOSSES (src/algorithms/losses/preference.ts; docs/algorithms.md):
         * sigmoid (DPO), ipo, simpo (reference-free), orpo (reference-free), kto (unpaired: each
         * pair becomes a desirable and an undesirable example, as TRL's unpair_preference_dataset).
         */
        loss: registryName(PREFERENCE_LOSSES, 'preference loss').default('sigmoid'),
        /** β: strength of the KL anchor (DPO), or the reward scale (SimPO), or λ (ORPO). */
        beta: z.number().positive().default(0.1),
        /** cDPO label smoothing ε (sigmoid, simpo). */
        labelSmoothing: z.number().min(0).lt(0.5).default(0),
        /** SimPO target margin γ. */
        gamma: z.number().min(0).default(0.5),
        /** KTO λ_D and λ_U: weights of the desirable and undesirable examples. */
        desirableWeight: z.number().positive().default(1),
        undesirableWeight: z.number().positive().default(1),
        /**
         * Reference log-probs: `precompute` once before training (the reference actor then exits,
         * freeing its memory), or serve them from a live reference `actor` every step.
         */
        reference: z.enum(['precompute', 'actor']).default('precompute'),
      })
      .strict()
      .default({
        loss: 'sigmoid',
        beta: 0.1,
        labelSmoothing: 0,
        gamma: 0.5,
        desirableWeight: 1,
        undesirableWeight: 1,
        reference: 'precompute',
      }),
  })
  .strict()
  .superRefine(lmRules);

export type RmConfig = z.infer<typeof rmConfigSchema>;
export type DpoConfig = z.infer<typeof dpoConfigSchema>;
export type PretrainConfig = z.infer<typeof pretrainConfigSchema>;
export type SftConfig = z.infer<typeof sftConfigSchema>;
export type LmConfig = PretrainConfig | SftConfig;
