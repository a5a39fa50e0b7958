import { formatProgress, type ProgressState } from '../train/index.js';

/** Where progress goes: a `process.stderr`-like stream. */
export interface ProgressStream {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
  /** Terminal width (TTY streams have it). */
  readonly columns?: number;
}

export interface ProgressReporterOptions {
  readonly stream: ProgressStream;
  /** Off a TTY: print a line each time the step passes a multiple of this. Default: every 5% of the run. */
  readonly every?: number;
  /** On a TTY: redraw at most this often (the last step is always drawn). Default 100 ms. */
  readonly minIntervalMs?: number;
  /** Clock in milliseconds (tests inject one); default `performance.now`. */
  readonly now?: () => number;
}

/** Plain lines (logs, CI) are this wide. */
const PLAIN_WIDTH = 100;

/**
 * Renders `ProgressState`s: on a TTY one line rewritten in place (`\r`, then erase to the end
 * of the line), elsewhere a plain line every `every` steps and at the end.
 *
 * One reporter serves several runs in turn (the demo's stages): `finish()` ends a run, and a
 * state whose total differs or whose step goes back starts a new one, so the cadence of one run
 * never carries into the next.
 */
export class ProgressReporter {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly every: number | undefined;
  private readonly minIntervalMs: number;
  private readonly now: () => number;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private lastStep: number | undefined;
  private lastTotal: number | undefined;
  private pending: ProgressState | undefined;

  constructor(options: ProgressReporterOptions) {
    this.stream = options.stream;
    this.tty = options.stream.isTTY === true;
    this.every = options.every;
    this.minIntervalMs = options.minIntervalMs ?? 100;
    this.now = options.now ?? (() => performance.now());
  }

  update(state: ProgressState): void {
    const newRun =
      this.lastStep !== undefined && (state.total !== this.lastTotal || state.step < this.lastStep);
    // The previous run ended without finish(): finish it (its held-back line too), then start afresh.
    if (newRun) this.finish();
    if (this.tty) {
      const t = this.now();
      if (t - this.lastDraw < this.minIntervalMs && !state.done) {
        this.pending = state;
        return;
      }
      this.lastDraw = t;
      this.draw(state);
      return;
    }
    const every = this.every ?? Math.max(1, Math.ceil(state.total / 20));
    const crossed =
      this.lastStep === undefined ||
      Math.floor(state.step / every) > Math.floor(this.lastStep / every);
    if (crossed || (state.done && this.lastStep !== state.step)) this.draw(state);
  }

  /** Draw the last state if it was held back, end the line on a TTY, and forget the run. */
  finish(state?: ProgressState): void {
    const last = state ?? this.pending;
    if (last && last.step !== this.lastStep) this.draw(last);
    if (this.tty && this.lastStep !== undefined) this.stream.write('\n');
    this.reset();
  }

  private reset(): void {
    this.lastStep = undefined;
    this.lastTotal = undefined;
    this.pending = undefined;
    this.lastDraw = Number.NEGATIVE_INFINITY;
  }

  private draw(state: ProgressState): void {
    this.pending = undefined;
    this.lastStep = state.step;
    this.lastTotal = state.total;
    if (this.tty) {
      // One column short of the terminal: writing the last column wraps on some terminals.
      const width = Math.max(20, (this.stream.columns ?? 80) - 1);
      this.stream.write(`\r${formatProgress(state, { width })}\x1b[K`);
    } else {
      this.stream.write(`${formatProgress(state, { width: PLAIN_WIDTH })}\n`);
    }
  }
}
