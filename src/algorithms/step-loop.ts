import { DataLoader, type LoaderPosition } from '../data/batching/loader.js';
import { makeSchedule, type Schedule } from '../policy/optim/index.js';
import { type ProgressState, ProgressTracker } from '../train/progress.js';
import { writeReport } from '../train/report.js';
import type { RunDir } from '../train/run-dir.js';
import type { TrainerConfig } from './common.js';
import { recordFailure } from './run-guard.js';

/*
 * The step loop every trainer shares: the learning-rate schedule, the eval and checkpoint
 * cadence, the batches it trains and evaluates on, and the loop itself (step → metrics → eval →
 * save, abort and failure handling).
 */

/** What the batch helpers read of a trainer's config. */
interface BatchConfig {
  readonly seed: number;
  readonly train: { readonly batchSize: number; readonly evalBatches: number };
}

/**
 * A run's training batches of `items`, from `position` (a resumed run's): shuffled each epoch by
 * the run's seed; an epoch's short last batch is dropped, unless the items do not fill one.
 */
export function trainLoader<T, B>(
  c: BatchConfig,
  items: readonly T[],
  collate: (items: T[]) => B,
  position: LoaderPosition | undefined,
): DataLoader<T, B> {
  return new DataLoader(items, {
    batchSize: c.train.batchSize,
    seed: c.seed,
    collate,
    dropLast: items.length >= c.train.batchSize,
    position,
  });
}

/** How many of `n` held-out rows an eval reads: `train.evalBatches` batches, or all at 0. */
export function evalRows(c: BatchConfig, n: number): number {
  return c.train.evalBatches === 0 ? n : Math.min(n, c.train.evalBatches * c.train.batchSize);
}

/** The learning rate of each step. */
export function scheduleOf(c: TrainerConfig): Schedule {
  return makeSchedule(c.optim.schedule, {
    lr: c.optim.lr,
    warmupSteps: c.optim.warmupSteps,
    totalSteps: c.train.steps,
    ...(c.optim.schedule === 'constant' ? {} : { minLr: c.optim.minLr }),
  });
}

/** Whether step `step` (1-based, just taken) evaluates and saves; the last step does both. */
export function cadence(
  c: TrainerConfig,
  step: number,
  stopAt: number,
): { evaluate: boolean; save: boolean } {
  const last = step === c.train.steps;
  return {
    evaluate: (c.train.evalEvery > 0 && step % c.train.evalEvery === 0) || last,
    save: (c.train.saveEvery > 0 && step % c.train.saveEvery === 0) || last || step === stopAt,
  };
}

/** What one optimiser step reports: the metrics of the step and, for rates, its tokens. */
export interface StepReport {
  readonly loss: number;
  readonly tokens?: number;
  readonly values: Readonly<Record<string, number>>;
}

export interface LoopHooks {
  /** Take step `step` (0-based) at learning rate `lr`. */
  step(step: number, lr: number): Promise<StepReport>;
  /** Evaluate after step `step` (0 = before training); undefined when there is no eval data. */
  evaluate(step: number): Promise<Readonly<Record<string, number>> | undefined>;
  /**
   * Write a checkpoint after step `step`; returns its directory. `evaluated` is the eval of
   * this step when it was evaluated (it ranks the checkpoint), else undefined: a checkpoint is
   * never credited with an earlier step's eval.
   */
  save(step: number, evaluated: Readonly<Record<string, number>> | undefined): Promise<string>;
}

/** How a step loop ended. */
export interface LoopOutcome {
  readonly steps: number;
  readonly lastEval?: { readonly step: number; readonly values: Readonly<Record<string, number>> };
  readonly checkpoint?: string;
  readonly aborted: boolean;
}

/**
 * The step loop every trainer shares: from `start` until `train.steps` (or `stopAfterSteps`
 * more, or an abort), each step logged to the run and reported, evaluated and checkpointed on
 * the config's cadence, the report rewritten at the end. Reads like the algorithm:
 * step → metrics → eval → save. An abort lets the step under way finish, then checkpoints it
 * (as the cadence's own saves, ranked only by an eval of that step) and stops; a failure is
 * written to log.txt with the step it happened in, and the report is still written.
 */
export async function runSteps(
  c: TrainerConfig,
  run: RunDir,
  start: number,
  hooks: LoopHooks,
  o: {
    readonly stopAfterSteps?: number;
    readonly signal?: AbortSignal;
    readonly events?: {
      onMetrics?(
        split: 'train' | 'eval',
        step: number,
        values: Readonly<Record<string, number>>,
      ): void;
      onProgress?(state: ProgressState): void;
    };
  },
): Promise<LoopOutcome> {
  const schedule = scheduleOf(c);
  const progress = new ProgressTracker({ total: c.train.steps, initial: start });
  let lastEval: LoopOutcome['lastEval'];
  const evaluate = async (step: number) => {
    const values = await hooks.evaluate(step);
    if (values) {
      run.appendMetrics(step, values, { split: 'eval' });
      o.events?.onMetrics?.('eval', step, values);
      lastEval = { step, values };
    }
    return values;
  };
  const stopAt = Math.min(c.train.steps, start + (o.stopAfterSteps ?? Number.POSITIVE_INFINITY));
  let checkpoint: string | undefined;
  let step = start;
  /** What the loop is doing, for the log of a failure. */
  let during = 'the eval before training (step 0)';
  try {
    if (start === 0 && !o.signal?.aborted) await evaluate(0);
    while (step < stopAt && !o.signal?.aborted) {
      const lr = schedule(step);
      const t0 = performance.now();
      during = `step ${step + 1}`;
      const r = await hooks.step(step, lr);
      step++;
      const secs = (performance.now() - t0) / 1000;
      const values = {
        ...r.values,
        lr,
        ...(r.tokens === undefined ? {} : { tokens_per_s: r.tokens / secs }),
      };
      run.appendMetrics(step, values, { split: 'train' });
      o.events?.onMetrics?.('train', step, values);
      o.events?.onProgress?.(progress.update(step, { loss: r.loss, tokens: r.tokens, values }));
      const when = cadence(c, step, stopAt);
      during = `the eval at step ${step}`;
      const evaluated = when.evaluate ? await evaluate(step) : undefined;
      during = `the checkpoint of step ${step}`;
      if (when.save || o.signal?.aborted) checkpoint = await hooks.save(step, evaluated);
    }
  } catch (e) {
    await recordFailure(run, e, during);
    throw e;
  }
  const aborted = o.signal?.aborted === true && step < stopAt;
  checkpoint ??= (await run.latestCheckpoint())?.dir;
  await writeReport(run);
  run.log(
    aborted
      ? `interrupted: stopped after step ${step} of ${c.train.steps}; ${checkpoint ? `resume from ${checkpoint}` : 'no checkpoint to resume from'}`
      : `stopped at step ${step}`,
  );
  return { steps: step, lastEval, checkpoint, aborted };
}
