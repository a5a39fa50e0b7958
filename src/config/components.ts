import { z } from 'zod';
import { DATASET_FORMATS, type DatasetFormat } from '../data/datasets/formats.js';
import { BACKEND_CHOICES } from '../kernels/backends/types.js';
import { PRECISIONS, precisionRefusal } from '../kernels/precision.js';
import { SCHEDULES } from '../policy/optim/schedule.js';
import { type ActorAlgorithm, type ActorPlacementConfig, mainLearner } from './actors.js';
import { type SequenceConfig, sequenceProblem } from './positions.js';

/*
 * The components of a run config, one zod schema each (model, data, optim, train, runtime), the
 * sections every algorithm shares and the cross-field rules they all follow. Each algorithm's
 * config composes them (schema.ts, rl-schema.ts); the ALGORITHMS registry
 * (src/algorithms/registry.ts) says which config each algorithm takes. (Past 300 lines: every
 * field documents itself on its line, and the cross-field rules read those fields.)
 */

export const positiveInt = z.number().int().positive();

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

/**
 * One of the keys of a registry fixed at load time (the KL estimators, the advantage
 * estimators, the loss aggregations), as a zod enum of exactly those keys: typed by them, and
 * its error lists them. The schema holds no copy of the names.
 */
export function registryEnum<K extends string>(registry: ReadonlyMap<K, unknown>) {
  return z.enum([...registry.keys()] as [K, ...K[]]);
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
    format: z.enum(DATASET_FORMATS as [DatasetFormat, ...DatasetFormat[]]).optional(),
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
    /** The learning-rate schedule, by its name in SCHEDULES (src/policy/optim/schedule.ts). */
    schedule: registryEnum(SCHEDULES).default('cosine'),
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
    backend: z.enum(BACKEND_CHOICES).default('auto'),
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
    precision: z.enum(PRECISIONS, { error: (i) => precisionRefusal(i.input) }).default('fp32'),
  })
  .strict();

/** The sections every algorithm's config has. */
export const common = {
  /** Seed of every random stream (init, data order, dropout, sampling). */
  seed: z.number().int().min(0).default(0),
  /** Run directory. */
  output: z.string(),
  model: modelSchema,
  data: dataSchema,
  optim: optimSchema.default(optimSchema.parse({})),
  runtime: runtimeSchema.default(runtimeSchema.parse({})),
};

/** Cross-field rules of the optimiser, the cadence and the batch every algorithm shares. */
export function batchRules(
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

/** Algorithms `model.quantize` does not run with yet, and why (the others: pretrain, sft). */
export const QUANTIZE_NOT_YET: Readonly<Record<string, string>> = {
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

/** batchRules, and the longest row against a fresh model's positions (see positions.ts). */
export function lmRules(
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
