import { TroupeError } from '../errors.js';
import { formatCompact, formatDuration, formatValue } from './format.js';

/**
 * Training progress as data: the tracker turns `update(step, …)` calls into rates and an ETA,
 * and `formatProgress` turns that into one line. Neither prints; a reporter (src/cli) does.
 */

export interface ProgressOptions {
  /** Steps in the run. */
  readonly total: number;
  readonly unit?: 'step';
  /** The step the run starts at (a resumed run's checkpoint step); default 0. */
  readonly initial?: number;
  /**
   * EMA weight of the newest interval in the rates, in (0, 1]; 1 shows the last interval's rate
   * alone. Default 0.3.
   */
  readonly smoothing?: number;
  /** Clock in milliseconds (tests inject one); default `performance.now`. */
  readonly now?: () => number;
}

export interface ProgressUpdate {
  /** The loss of the latest step, shown as it is. */
  readonly loss?: number;
  /** Tokens processed by the steps since the previous update. */
  readonly tokens?: number;
  /** The step's metrics; those in `PROGRESS_METRICS` are shown beside the loss. */
  readonly values?: Readonly<Record<string, number>>;
}

/**
 * What the progress line shows beside the loss, [label, metrics key], when a step reports the
 * key: the sampled reward and KL of an RL iteration, the pair accuracy of DPO and reward models.
 */
export const PROGRESS_METRICS: ReadonlyArray<readonly [label: string, key: string]> = [
  ['reward', 'reward/mean'],
  ['kl', 'kl'],
  ['acc', 'rewards/accuracies'],
  ['acc', 'rm/accuracy'],
];

/** The `PROGRESS_METRICS` a step's values hold, in that order. */
function shownMetrics(
  values: Readonly<Record<string, number>>,
): ReadonlyArray<readonly [string, number]> {
  return PROGRESS_METRICS.filter(([, key]) => key in values).map(
    ([label, key]) => [label, values[key]!] as const,
  );
}

export interface ProgressState {
  readonly unit: 'step';
  readonly step: number;
  readonly total: number;
  /** step / total, clamped to [0, 1]. */
  readonly fraction: number;
  /** Seconds since the tracker was made. */
  readonly elapsedS: number;
  /** Smoothed steps per second; undefined until time has passed between two updates. */
  readonly stepsPerSec?: number;
  /** Smoothed tokens per second; undefined until tokens have been reported. */
  readonly tokensPerSec?: number;
  /** Seconds left at the smoothed rate; 0 when done, undefined while the rate is unknown. */
  readonly etaS?: number;
  readonly loss?: number;
  /** Other metrics of the latest step worth a glance ([label, value]; see `PROGRESS_METRICS`). */
  readonly metrics?: ReadonlyArray<readonly [string, number]>;
  readonly done: boolean;
}

/**
 * Rates are smoothed like tqdm's: separate EMAs of the steps, tokens and seconds of each
 * interval, divided. Starting the EMAs at 0 biases numerator and denominator alike, so the
 * ratio is unbiased from the first interval, and a slow interval weighs by its length.
 */
export class ProgressTracker {
  private readonly total: number;
  private readonly alpha: number;
  private readonly now: () => number;
  private readonly start: number;
  private lastTime: number;
  private lastStep: number;
  private pendingTokens = 0;
  private sawTokens = false;
  private emaSteps = 0;
  private emaTokens = 0;
  private emaSeconds = 0;
  private current: ProgressState;

  constructor(options: ProgressOptions) {
    const { total, initial = 0, smoothing = 0.3 } = options;
    const bad = (field: string, what: string) =>
      new TroupeError('BAD_ARGUMENT', `ProgressTracker: '${field}' ${what}`, {
        details: { field },
      });
    if (!Number.isInteger(total) || total < 1)
      throw bad('total', `must be a positive integer, got ${total}.`);
    if (!Number.isInteger(initial) || initial < 0) {
      throw bad('initial', `must be a non-negative integer, got ${initial}.`);
    }
    if (!(smoothing > 0 && smoothing <= 1))
      throw bad('smoothing', `must be in (0, 1], got ${smoothing}.`);
    this.total = total;
    this.alpha = smoothing;
    this.now = options.now ?? (() => performance.now());
    this.start = this.now();
    this.lastTime = this.start;
    this.lastStep = initial;
    this.current = this.snapshot(initial, undefined, this.start);
  }

  /** The latest state (what the last `update` returned). */
  get state(): ProgressState {
    return this.current;
  }

  /** Record that the run reached `step`; returns the new state. */
  update(step: number, info: ProgressUpdate = {}): ProgressState {
    const t = this.now();
    if (info.tokens !== undefined) {
      this.pendingTokens += info.tokens;
      this.sawTokens = true;
    }
    const dt = (t - this.lastTime) / 1000;
    // Updates within one clock tick wait for the next: a zero interval has no rate.
    if (dt > 0) {
      const a = this.alpha;
      this.emaSteps = a * (step - this.lastStep) + (1 - a) * this.emaSteps;
      this.emaTokens = a * this.pendingTokens + (1 - a) * this.emaTokens;
      this.emaSeconds = a * dt + (1 - a) * this.emaSeconds;
      this.lastTime = t;
      this.lastStep = step;
      this.pendingTokens = 0;
    }
    const metrics = info.values ? shownMetrics(info.values) : this.current.metrics;
    this.current = this.snapshot(step, info.loss ?? this.current.loss, t, metrics);
    return this.current;
  }

  private snapshot(
    step: number,
    loss: number | undefined,
    t: number,
    metrics?: ReadonlyArray<readonly [string, number]>,
  ): ProgressState {
    const done = step >= this.total;
    const known = this.emaSeconds > 0;
    const stepsPerSec = known ? this.emaSteps / this.emaSeconds : undefined;
    const tokensPerSec = known && this.sawTokens ? this.emaTokens / this.emaSeconds : undefined;
    const etaS = done
      ? 0
      : stepsPerSec !== undefined && stepsPerSec > 0
        ? (this.total - step) / stepsPerSec
        : undefined;
    return {
      unit: 'step',
      step,
      total: this.total,
      fraction: Math.min(1, Math.max(0, step / this.total)),
      elapsedS: (t - this.start) / 1000,
      ...(stepsPerSec === undefined ? {} : { stepsPerSec }),
      ...(tokensPerSec === undefined ? {} : { tokensPerSec }),
      ...(etaS === undefined ? {} : { etaS }),
      ...(loss === undefined ? {} : { loss }),
      ...(metrics === undefined || metrics.length === 0 ? {} : { metrics }),
      done,
    };
  }
}

export interface FormatProgressOptions {
  /** The line's width in columns (the terminal's); the bar takes what the text leaves. Default 80. */
  readonly width?: number;
}

/** Cells of the bar at most, however wide the line. */
const MAX_BAR = 30;
/** Below this many cells the bar is left out. */
const MIN_BAR = 5;

/**
 * `step 120/1000 ▕███░░░░░░░░░░░░░░░░░▏ 12% loss 2.314 tok/s 1.2k eta 3m12s` (an RL step adds
 * `reward 0.41 kl 0.012` after the loss), at most `width` columns.
 */
export function formatProgress(state: ProgressState, options: FormatProgressOptions = {}): string {
  const width = options.width ?? 80;
  const head = `${state.unit} ${state.step}/${state.total}`;
  const tail: string[] = [`${Math.floor(state.fraction * 100)}%`];
  if (state.loss !== undefined) tail.push(`loss ${formatValue(state.loss)}`);
  for (const [label, value] of state.metrics ?? []) tail.push(`${label} ${formatValue(value)}`);
  if (state.tokensPerSec !== undefined) tail.push(`tok/s ${formatCompact(state.tokensPerSec)}`);
  else if (state.stepsPerSec !== undefined)
    tail.push(`${state.unit}/s ${formatCompact(state.stepsPerSec)}`);
  if (state.done) tail.push(`took ${formatDuration(state.elapsedS)}`);
  else if (state.etaS !== undefined) tail.push(`eta ${formatDuration(state.etaS)}`);
  const text = `${head} ${tail.join(' ')}`;
  // Two bar ends and a space.
  const cells = Math.min(MAX_BAR, width - text.length - 3);
  if (cells < MIN_BAR) return text.length > width ? text.slice(0, Math.max(0, width)) : text;
  const full = Math.floor(state.fraction * cells);
  const bar = `▕${'█'.repeat(full)}${'░'.repeat(cells - full)}▏`;
  return `${head} ${bar} ${tail.join(' ')}`;
}
