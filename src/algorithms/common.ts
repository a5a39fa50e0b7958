import { mkdir } from 'node:fs/promises';
import type { LogRecord } from '../actors/protocol.js';
import type { ActorWhere } from '../actors/troupe.js';
import type { LoaderPosition } from '../data/batching/index.js';
import type { DatasetFormat, Example } from '../data/datasets/index.js';
import { loadTrainEval } from '../data/split.js';
import { type BpeTokenizer, saveTokenizer } from '../data/tokenizer/index.js';
import type { DropoutRates, ModelConfig } from '../policy/config.js';
import { makeSchedule, type Schedule } from '../policy/optim/index.js';
import { paramSpecs } from '../policy/params.js';
import { describeModelSource, type ModelSource, resolveModelSource } from '../policy/source.js';
import type { TrainableArgs } from '../policy/trainable.js';
import { type ProgressState, ProgressTracker } from '../train/progress.js';
import { writeReport } from '../train/report.js';
import { RunDir } from '../train/run-dir.js';
import {
  type JsonValue,
  readTrainerState,
  type TrainerState,
  writeTrainerState,
} from '../train/trainer-state.js';
import { guardRun, recordFailure } from './run-guard.js';

export { describeFailure, guardRun, recordFailure, runSupervisor } from './run-guard.js';

/** What every trainer's config shares (the fields these helpers read). */
interface TrainerConfig {
  readonly algorithm: string;
  readonly seed: number;
  readonly model: {
    readonly gradientCheckpointing: boolean;
    readonly dropout?: boolean | Partial<DropoutRates>;
    readonly lora?: TrainableArgs['lora'] extends infer L ? Omit<NonNullable<L>, 'seed'> : never;
  };
  readonly optim: {
    readonly lr: number;
    readonly betas: readonly [number, number];
    readonly eps: number;
    readonly weightDecay: number;
    readonly maxGradNorm: number;
    readonly schedule: 'constant' | 'linear' | 'cosine';
    readonly warmupSteps: number;
    readonly minLr: number;
    readonly offload?: boolean;
  };
  readonly train: {
    readonly steps: number;
    readonly evalEvery: number;
    readonly saveEvery: number;
  };
}

/**
 * What every trainer starts with: its run directory (new, or resumed from the latest checkpoint,
 * with that checkpoint's trainer state) and its train / eval examples.
 */
export async function openRun(
  config: {
    readonly algorithm: string;
    readonly output: string;
    readonly seed: number;
    readonly train: { readonly keepLast: number };
    readonly data: {
      readonly train: string;
      readonly eval?: string;
      readonly evalFraction: number;
      readonly columns?: Readonly<Record<string, string>>;
    };
  },
  opts: { readonly resume?: boolean },
  format: DatasetFormat | undefined,
): Promise<{
  run: RunDir;
  state: TrainerState | undefined;
  data: { train: Example[]; eval: Example[] };
}> {
  const run = await RunDir.create(config.output, {
    config,
    resume: opts.resume ?? false,
    keepLast: config.train.keepLast,
  });
  const resumed = run.resumedFrom;
  const state = resumed ? await readTrainerState(resumed.dir) : undefined;
  run.log(
    resumed
      ? `resuming from ${resumed.dir} (step ${resumed.step})`
      : `new run: ${config.algorithm}`,
  );
  const data = await guardRun(run, () =>
    loadTrainEval({
      train: config.data.train,
      ...(config.data.eval
        ? { eval: config.data.eval }
        : { evalFraction: config.data.evalFraction }),
      seed: config.seed,
      columns: config.data.columns,
      format,
    }),
  );
  return { run, state, data };
}

/**
 * Resolve a model path of the config (`model.path`, `critic.path`: a model directory, a run
 * directory, a LoRA checkpoint; see `ModelSource`) and say what it led to, in the run's log and
 * to `onLog` (the CLI prints it). With `lora`, a start that holds an adapter says that the new
 * adapters train on top of the merged one.
 */
export async function openModelSource(
  run: RunDir,
  path: string,
  field: string,
  o: {
    readonly onLog?: (r: LogRecord) => void;
    readonly lora?: { readonly rank: number };
    readonly runSubdir?: string;
  } = {},
): Promise<ModelSource> {
  const source = await resolveModelSource(path, { field, runSubdir: o.runSubdir });
  const lines = [`${field} ${path}: ${describeModelSource(source)}`];
  if (o.lora && source.adapters.length > 0) {
    lines.push(
      `${field} holds a LoRA adapter: it is merged into the base weights first, then fresh ` +
        `LoRA adapters (rank ${o.lora.rank}) train on top of the merged model`,
    );
  }
  for (const message of lines) {
    run.log(message);
    o.onLog?.({
      actor: 'trainer',
      level: 'info',
      message,
      data: { field, source: { ...source } },
      time: Date.now(),
    });
  }
  return source;
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

/**
 * Algorithms that train with the model's dropout unless `model.dropout` says otherwise: as TRL's
 * SFT; its reward and DPO trainers disable dropout, and so do OpenRLHF and verl for RL.
 */
const DROPOUT_BY_DEFAULT: readonly string[] = ['pretrain', 'sft'];

/** Optimizer, clipping, checkpointing, LoRA and dropout arguments of a trainable actor. */
export function trainableOptions(
  c: TrainerConfig,
): Omit<TrainableArgs, 'model' | 'resumeFrom' | 'heads'> {
  return {
    optimizer: {
      lr: c.optim.lr,
      betas: [c.optim.betas[0], c.optim.betas[1]],
      eps: c.optim.eps,
      weightDecay: c.optim.weightDecay,
      offload: c.optim.offload ?? false,
    },
    maxGradNorm: c.optim.maxGradNorm,
    gradientCheckpointing: c.model.gradientCheckpointing,
    lora: c.model.lora ? { ...c.model.lora, seed: c.seed } : undefined,
    dropout: {
      rates: c.model.dropout ?? DROPOUT_BY_DEFAULT.includes(c.algorithm),
      seed: c.seed,
    },
  };
}

/** What a trainer returns. */
export interface TrainResult {
  readonly runDir: string;
  /** The step the run stopped at (steps taken, counting those before a resume). */
  readonly steps: number;
  /** The last evaluation of this invocation, and the step it was taken at (`finalEvalStep`). */
  readonly finalEval?: Readonly<Record<string, number>>;
  readonly finalEvalStep?: number;
  /** The latest checkpoint: what `--resume` continues from. */
  readonly checkpoint?: string;
  /**
   * True when `signal` stopped the run before its last step: the step under way was finished
   * and checkpointed (`checkpoint`), and `resume: true` continues from there.
   */
  readonly aborted: boolean;
  /** What `model.path` led to (a run's checkpoint, a LoRA checkpoint's base and adapters). */
  readonly modelSource?: ModelSource;
  /** Where each actor ran: its thread (colocated actors share one) and that thread's runtime. */
  readonly actors?: readonly ActorRun[];
}

/** Where one actor instance of a run ran, as its thread's runtime reported it. */
export interface ActorRun {
  readonly actor: string;
  readonly thread: string;
  readonly backend: string | undefined;
  readonly device: string | undefined;
  /** BLAS threads per call of its thread (with the native kernels). */
  readonly blasThreads: number | undefined;
  readonly threadId: number | undefined;
}

/** A trainer's result from its step loop's outcome. */
export function trainResult(
  run: RunDir,
  r: LoopOutcome,
  source: ModelSource | undefined,
  started?: readonly ActorWhere[],
): TrainResult {
  const actors = started?.map((w) => ({
    actor: w.actor,
    thread: w.thread,
    backend: w.runtime?.backend,
    device: w.runtime?.device,
    blasThreads: w.runtime?.blasThreads,
    threadId: w.threadId,
  }));
  return {
    runDir: run.dir,
    steps: r.steps,
    ...(r.lastEval ? { finalEval: r.lastEval.values, finalEvalStep: r.lastEval.step } : {}),
    checkpoint: r.checkpoint,
    aborted: r.aborted,
    ...(source ? { modelSource: source } : {}),
    ...(actors ? { actors } : {}),
  };
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

/**
 * One checkpoint: the actor's weights (or adapters) and optimizer, the tokenizer, the trainer
 * state (step, data position, last eval), committed to the run (latest, best by eval loss,
 * retention).
 */
export async function saveTrainerCheckpoint(
  run: RunDir,
  actor: { call: { saveCheckpoint(dir: string): Promise<void> } },
  step: number,
  loader: LoaderPosition,
  /** The eval of this very step, if it was evaluated: it ranks the checkpoint for `best`. */
  lastEval: Readonly<Record<string, number>> | undefined,
  tok: BpeTokenizer,
  o: {
    /** The eval value that ranks checkpoints for `best` (default: the lowest eval loss). */
    readonly best?: { readonly key: string; readonly mode: 'min' | 'max' };
    /** Save more beside the actor's files (a critic, …) and state to restore on resume. */
    readonly also?: (dir: string) => Promise<void>;
    readonly extra?: Readonly<Record<string, JsonValue>>;
  } = {},
): Promise<string> {
  const dir = run.checkpointDir(step);
  await mkdir(dir, { recursive: true });
  await actor.call.saveCheckpoint(dir);
  await o.also?.(dir);
  await saveTokenizer(dir, tok);
  await writeTrainerState(dir, {
    step,
    epoch: loader.epoch,
    loader,
    extra: { ...(lastEval ? { eval: { ...lastEval } } : {}), ...o.extra },
  });
  const best = o.best ?? { key: 'loss', mode: 'min' };
  const value = lastEval?.[best.key];
  const ref = await run.commitCheckpoint(
    step,
    value !== undefined ? { metric: { name: `eval/${best.key}`, value, mode: best.mode } } : {},
  );
  run.log(`checkpoint ${ref.dir}`);
  return ref.dir;
}

/**
 * Values a data-parallel group must be able to reduce for a model: every parameter (an upper
 * bound when only LoRA adapters train), a head, the loss, metrics and the weight.
 */
export function reduceCapacity(mconfig: ModelConfig): number {
  return (
    paramSpecs(mconfig).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0) +
    mconfig.hidden +
    64
  );
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
