import { z } from 'zod';
import { applyOverride, formatIssues, readConfigMapping } from '../config/load.js';
import { TroupeError } from '../errors.js';

/**
 * A scaling-law sweep (`troupe sweep --config sweep.yaml`): model sizes × compute budgets
 * (IsoFLOP: each size trains D = C / 6N tokens) or model sizes × token budgets (a grid), every
 * job a `troupe pretrain` run of its own with a cosine schedule spanning exactly its tokens.
 */

const positive = z.number().positive();
const positiveInt = z.number().int().positive();

/** One model size: the shape fields of `model.init` (the rest of it comes from `pretrain`). */
export const sweepModelSchema = z
  .object({
    /** The job name's part (`d64`): letters, digits, `.`, `_`, `-`. */
    name: z.string().regex(/^[\w.-]+$/, 'a name of letters, digits, ., _ or -'),
    hidden: positiveInt,
    layers: positiveInt,
    heads: positiveInt,
    kvHeads: positiveInt.optional(),
    intermediate: positiveInt.optional(),
    /** This size's peak learning rate, over `pretrain.optim.lr`. */
    lr: positive.optional(),
  })
  .strict();

export const sweepScheduleSchema = z
  .object({
    /** Warmup as a fraction of each job's steps. */
    warmupFraction: z.number().min(0).max(0.5).default(0.05),
    /** The cosine's floor as a fraction of the peak (Hoffmann et al. decay 10×: 0.1). */
    minLrRatio: z.number().min(0).max(1).default(0.1),
  })
  .strict();

export const sweepFitSchema = z
  .object({
    /** Huber δ on log-loss residuals (approach 3). */
    delta: positive.default(1e-3),
    /** Bootstrap resamples for the confidence intervals; 0 = none. */
    bootstrap: z.number().int().min(0).default(200),
    /** Seed of the bootstrap's resampling. */
    seed: z.number().int().min(0).default(0),
    /** Two-sided level of the percentile intervals. */
    confidence: z.number().gt(0).lt(1).default(0.95),
    /**
     * Approach 2 fits each IsoFLOP parabola to the best size and this many on each side of it
     * (far, skewed tails pull a parabola's vertex: docs/scaling.md); null = every size.
     */
    isoflopWindow: z.number().int().min(1).nullable().default(2),
  })
  .strict();

export const sweepConfigSchema = z
  .object({
    /** The sweep's directory: jobs/<id>/ (one run each), results.csv/json, fits.json, report.html. */
    output: z.string(),
    /** IsoFLOP design: compute budgets C (FLOPs); each size trains D = C / (6N) tokens. */
    flops: z.array(positive).min(1).optional(),
    /** Grid design: token budgets D; each size trains each of them. */
    tokens: z.array(positive).min(1).optional(),
    /**
     * The N of C = 6ND and of the fits: `total` (every parameter, as Hoffmann et al.) or
     * `nonEmbedding` (without the token and position embeddings and an untied output matrix,
     * as Kaplan et al.). The table has both.
     */
    parameters: z.enum(['total', 'nonEmbedding']).default('total'),
    models: z.array(sweepModelSchema).min(1),
    schedule: sweepScheduleSchema.default(sweepScheduleSchema.parse({})),
    /** Checkpoints per job (how much of a killed job is lost at worst: 1/checkpoints of it). */
    checkpoints: positiveInt.default(4),
    /** A job with fewer optimiser steps than this is refused (its budget is too small to train). */
    minSteps: positiveInt.default(20),
    /**
     * The pretraining config every job shares: `troupe pretrain`'s fields, less those the sweep
     * sets per job (output, train.steps, the cosine schedule, model.init's shape, the checkpoint
     * cadence). A `{ train: … }` tokenizer is trained once and shared by every job.
     */
    pretrain: z.record(z.string(), z.unknown()),
    fit: sweepFitSchema.default(sweepFitSchema.parse({})),
  })
  .strict()
  .superRefine((c, ctx) => {
    if ((c.flops === undefined) === (c.tokens === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['flops'],
        message:
          "set exactly one of 'flops' (IsoFLOP budgets: each size trains C / 6N tokens) or 'tokens' (a grid of sizes × token budgets)",
      });
    }
    const seen = new Set<string>();
    c.models.forEach((m, i) => {
      if (seen.has(m.name))
        ctx.addIssue({
          code: 'custom',
          path: ['models', i, 'name'],
          message: `'${m.name}' names two models: each needs its own name (it names the jobs' directories)`,
        });
      seen.add(m.name);
    });
  });

export type SweepConfig = z.infer<typeof sweepConfigSchema>;
export type SweepModel = z.infer<typeof sweepModelSchema>;

/** Fields of `pretrain` the sweep sets itself: given there, they are refused by name. */
export const SWEEP_OWNED = [
  'algorithm',
  'output',
  'train.steps',
  'train.evalEvery',
  'train.saveEvery',
  'train.keepLast',
  'optim.schedule',
  'optim.warmupSteps',
  'optim.minLr',
  'model.init.hidden',
  'model.init.layers',
  'model.init.heads',
  'model.init.kvHeads',
  'model.init.intermediate',
] as const;

function owned(pretrain: Record<string, unknown>): string[] {
  return SWEEP_OWNED.filter((path) => {
    let node: unknown = pretrain;
    for (const k of path.split('.')) {
      if (typeof node !== 'object' || node === null) return false;
      node = (node as Record<string, unknown>)[k];
    }
    return node !== undefined;
  });
}

/** Validate a sweep config (an object), naming `source` and the field in every error. */
export function parseSweepConfig(raw: unknown, source = '(sweep object)'): SweepConfig {
  const r = sweepConfigSchema.safeParse(raw);
  if (!r.success) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${source}: invalid sweep config:\n  ${formatIssues(r.error.issues).join('\n  ')}`,
      { details: { file: source, issues: r.error.issues.map((i) => ({ path: i.path })) } },
    );
  }
  const clash = owned(r.data.pretrain);
  if (clash.length > 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${source}: ${clash.map((p) => `pretrain.${p}`).join(', ')} ${clash.length > 1 ? 'are' : 'is'} set by the sweep for each job (steps from its token budget, a cosine over them, the shape from models[]): remove ${clash.length > 1 ? 'them' : 'it'}`,
      { details: { file: source, fields: clash.map((p) => `pretrain.${p}`) } },
    );
  }
  return r.data;
}

/** Read, override (`--key value` pairs) and validate a sweep config file. */
export async function loadSweepConfig(
  file: string,
  overrides: readonly (readonly [string, string])[] = [],
): Promise<SweepConfig> {
  const { obj } = await readConfigMapping({ file }, 'sweep config');
  for (const [path, value] of overrides) applyOverride(obj, path, value);
  return parseSweepConfig(obj, file);
}
