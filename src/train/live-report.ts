import { type LiveOptions, writeLiveReportSync } from './report.js';

/**
 * When a run's report.html is rewritten while it goes: after every eval, and after a train step
 * when `minIntervalMs` has passed since the last rewrite; never more often than keeps the
 * rewriting under a tenth of the run's time (10× the last rewrite's cost), however large the
 * metrics file grows.
 */
export interface LiveReportOptions extends LiveOptions {
  /** Between two rewrites after train steps at least this long. Default 30 s. */
  readonly minIntervalMs: number;
}

export const DEFAULT_LIVE_REPORT: LiveReportOptions = {
  reloadSeconds: 15,
  staleAfterSeconds: 600,
  minIntervalMs: 30_000,
};

export class LiveReport {
  private lastWrite = Number.NEGATIVE_INFINITY;
  private lastCostMs = 0;
  private failed = false;

  constructor(
    private readonly dir: string,
    private readonly options: LiveReportOptions,
    /** Milliseconds since the epoch (the run directory's clock). */
    private readonly now: () => number,
    /** Told once if a rewrite fails (the run goes on; the final report is written as usual). */
    private readonly onError: (e: Error) => void,
  ) {}

  /** A metrics line of `split` was appended: rewrite the report if it is time. */
  after(split: 'train' | 'eval'): void {
    const t = this.now();
    const floor = 10 * this.lastCostMs;
    const wait = split === 'eval' ? floor : Math.max(this.options.minIntervalMs, floor);
    if (t - this.lastWrite < wait) return;
    const t0 = performance.now();
    try {
      writeLiveReportSync(this.dir, this.options, t);
    } catch (e) {
      if (!this.failed) this.onError(e as Error);
      this.failed = true;
    }
    this.lastCostMs = performance.now() - t0;
    this.lastWrite = t;
  }
}
