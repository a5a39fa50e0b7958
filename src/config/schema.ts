import { z } from 'zod';

/**
 * The run config, one zod schema per component, composed per algorithm. Every field documents
 * itself; unknown keys fail; cross-field rules say why and how to fix. Validated once at the
 * boundary (`loadConfig`), then frozen.
 */

const positiveInt = z.number().int().positive();

/** LoRA adapters instead of full fine-tuning. */
export const loraSchema = z
  .object({
    /** Rank r of the update. */
    rank: positiveInt.default(8),
    /** Scale numerator α (the update is scaled by α/r). */
    alpha: z.number().positive().default(16),
    /** Dropout on the adapter input. */
    dropout: z.number().min(0).lt(1).default(0.05),
    /** Projections to adapt: q, k, v, o, gate, up, down, or HF names (q_proj, c_attn, …). */
    targetModules: z.array(z.string()).min(1).default(['q', 'v']),
  })
  .strict();

/** A fresh model's shape (from scratch); the vocabulary size comes from the tokenizer. */
export const modelInitSchema = z
  .object({
    family: z.enum(['gpt2', 'llama']).default('gpt2'),
    hidden: positiveInt,
    layers: positiveInt,
    heads: positiveInt,
    /** Key/value heads (llama family); default = heads. */
    kvHeads: positiveInt.optional(),
    /** MLP width; default 4·hidden (gpt2) or ≈ 8/3·hidden rounded to 64 (llama). */
    intermediate: positiveInt.optional(),
    /** Longest sequence the model handles. */
    maxPositions: positiveInt.default(512),
  })
  .strict();

export const modelSchema = z
  .object({
    /** A saved model directory (Hugging Face layout) to start from. */
    path: z.string().optional(),
    /** Or a fresh model of this shape. */
    init: modelInitSchema.optional(),
    /** A tokenizer.json file or directory; or `{ train: {...} }` to train one on the training data. */
    tokenizer: z
      .union([
        z.string(),
        z
          .object({
            train: z
              .object({
                vocabSize: positiveInt.default(1024),
                minFrequency: positiveInt.default(2),
              })
              .strict(),
          })
          .strict(),
      ])
      .optional(),
    lora: loraSchema.optional(),
    /** Recompute each block in backward (less memory, ~15–30 % slower). */
    gradientCheckpointing: z.boolean().default(false),
  })
  .strict()
  .superRefine((m, ctx) => {
    if ((m.path === undefined) === (m.init === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['path'],
        message:
          "set exactly one of 'model.path' (start from a saved model) or 'model.init' (a fresh model)",
      });
    }
    if (m.init && m.tokenizer === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['tokenizer'],
        message:
          "a fresh model needs 'model.tokenizer': a tokenizer.json path, or { train: { vocabSize } }",
      });
    }
  });

export const dataSchema = z
  .object({
    /** Training data: JSONL or Parquet in one of the column conventions (text, messages, prompt/completion, …). */
    train: z.string(),
    /** Held-out data; or set `evalFraction` to split it from `train`. */
    eval: z.string().optional(),
    /** Fraction of `train` held out when there is no `eval` file. */
    evalFraction: z.number().min(0).max(0.5).default(0.05),
    /** Read rows as this convention instead of detecting it from the first row. */
    format: z.enum(['text', 'messages', 'completion', 'preference', 'prompt']).optional(),
    /** Rename columns to the conventions: `{ question: prompt, answer: completion }`. */
    columns: z.record(z.string(), z.string()).optional(),
    /** Pretraining: tokens per packed block. */
    blockSize: positiveInt.default(128),
    /** SFT: longest example in tokens (longer ones are dropped). */
    maxLength: positiveInt.default(256),
  })
  .strict();

export const optimSchema = z
  .object({
    lr: z.number().positive().default(3e-4),
    weightDecay: z.number().min(0).default(0.1),
    betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.95]),
    eps: z.number().positive().default(1e-8),
    /** Global gradient-norm clip; 0 = off. */
    maxGradNorm: z.number().min(0).default(1),
    schedule: z.enum(['constant', 'linear', 'cosine']).default('cosine'),
    warmupSteps: z.number().int().min(0).default(0),
    /** Floor of the linear/cosine decay. */
    minLr: z.number().min(0).default(0),
  })
  .strict();

export const trainSchema = z
  .object({
    /** Optimiser steps. */
    steps: positiveInt,
    /** Sequences (or packed blocks) per optimiser step, over all replicas. */
    batchSize: positiveInt.default(8),
    /** Micro-batches per replica per step (gradient accumulation). */
    gradAccum: positiveInt.default(1),
    /** Evaluate every N steps (and at the end); 0 = only at the end. */
    evalEvery: z.number().int().min(0).default(50),
    /** Batches of the eval split per evaluation; 0 = all of it. */
    evalBatches: z.number().int().min(0).default(8),
    /** Save a checkpoint every N steps (and at the end); 0 = only at the end. */
    saveEvery: z.number().int().min(0).default(100),
    /** Checkpoints kept (the best and the latest are always kept). */
    keepLast: positiveInt.default(2),
  })
  .strict();

export const runtimeSchema = z
  .object({
    backend: z
      .enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'webgpu', 'cpu'])
      .default('auto'),
    /** `cpu`, `gpu` or `gpu:N`. */
    device: z.string().optional(),
    /** Data-parallel policy replicas (one thread each). */
    replicas: positiveInt.default(1),
  })
  .strict();

const common = {
  /** Seed of every random stream (init, data order, dropout, sampling). */
  seed: z.number().int().min(0).default(0),
  /** Run directory. */
  output: z.string(),
  model: modelSchema,
  data: dataSchema,
  optim: optimSchema.default(optimSchema.parse({})),
  runtime: runtimeSchema.default(runtimeSchema.parse({})),
};

function batchRules(
  c: {
    train: z.infer<typeof trainSchema>;
    runtime: z.infer<typeof runtimeSchema>;
    optim: z.infer<typeof optimSchema>;
  },
  ctx: z.RefinementCtx,
) {
  if (c.optim.warmupSteps > c.train.steps) {
    ctx.addIssue({
      code: 'custom',
      path: ['optim', 'warmupSteps'],
      message: `warmupSteps ${c.optim.warmupSteps} exceeds train.steps ${c.train.steps}, so warmup would never finish: lower it or raise train.steps`,
    });
  }
  const per = c.runtime.replicas * c.train.gradAccum;
  if (c.train.batchSize % per !== 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['train', 'batchSize'],
      message: `batchSize ${c.train.batchSize} must be a multiple of runtime.replicas × train.gradAccum = ${per}; change batchSize to ${Math.ceil(c.train.batchSize / per) * per} or lower gradAccum`,
    });
  }
}

export const pretrainConfigSchema = z
  .object({ algorithm: z.literal('pretrain'), ...common, train: trainSchema })
  .strict()
  .superRefine(batchRules);

export const sftConfigSchema = z
  .object({
    algorithm: z.literal('sft'),
    ...common,
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
  .superRefine(batchRules);

export const rmConfigSchema = z
  .object({
    algorithm: z.literal('rm'),
    ...common,
    train: trainSchema,
    rm: z
      .object({
        /** Margin m in −log σ(r_c − r_r − m) (TRL's `margin` column, here one value). */
        margin: z.number().default(0),
        /** TRL's center_rewards_coefficient: + coef·mean((r_c + r_r)²). */
        centerRewardsCoefficient: z.number().min(0).default(0),
      })
      .strict()
      .default({ margin: 0, centerRewardsCoefficient: 0 }),
  })
  .strict()
  .superRefine(batchRules);

export const dpoConfigSchema = z
  .object({
    algorithm: z.literal('dpo'),
    ...common,
    train: trainSchema,
    dpo: z
      .object({
        /**
         * sigmoid (DPO), ipo, simpo (reference-free), orpo (reference-free), kto (unpaired: each
         * pair becomes a desirable and an undesirable example, as TRL's unpair_preference_dataset).
         */
        loss: z.enum(['sigmoid', 'ipo', 'simpo', 'orpo', 'kto']).default('sigmoid'),
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
  .superRefine(batchRules);

export type RmConfig = z.infer<typeof rmConfigSchema>;
export type DpoConfig = z.infer<typeof dpoConfigSchema>;
export type PretrainConfig = z.infer<typeof pretrainConfigSchema>;
export type SftConfig = z.infer<typeof sftConfigSchema>;
export type LmConfig = PretrainConfig | SftConfig;

/** Every algorithm's schema, by name. */
export const CONFIG_SCHEMAS = new Map<string, z.ZodType>([
  ['pretrain', pretrainConfigSchema],
  ['sft', sftConfigSchema],
  ['rm', rmConfigSchema],
  ['dpo', dpoConfigSchema],
]);
