/*
 * Wall-clock seconds of named phases: the one helper every RL phase is timed with (the
 * iteration's phases in `trainRl`, the scorers' in the experience maker, where they overlap).
 */

/** Seconds spent in each of `phases`, accumulated over the calls timed with `time`. */
export class PhaseTimes<P extends string> {
  readonly seconds: Record<P, number>;

  constructor(phases: readonly P[]) {
    this.seconds = Object.fromEntries(phases.map((p) => [p, 0])) as Record<P, number>;
  }

  /** Run `f`, adding its wall-clock time (settled or failed) to `phase`. */
  async time<T>(phase: P, f: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      this.seconds[phase] += (performance.now() - t0) / 1000;
    }
  }

  /** Add seconds measured elsewhere (another PhaseTimes' record) to the phases they name. */
  add(seconds: Readonly<Partial<Record<P, number>>>): void {
    for (const [p, s] of Object.entries(seconds) as [P, number][]) this.seconds[p] += s;
  }
}
