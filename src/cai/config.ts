import { z } from 'zod';
import { CONFIG_SCHEMAS } from '../algorithms/registry.js';
import { applyOverride, formatIssues, readConfigMapping } from '../config/load.js';
import { TroupeError } from '../errors.js';
import { BACKEND_CHOICES } from '../kernels/backends/types.js';
import { endpointSchema } from './endpoint.js';

/*
 * The config of a Constitutional AI run (`troupe cai`): the constitution, the models, the two
 * stages' data and generation settings, and each trainer's own section (sl.sft, rl.rm, rl.ppo:
 * any field of that trainer's config but the ones the pipeline fills in: algorithm, output,
 * model.path, data.train and, for PPO, reward). docs/cai.md describes every field.
 */

const positiveInt = z.number().int().positive();

/** A model: a Troupe checkpoint path, or an OpenAI-compatible endpoint. */
const modelRefSchema = z.union([z.string().min(1), z.strictObject({ endpoint: endpointSchema })]);
export type ModelRef = z.output<typeof modelRefSchema>;

const generationSchema = z
  .strictObject({
    maxNewTokens: positiveInt.default(64),
    temperature: z.number().min(0).default(1),
    topP: z.number().gt(0).max(1).default(1),
  })
  .prefault({});

const promptsSchema = {
  /** Prompt rows ({prompt: string or messages}), JSONL or Parquet. */
  prompts: z.string().min(1),
  /** Rename columns to `prompt`. */
  columns: z.record(z.string(), z.string()).optional(),
  /** Use the first N prompts only. */
  limit: positiveInt.optional(),
};

/** A trainer's section: validated against that trainer's schema once the pipeline fills it. */
const trainerSection = z.record(z.string(), z.unknown()).default({});

export const caiConfigSchema = z.strictObject({
  /** The run directory: stage directories, stages.json, log.txt. */
  output: z.string().min(1),
  seed: z.number().int().min(0).default(0),
  /** The constitution file (YAML or JSON; data/cai/constitution.yaml ships). */
  constitution: z.string().min(1),
  /**
   * How conversations become training data: text ("Human: … Assistant:", the paper's format;
   * rows of strings) or chat (rows of messages, rendered by the model's chat template).
   */
  dialogue: z.enum(['text', 'chat']).default('text'),
  /** The Troupe model SL-CAI fine-tunes (and RL-CAI's PPO then starts from the SL-CAI model). */
  policy: z.string().min(1),
  /** Tensor backend for generation and scoring on this thread (Troupe models). */
  backend: z.enum(BACKEND_CHOICES).default('auto'),
  /** Prompts per generation batch (a resumable step of a data stage). */
  batchSize: positiveInt.default(8),
  sl: z
    .strictObject({
      ...promptsSchema,
      /** Who answers, critiques and revises: the policy (default, as the paper), another model or an endpoint. */
      model: modelRefSchema.optional(),
      /** Critique → revision rounds per prompt. */
      revisions: positiveInt.default(2),
      /** SFT on the final revision of each prompt, or on every round's. */
      keep: z.enum(['final', 'all']).default('final'),
      /** Few-shot revision examples of the constitution prepended to each request. */
      fewShot: z.number().int().min(0).default(1),
      generation: generationSchema,
      /** Helpful samples mixed into the SFT data. */
      helpful: z
        .strictObject({
          /** SFT rows (prompt/completion or messages) used as they are, or prompt rows the model answers. */
          data: z.string().min(1),
          columns: z.record(z.string(), z.string()).optional(),
          /** The fraction of the SFT rows that are helpful samples, in [0, 1). */
          fraction: z.number().min(0).lt(1).default(0.5),
        })
        .optional(),
      /** The SFT trainer's config (any `troupe sft` field but algorithm, output, model.path, data.train). */
      sft: trainerSection,
    })
    .optional(),
  rl: z
    .strictObject({
      ...promptsSchema,
      /** Who samples the response pairs: default the SL-CAI model (or the policy without an SL stage). */
      sampler: modelRefSchema.optional(),
      /** The feedback model that labels them. */
      feedback: modelRefSchema,
      /** Comparison principles per pair, their labels averaged (the ensemble). */
      principles: positiveInt.default(4),
      /** Reason before answering, labels clamped to `clamp`. */
      chainOfThought: z.boolean().default(false),
      clamp: z.tuple([z.number().min(0).max(0.5), z.number().min(0.5).max(1)]).default([0.4, 0.6]),
      /** Samples per question where the feedback model gives no log-probs. */
      votes: positiveInt.default(8),
      /** Few-shot feedback examples of the constitution prepended to each question. */
      fewShot: z.number().int().min(0).default(1),
      /** Show the pair in a random order per principle (against position bias). */
      shuffleOrder: z.boolean().default(true),
      /** Tokens of chain-of-thought reasoning. */
      reasoningTokens: positiveInt.default(96),
      generation: generationSchema,
      /** Human-labelled preference pairs mixed into the reward model's data (hard labels). */
      extraPairs: z.string().min(1).optional(),
      /** The reward-model trainer's config (`troupe rm` fields but algorithm, output, model.path, data.train). */
      rm: trainerSection,
      /** The PPO trainer's config (`troupe ppo` fields but algorithm, output, model.path, data.train, reward). */
      ppo: trainerSection,
    })
    .optional(),
});

export type CaiConfig = z.output<typeof caiConfigSchema>;

/** The fields of each trainer the pipeline fills in, so a section may not set them. */
const FILLED: Readonly<Record<'sft' | 'rm' | 'ppo', readonly string[]>> = {
  sft: ['algorithm', 'output', 'model.path', 'model.init', 'data.train'],
  // The reward model may start from a model of its own (rl.rm.model.path).
  rm: ['algorithm', 'output', 'model.init', 'data.train'],
  ppo: ['algorithm', 'output', 'model.path', 'model.init', 'data.train', 'reward'],
};

const get = (o: Record<string, unknown>, path: string): unknown =>
  path.split('.').reduce<unknown>((x, k) => (x as Record<string, unknown> | undefined)?.[k], o);

/**
 * A trainer's config from its section and what the pipeline fills in (deep-merged: `fill` wins
 * only on the fields it names), validated by that trainer's schema; errors name the CAI field.
 */
export function trainerConfig<T>(
  algorithm: 'sft' | 'rm' | 'ppo',
  section: Readonly<Record<string, unknown>>,
  fill: Record<string, unknown>,
  where: { file: string; field: string },
): T {
  for (const f of FILLED[algorithm]) {
    if (get(section as Record<string, unknown>, f) !== undefined) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `${where.file}: ${where.field}.${f}: set by the CAI pipeline; remove it from ${where.field}`,
        { details: { file: where.file, field: `${where.field}.${f}` } },
      );
    }
  }
  const merged = merge(structuredClone(section) as Record<string, unknown>, fill);
  const r = CONFIG_SCHEMAS.get(algorithm)!.safeParse({ ...merged, algorithm });
  if (!r.success) {
    const lines = formatIssues(r.error.issues).map((l) => `${where.field}.${l}`);
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${where.file}: invalid config:\n  ${lines.join('\n  ')}`,
      {
        details: { file: where.file, field: where.field },
      },
    );
  }
  return r.data as T;
}

function merge(
  into: Record<string, unknown>,
  from: Record<string, unknown>,
): Record<string, unknown> {
  for (const [k, v] of Object.entries(from)) {
    const cur = into[k];
    into[k] =
      v &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      cur &&
      typeof cur === 'object' &&
      !Array.isArray(cur)
        ? merge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return into;
}

/** Load, override (`--sl.revisions 4`) and validate a CAI config; errors name the file and field. */
export async function loadCaiConfig(o: {
  readonly file?: string;
  readonly object?: Record<string, unknown>;
  readonly overrides?: readonly (readonly [string, string])[];
}): Promise<CaiConfig> {
  const { obj, source } = await readConfigMapping(o);
  if (obj['algorithm'] !== undefined && obj['algorithm'] !== 'cai') {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${source}: this config is for '${String(obj['algorithm'])}', not 'cai'`,
    );
  }
  delete obj['algorithm'];
  for (const [path, value] of o.overrides ?? []) applyOverride(obj, path, value);
  const r = caiConfigSchema.safeParse(obj);
  if (!r.success) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${source}: invalid config:\n  ${formatIssues(r.error.issues).join('\n  ')}`,
      { details: { file: source } },
    );
  }
  if (!r.data.sl && !r.data.rl) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${source}: sl or rl: a CAI run needs at least one stage`,
    );
  }
  return r.data;
}

/**
 * Every trainer section checked at once, with stand-in paths for what the pipeline will
 * generate, so that a typo in rl.ppo fails before hours of generation rather than after.
 */
export function checkTrainerSections(c: CaiConfig, file: string): void {
  const fill = (extra: Record<string, unknown> = {}) => ({
    output: 'stage',
    model: { path: 'model' },
    data: { train: 'data.jsonl' },
    ...extra,
  });
  if (c.sl) trainerConfig('sft', c.sl.sft, fill(), { file, field: 'sl.sft' });
  if (c.rl) {
    const rm = c.rl.rm as { model?: { path?: string } };
    trainerConfig(
      'rm',
      c.rl.rm,
      rm.model?.path ? { output: 'stage', data: { train: 'd.jsonl' } } : fill(),
      {
        file,
        field: 'rl.rm',
      },
    );
    trainerConfig('ppo', c.rl.ppo, fill({ reward: { sources: [{ type: 'model', path: 'rm' }] } }), {
      file,
      field: 'rl.ppo',
    });
  }
}
