import { z } from 'zod';
import { POLICY_LOSSES } from '../algorithms/losses/ppo.js';
import { PREFERENCE_LOSSES } from '../algorithms/losses/preference.js';
import { REWARD_MODEL_LOSSES } from '../algorithms/losses/reward-model.js';
import { PRECISIONS } from '../kernels/precision.js';
import {
  type ActorAlgorithm,
  type ActorPlacementConfig,
  actorsSchema,
  BACKEND_NAMES,
  mainLearner,
} from './actors.js';
import { type SequenceConfig, sequenceProblem } from './positions.js';

/**
 * The run config, one zod schema per component, composed per algorithm. Every field documents
 * itself; unknown keys fail; cross-field rules say why and how to fix. Validated once at the
 * boundary (`loadConfig`), then frozen. (Past 300 lines: the components are small and only make
 * sense composed; #16 item 4 derives each algorithm's composition from one ALGORITHMS registry,
 * the seam this file splits along.)
 */

const positiveInt = z.number().int().positive();

/**
 * A name in `registry`, checked as the config is validated, so that an entry registered at run
 * time is accepted too: the schema holds no copy of the names. An unknown one lists them.
 */
export function registryName(registry: ReadonlyMap<string, unknown>, what: string) {
  return z.string().refine((v) => registry.has(v), {
    error: (issue) =>
      `unknown ${what} '${String(issue.input)}'; known: ${[...registry.keys()].join(', ')}`,
  });
}

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
    /**
     * The architecture: gpt2, llama, or any transformers model type Troupe runs (qwen2, qwen3,
     * mistral, gemma2, gemma3 (text), phi3), with that type's defaults for everything not here.
     */
    family: z
      .enum(['gpt2', 'llama', 'qwen2', 'qwen3', 'mistral', 'gemma2', 'gemma3', 'phi3'])
      .default('gpt2'),
    hidden: positiveInt,
    layers: positiveInt,
    heads: positiveInt,
    /** Key/value heads (grouped-query attention); default = heads. */
    kvHeads: positiveInt.optional(),
    /** Width of one head; default hidden / heads. */
    headDim: positiveInt.optional(),
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
    /**
     * QLoRA (Dettmers et al. 2023): `nf4` keeps the frozen base's block projections (q, k, v, o,
     * gate, up, down) as 4-bit NormalFloat, blocks of 64 with double-quantised scales, dequantised
     * inside the matmul; embeddings, LM head and norms stay fp32. Needs `lora`: the adapters
     * train in fp32 on top. The base is quantised again from `path` at every start.
     */
    quantize: z.enum(['nf4']).optional(),
    /** Recompute each block in backward (less memory, ~15–30 % slower). */
    gradientCheckpointing: z.boolean().default(false),
    /**
     * Dropout while training: true = the model's own rates (config.json's attn_pdrop,
     * attention_dropout, …), false = none, or rates { embedding, attention, residual }.
     * Default per algorithm, as TRL: on for pretrain and sft; off for rm and dpo
     * (disable_dropout) and for the online algorithms (as OpenRLHF and verl).
     */
    dropout: z
      .union([
        z.boolean(),
        z
          .object({
            embedding: z.number().min(0).lt(1).optional(),
            attention: z.number().min(0).lt(1).optional(),
            residual: z.number().min(0).lt(1).optional(),
          })
          .strict(),
      ])
      .optional(),
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
    if (m.quantize && !m.lora) {
      ctx.addIssue({
        code: 'custom',
        path: ['quantize'],
        message:
          `'model.quantize: ${m.quantize}' stores the base in 4 bits, which is not trained: it needs ` +
          "'model.lora' (QLoRA trains LoRA adapters on the frozen quantised base). Add a lora " +
          'section, or remove quantize to train the whole model in fp32',
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
    /** Keep AdamW's moments in host memory and update there (frees 2/3 of optimizer memory on the device). */
    offload: z.boolean().default(false),
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
    /**
     * Save a checkpoint every N steps (and at the end, and when a run is interrupted); 0 = only
     * at the end. A multiple of evalEvery, so that each checkpoint has an eval that ranks it.
     */
    saveEvery: z.number().int().min(0).default(100),
    /** Checkpoints kept (the best and the latest are always kept). */
    keepLast: positiveInt.default(2),
  })
  .strict();

export const runtimeSchema = z
  .object({
    /** Every model actor's backend, unless `actors.<name>.backend` says otherwise. */
    backend: z.enum(BACKEND_NAMES).default('auto'),
    /** `cpu`, `gpu` or `gpu:N`: every model actor's device, unless `actors.<name>.device` says otherwise. */
    device: z.string().optional(),
    /** Data-parallel replicas of the main learner (one thread each), unless `actors.<name>.replicas` says otherwise. */
    replicas: positiveInt.default(1),
    /**
     * BLAS threads per call with the native kernels. Default: the cores shared out among the
     * run's concurrently computing actors (TROUPE_BLAS_THREADS, when set, also overrides it).
     */
    blasThreads: positiveInt.optional(),
    /**
     * Matrix-product precision of every model actor, unless `actors.<name>.precision` says
     * otherwise: fp32, or bf16 mixed precision (bf16 operands, fp32 sums; fp32 master weights,
     * optimizer state, norms, softmax and loss), computed by the native kernels on the wasm and
     * cpu backends and refused, by name, elsewhere (src/kernels/precision.ts).
     */
    precision: z.enum(PRECISIONS).default('fp32'),
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
    algorithm: ActorAlgorithm;
    train: z.infer<typeof trainSchema>;
    runtime: z.infer<typeof runtimeSchema>;
    optim: z.infer<typeof optimSchema>;
    actors?: Readonly<Record<string, ActorPlacementConfig | undefined>>;
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
  const { evalEvery, saveEvery, steps } = c.train;
  if (evalEvery > 0 && saveEvery > 0 && saveEvery < steps && saveEvery % evalEvery !== 0) {
    const lo = Math.floor(saveEvery / evalEvery) * evalEvery;
    const hi = lo + evalEvery;
    ctx.addIssue({
      code: 'custom',
      path: ['train', 'saveEvery'],
      message: `saveEvery ${saveEvery} is not a multiple of train.evalEvery ${evalEvery}, so some checkpoints would have no eval of their own to rank them for best.json (as TRL's load_best_model_at_end requires save_steps to be a multiple of eval_steps): set saveEvery to ${lo > 0 ? `${lo} or ${hi}` : hi}, or evalEvery to a divisor of ${saveEvery}`,
    });
  }
  const learner = mainLearner(c.algorithm);
  const own = c.actors?.[learner]?.replicas;
  const per = (own ?? c.runtime.replicas) * c.train.gradAccum;
  if (c.train.batchSize % per !== 0) {
    const replicas = own === undefined ? 'runtime.replicas' : `actors.${learner}.replicas`;
    ctx.addIssue({
      code: 'custom',
      path: ['train', 'batchSize'],
      message: `batchSize ${c.train.batchSize} must be a multiple of ${replicas} × train.gradAccum = ${per}; change batchSize to ${Math.ceil(c.train.batchSize / per) * per} or lower gradAccum`,
    });
  }
}

/** batchRules, and the longest row against a fresh model's positions (see positions.ts). */
/** Algorithms `model.quantize` does not run with yet, and why (the others: pretrain, sft). */
const QUANTIZE_NOT_YET: Readonly<Record<string, string>> = {
  rm:
    "'model.quantize' is not supported for rm yet: the reward model trains a score head " +
    'beside the adapters, and a QLoRA checkpoint holds the adapters only',
  dpo:
    "'model.quantize' is not supported for dpo yet: the reference model would have to be the " +
    'same NF4 base (at step 0 the policy must equal it), and the reference actor loads fp32',
  rl:
    "'model.quantize' is not supported for the online algorithms: the policy publishes its " +
    'weights to the generator with the adapters merged in, and an NF4 base cannot take them',
};

function lmRules(
  c: Parameters<typeof batchRules>[0] &
    SequenceConfig & { algorithm: string; model: z.infer<typeof modelSchema> },
  ctx: z.RefinementCtx,
) {
  batchRules(c, ctx);
  const why = c.model.quantize ? QUANTIZE_NOT_YET[c.algorithm] : undefined;
  if (why) ctx.addIssue({ code: 'custom', path: ['model', 'quantize'], message: why });
  const init = c.model.init;
  if (!init) return;
  const problem = sequenceProblem(c, init.maxPositions, 'model.init', 'model.init.maxPositions');
  if (problem) ctx.addIssue({ code: 'custom', path: [...problem.path], message: problem.message });
}

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

/** The online algorithms, and what each defaults to (OpenRLHF / verl / TRL conventions). */
export const RL_ALGORITHMS = ['ppo', 'grpo', 'rloo', 'reinforce'] as const;
export type RlAlgorithm = (typeof RL_ALGORITHMS)[number];

const RL_DEFAULTS: Readonly<
  Record<
    RlAlgorithm,
    {
      estimator: 'gae' | 'grpo' | 'rloo' | 'reinforce_plus_plus' | 'reinforce_plus_plus_baseline';
      samplesPerPrompt: number;
      kl: { mode: 'reward' | 'loss' | 'none'; coef: number; estimator: 'k1' | 'k2' | 'k3' };
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
          estimator: z
            .enum(['gae', 'grpo', 'rloo', 'reinforce_plus_plus', 'reinforce_plus_plus_baseline'])
            .default(d.estimator),
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
           * The policy loss, by its name in POLICY_LOSSES (src/algorithms/losses/ppo.ts):
           * `vanilla` is PPO's clipped surrogate (ε_low/ε_high, dual clip), as verl's loss_mode.
           */
          policyLoss: registryName(POLICY_LOSSES, 'policy loss').default('vanilla'),
          /** PPO ε_low and ε_high (clip-higher: raise clipHigh). */
          clipLow: z.number().min(0).lt(1).default(0.2),
          clipHigh: z.number().min(0).default(0.2),
          /** Dual-clip c > 1 for negative advantages; unset: off. */
          dualClip: z.number().gt(1).optional(),
          aggMode: z
            .enum([
              'token-mean',
              'seq-mean-token-sum',
              'seq-mean-token-mean',
              'seq-mean-token-sum-norm',
            ])
            .default('token-mean'),
          entropyCoef: z.number().min(0).default(0),
          kl: z
            .object({
              /** The KL to the reference: a penalty in the reward, a loss term, or none. */
              mode: z.enum(['reward', 'loss', 'none']).default(d.kl.mode),
              /** β (the initial one, with a target). */
              coef: z.number().min(0).default(d.kl.coef),
              estimator: z.enum(['k1', 'k2', 'k3']).default(d.kl.estimator),
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
    });
}

export const ppoConfigSchema = rlSchema('ppo');
export const grpoConfigSchema = rlSchema('grpo');
export const rlooConfigSchema = rlSchema('rloo');
export const reinforceConfigSchema = rlSchema('reinforce');
export type RlConfig = z.infer<ReturnType<typeof rlSchema>>;

export type RmConfig = z.infer<typeof rmConfigSchema>;
export type DpoConfig = z.infer<typeof dpoConfigSchema>;
export type PretrainConfig = z.infer<typeof pretrainConfigSchema>;
export type SftConfig = z.infer<typeof sftConfigSchema>;
export type LmConfig = PretrainConfig | SftConfig;
