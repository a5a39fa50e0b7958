import { join } from 'node:path';
import { TroupeError } from '../errors.js';
import type { ModelConfig } from '../policy/config.js';
import { paramSpecs } from '../policy/params.js';
import type { SweepConfig, SweepModel } from './config.js';

/*
 * The jobs of a sweep, planned before anything trains: each size × budget, its steps from its
 * token budget (D = C / 6N on an IsoFLOP design), its pretraining config with a cosine schedule
 * over exactly those steps. Pure: the caller supplies each size's model config (from the shared
 * tokenizer's vocabulary).
 */

/** Parameters of a model: every one, and those outside the embeddings (Kaplan et al.'s N). */
export interface ParamCounts {
  readonly total: number;
  /** Without the token and position embeddings and an untied output (unembedding) matrix. */
  readonly nonEmbedding: number;
}

export function countParams(c: ModelConfig): ParamCounts {
  let total = 0;
  let embedding = 0;
  for (const p of paramSpecs(c)) {
    const size = p.shape.reduce((a, b) => a * b, 1);
    total += size;
    if (p.kind === 'embedding' || p.name === 'lm_head.weight') embedding += size;
  }
  return { total, nonEmbedding: total - embedding };
}

export interface PlannedJob {
  /** `C1e12-d64` (IsoFLOP) or `D1e6-d64` (grid): the job's directory under jobs/. */
  readonly id: string;
  readonly model: SweepModel;
  readonly params: ParamCounts;
  /** The budget the job belongs to: a compute budget C (IsoFLOP) or a token budget D (grid). */
  readonly budget: { readonly kind: 'flops' | 'tokens'; readonly value: number };
  readonly steps: number;
  /** Tokens trained on: steps × batchSize × blockSize (each block's targets). */
  readonly tokens: number;
  /** 6 N D with the sweep's N (`parameters`). */
  readonly flops: number;
  readonly dir: string;
  /** The job's `troupe pretrain` config (not yet validated). */
  readonly config: Record<string, unknown>;
}

/** `3e11`, `1.5e12`: a budget as it appears in a job's name. */
export function budgetLabel(v: number): string {
  return v.toExponential().replace('e+', 'e');
}

const get = (o: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>(
    (n, k) => (typeof n === 'object' && n !== null ? (n as Record<string, unknown>)[k] : undefined),
    o,
  );

/** Tokens per optimiser step of the shared pretraining config (its defaults where unset). */
export function tokensPerStep(pretrain: Record<string, unknown>): number {
  const batch = (get(pretrain, 'train', 'batchSize') as number | undefined) ?? 8;
  const block = (get(pretrain, 'data', 'blockSize') as number | undefined) ?? 128;
  return batch * block;
}

/**
 * Every job of the sweep, smallest budget first and within a budget smallest model first (so
 * the table fills from the cheap end). `modelConfigOf` gives each size's model config;
 * `tokenizer` is the path every job uses.
 */
export function planJobs(
  sweep: SweepConfig,
  modelConfigOf: (m: SweepModel) => ModelConfig,
  tokenizer: string | undefined,
): PlannedJob[] {
  const perStep = tokensPerStep(sweep.pretrain);
  const kind = sweep.flops ? 'flops' : 'tokens';
  const budgets = [...(sweep.flops ?? sweep.tokens ?? [])].sort((a, b) => a - b);
  const jobs: PlannedJob[] = [];
  for (const budget of budgets) {
    for (const m of sweep.models) {
      const params = countParams(modelConfigOf(m));
      const n = sweep.parameters === 'total' ? params.total : params.nonEmbedding;
      const wanted = kind === 'flops' ? budget / (6 * n) : budget;
      const steps = Math.round(wanted / perStep);
      const id = `${kind === 'flops' ? 'C' : 'D'}${budgetLabel(budget)}-${m.name}`;
      if (steps < sweep.minSteps) {
        throw new TroupeError(
          'BAD_ARGUMENT',
          `sweep job ${id}: ${Math.round(wanted)} tokens at ${perStep} a step (train.batchSize × data.blockSize) is ${steps} steps, fewer than minSteps ${sweep.minSteps}: raise the budget, lower train.batchSize, or drop ${m.name} from this sweep`,
          { details: { job: id, steps, tokensPerStep: perStep, minSteps: sweep.minSteps } },
        );
      }
      const tokens = steps * perStep;
      const dir = join(sweep.output, 'jobs', id);
      const config = jobConfig(sweep, m, steps, dir, tokenizer);
      jobs.push({
        id,
        model: m,
        params,
        budget: { kind, value: budget },
        steps,
        tokens,
        flops: 6 * n * tokens,
        dir,
        config,
      });
    }
  }
  return jobs;
}

/**
 * The `troupe pretrain` config of one job: the shared one, with the size's shape, `steps`
 * optimiser steps under a cosine (warmup and floor from `schedule`), an eval only before and
 * after, `checkpoints` checkpoints over the run (the latest one kept), and the shared tokenizer.
 */
export function jobConfig(
  sweep: SweepConfig,
  m: SweepModel,
  steps: number,
  dir: string,
  tokenizer: string | undefined,
): Record<string, unknown> {
  const base = sweep.pretrain;
  const baseModel = (base['model'] ?? {}) as Record<string, unknown>;
  const baseOptim = (base['optim'] ?? {}) as Record<string, unknown>;
  const lr = m.lr ?? (baseOptim['lr'] as number | undefined) ?? 3e-4;
  const { name: _name, lr: _lr, ...shape } = m;
  return {
    ...base,
    output: dir,
    model: {
      ...baseModel,
      init: { ...((baseModel['init'] ?? {}) as Record<string, unknown>), ...shape },
      ...(tokenizer === undefined ? {} : { tokenizer }),
    },
    optim: {
      ...baseOptim,
      lr,
      schedule: 'cosine',
      warmupSteps: Math.round(sweep.schedule.warmupFraction * steps),
      minLr: lr * sweep.schedule.minLrRatio,
    },
    train: {
      ...((base['train'] ?? {}) as Record<string, unknown>),
      steps,
      evalEvery: 0,
      saveEvery: Math.max(1, Math.ceil(steps / sweep.checkpoints)),
      keepLast: 1,
    },
  };
}
