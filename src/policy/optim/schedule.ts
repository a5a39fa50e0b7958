import { z } from 'zod';
import { parseOptions, refuseUnknownKeys } from '../../config/options.js';
import { lookup, TroupeError } from '../../errors.js';

/*
 * Learning-rate schedules as pure functions of the step, after Hugging Face
 * `transformers.optimization`. `step` counts the optimizer steps already taken (0 for the first
 * update), like the scheduler's counter in HF: lr(step) is the rate for update step + 1. With
 * warmup, lr(0) = 0, as in HF.
 *
 *   warmup (step < W):  lr · step / max(1, W)
 *   progress:           p = (step − W) / (T − W) before T, 1 from T on
 *   constant:           lr
 *   linear:             minLr + (lr − minLr) · (1 − p)
 *   cosine:             minLr + (lr − minLr) · ½(1 + cos(π·p))
 *
 * With minLr = 0 these are HF `get_constant_schedule_with_warmup`,
 * `get_linear_schedule_with_warmup` and `get_cosine_schedule_with_warmup` (num_cycles 0.5);
 * with minLr > 0, `get_cosine_with_min_lr_schedule_with_warmup`. From T on the rate holds at
 * minLr (HF's cosine would rise again past T, and gives lr at step T when W = T).
 */

/** The learning rate for optimizer step `step` (a non-negative integer). */
export type Schedule = (step: number) => number;

const steps = () => z.number().int('must be a whole number of steps').min(0, 'must be ≥ 0');

const base = {
  /** Peak learning rate, reached at the end of warmup. */
  lr: z.number().min(0, 'must be a finite number ≥ 0'),
  /** W: steps of linear warmup from 0 to lr. */
  warmupSteps: steps().default(0),
};

const warmupFits = (o: { warmupSteps: number; totalSteps?: number }, ctx: z.RefinementCtx) => {
  if (o.totalSteps !== undefined && o.warmupSteps > o.totalSteps) {
    ctx.addIssue({
      code: 'custom',
      path: ['warmupSteps'],
      message:
        `${o.warmupSteps} exceeds totalSteps (${o.totalSteps}), so warmup would never finish. ` +
        'Lower warmupSteps or raise totalSteps.',
    });
  }
};

const constantSchema = z
  .strictObject(
    {
      ...base,
      /** Optional; only checked against warmupSteps. */
      totalSteps: steps().optional(),
    },
    { error: refuseUnknownKeys(['lr', 'warmupSteps', 'totalSteps']) },
  )
  .superRefine(warmupFits);

const decaySchema = z
  .strictObject(
    {
      ...base,
      /** T: the step at which the rate reaches minLr. */
      totalSteps: z
        .number({ error: 'is required: the step at which the rate reaches minLr' })
        .int('must be a whole number of steps')
        .min(1, 'must be ≥ 1'),
      /** The rate the decay ends at (default 0). */
      minLr: z.number().min(0, 'must be a finite number ≥ 0').default(0),
    },
    { error: refuseUnknownKeys(['lr', 'warmupSteps', 'totalSteps', 'minLr']) },
  )
  .superRefine(warmupFits)
  .superRefine((o, ctx) => {
    if (o.minLr > o.lr) {
      ctx.addIssue({
        code: 'custom',
        path: ['minLr'],
        message: `${o.minLr} exceeds lr (${o.lr}); the decay must end at or below the peak.`,
      });
    }
  });

export type ConstantScheduleOptions = z.input<typeof constantSchema>;
export type DecayScheduleOptions = z.input<typeof decaySchema>;
export type ScheduleOptions = ConstantScheduleOptions | DecayScheduleOptions;

function checked(name: string, f: Schedule): Schedule {
  return (step) => {
    if (!Number.isInteger(step) || step < 0) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `${name} schedule: step must be a non-negative integer, got ${step}`,
        { details: { step } },
      );
    }
    return f(step);
  };
}

const warmup = (lr: number, w: number, step: number) => (lr * step) / Math.max(1, w);
const progress = (w: number, t: number, step: number) => (step >= t ? 1 : (step - w) / (t - w));

/** A schedule decaying from lr to minLr by `shape(p)` ∈ [0, 1] over progress p. */
function decaying(name: string, shape: (p: number) => number) {
  return (options: unknown): Schedule => {
    const o = parseOptions(decaySchema, options, `${name} schedule`);
    const { lr, warmupSteps: w, totalSteps: t, minLr } = o;
    return (step) =>
      step < w ? warmup(lr, w, step) : minLr + (lr - minLr) * shape(progress(w, t, step));
  };
}

/** Schedule registry: adding one is one entry here. Each factory validates its options. */
export const SCHEDULES: ReadonlyMap<ScheduleName, (options: unknown) => Schedule> = new Map<
  ScheduleName,
  (options: unknown) => Schedule
>([
  [
    'constant',
    (options: unknown): Schedule => {
      const { lr, warmupSteps: w } = parseOptions(constantSchema, options, 'constant schedule');
      return (step) => (step < w ? warmup(lr, w, step) : lr);
    },
  ],
  ['linear', decaying('linear', (p) => 1 - p)],
  ['cosine', decaying('cosine', (p) => 0.5 * (1 + Math.cos(Math.PI * p)))],
]);

export type ScheduleName = 'constant' | 'linear' | 'cosine';

/**
 * The named schedule with validated options; an unknown name lists the known ones.
 *   makeSchedule('cosine', { lr: 3e-4, warmupSteps: 100, totalSteps: 10_000, minLr: 3e-5 })
 */
export function makeSchedule(
  name: ScheduleName | (string & {}),
  options: ScheduleOptions,
): Schedule {
  const factory = lookup(
    SCHEDULES as ReadonlyMap<string, (o: unknown) => Schedule>,
    name,
    'learning-rate schedule',
  );
  return checked(name, factory(options));
}
