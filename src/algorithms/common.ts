import { mkdir } from 'node:fs/promises';
import type { LogRecord } from '../actors/protocol.js';
import type { ActorWhere } from '../actors/troupe.js';
import type { LoaderPosition } from '../data/batching/index.js';
import type { DatasetFormat, Example } from '../data/datasets/index.js';
import { loadTrainEval, trainEvalFiles } from '../data/split.js';
import { type BpeTokenizer, saveTokenizer } from '../data/tokenizer/index.js';
import type { Precision } from '../kernels/precision.js';
import type { DropoutRates, ModelConfig } from '../policy/config.js';
import type { ScheduleName } from '../policy/optim/schedule.js';
import { paramSpecs } from '../policy/params.js';
import { describeModelSource, type ModelSource, resolveModelSource } from '../policy/source.js';
import type { TrainableArgs } from '../policy/trainable.js';
import { RunDir } from '../train/run-dir.js';
import {
  type JsonValue,
  readTrainerState,
  type TrainerState,
  writeTrainerState,
} from '../train/trainer-state.js';
import { guardRun } from './run-guard.js';
import type { LoopOutcome } from './step-loop.js';

export { describeFailure, guardRun, recordFailure, runSupervisor } from './run-guard.js';
export {
  cadence,
  evalRows,
  type LoopHooks,
  type LoopOutcome,
  runSteps,
  type StepReport,
  scheduleOf,
  trainLoader,
} from './step-loop.js';

/** What every trainer's config shares (the fields these helpers read). */
export interface TrainerConfig {
  readonly algorithm: string;
  readonly seed: number;
  readonly model: {
    readonly gradientCheckpointing: boolean;
    readonly dropout?: boolean | Partial<DropoutRates>;
    readonly lora?: TrainableArgs['lora'] extends infer L ? Omit<NonNullable<L>, 'seed'> : never;
    readonly quantize?: TrainableArgs['quantize'];
  };
  readonly optim: {
    readonly lr: number;
    readonly betas: readonly [number, number];
    readonly eps: number;
    readonly weightDecay: number;
    readonly maxGradNorm: number;
    readonly schedule: ScheduleName;
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

/** A trainer's run directory, the trainer state it resumes (if any) and its examples. */
export interface OpenedRun {
  readonly run: RunDir;
  readonly state: TrainerState | undefined;
  readonly data: { readonly train: Example[]; readonly eval: Example[] };
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
): Promise<OpenedRun> {
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
    loadTrainEval(trainEvalFiles(config.data, config.seed, format)),
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
    quantize: c.model.quantize,
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
  /** Its thread's matrix-product precision, where not fp32 (`runtime.precision`). */
  readonly precision?: Precision;
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
    ...(w.runtime?.precision === undefined || w.runtime.precision === 'fp32'
      ? {}
      : { precision: w.runtime.precision }),
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
