import { describe, expect, it } from 'vitest';
import { ProgressReporter } from '../../src/cli/progress-reporter.js';
import { formatCompact, formatDuration, formatValue } from '../../src/train/format.js';
import { formatProgress, type ProgressState, ProgressTracker } from '../../src/train/index.js';
import { fakeClock } from './helpers.js';

describe('ProgressTracker', () => {
  it('rates and ETA from an injected clock, smoothed by EMAs of steps and seconds', () => {
    const clock = fakeClock(5000);
    const p = new ProgressTracker({ total: 1000, unit: 'step', smoothing: 0.3, now: clock.now });
    expect(p.state).toMatchObject({ step: 0, fraction: 0, elapsedS: 0, done: false });
    expect(p.state.etaS).toBeUndefined();

    clock.set(6000);
    const s1 = p.update(10, { loss: 2.5, tokens: 5000 });
    expect(s1.stepsPerSec).toBeCloseTo(10, 12); // 10 steps in 1 s
    expect(s1.tokensPerSec).toBeCloseTo(5000, 12);
    expect(s1.etaS).toBeCloseTo(99, 12); // 990 steps at 10/s
    expect(s1.elapsedS).toBe(1);

    clock.set(8000);
    const s2 = p.update(20, { tokens: 5000 });
    // steps: 0.3·10 + 0.7·3 = 5.1; seconds: 0.3·2 + 0.7·0.3 = 0.81
    expect(s2.stepsPerSec).toBeCloseTo(5.1 / 0.81, 12);
    expect(s2.tokensPerSec).toBeCloseTo(2550 / 0.81, 9);
    expect(s2.etaS).toBeCloseTo(980 / (5.1 / 0.81), 9);
    expect(s2.loss).toBe(2.5); // the last loss reported stays
    expect(s2.fraction).toBe(0.02);
  });

  it('updates within one clock tick are folded into the next interval', () => {
    const clock = fakeClock();
    const p = new ProgressTracker({ total: 10, smoothing: 1, now: clock.now });
    clock.set(1000);
    p.update(1, { tokens: 10 });
    p.update(2, { tokens: 10 });
    clock.set(2000);
    const s = p.update(4, { tokens: 20 });
    expect(s.stepsPerSec).toBe(3); // steps 1 → 4 over the last second
    expect(s.tokensPerSec).toBe(30);
  });

  it('a resumed run counts from its initial step; done means eta 0', () => {
    const clock = fakeClock();
    const p = new ProgressTracker({ total: 100, initial: 90, now: clock.now });
    clock.set(2000);
    const s = p.update(95);
    expect(s.stepsPerSec).toBe(2.5);
    expect(s.tokensPerSec).toBeUndefined();
    expect(p.update(100)).toMatchObject({ done: true, etaS: 0, fraction: 1 });
  });

  it('refuses bad options, naming them', () => {
    expect(() => new ProgressTracker({ total: 0 })).toThrow("'total' must be a positive integer");
    expect(() => new ProgressTracker({ total: 5, smoothing: 0 })).toThrow(
      "'smoothing' must be in (0, 1]",
    );
  });
});

const state = (over: Partial<ProgressState>): ProgressState => ({
  unit: 'step',
  step: 120,
  total: 1000,
  fraction: 0.12,
  elapsedS: 30,
  done: false,
  ...over,
});

describe('formatProgress', () => {
  it('a full line at the width asked', () => {
    const s = state({ loss: 2.3141, tokensPerSec: 1234, etaS: 192 });
    const line = formatProgress(s, { width: 60 });
    // 49 columns of text, 3 for the bar's ends and a space: 8 cells, 12% of them rounds down to 0.
    expect(line).toBe('step 120/1000 ▕░░░░░░░░▏ 12% loss 2.314 tok/s 1.2k eta 3m12s');
    expect(line.length).toBe(60);
    expect(formatProgress(s, { width: 200 })).toBe(
      `step 120/1000 ▕${'█'.repeat(3)}${'░'.repeat(27)}▏ 12% loss 2.314 tok/s 1.2k eta 3m12s`,
    );
  });

  it('drops the bar when narrow and never passes the width', () => {
    const s = state({ loss: 2.3141, tokensPerSec: 1234, etaS: 192 });
    expect(formatProgress(s, { width: 50 })).toBe(
      'step 120/1000 12% loss 2.314 tok/s 1.2k eta 3m12s',
    );
    expect(formatProgress(s, { width: 20 })).toBe('step 120/1000 12% lo');
  });

  it('steps per second without tokens, nothing unknown shown, and "took" when done', () => {
    expect(formatProgress(state({}), { width: 30 })).toBe('step 120/1000 ▕█░░░░░░░░░▏ 12%');
    expect(formatProgress(state({ stepsPerSec: 3.254, etaS: 4000 }), { width: 40 })).toBe(
      'step 120/1000 12% step/s 3.25 eta 1h06m',
    );
    const done = state({
      step: 1000,
      fraction: 1,
      done: true,
      etaS: 0,
      elapsedS: 303,
      loss: Number.NaN,
    });
    expect(formatProgress(done, { width: 50 })).toBe(
      'step 1000/1000 ▕████████▏ 100% loss NaN took 5m03s',
    );
  });
});

describe('the metrics beside the loss', () => {
  it("an RL step's sampled reward and KL, a preference step's accuracy, kept until replaced", () => {
    const clock = fakeClock();
    const p = new ProgressTracker({ total: 20, now: clock.now });
    clock.set(1000);
    const s1 = p.update(1, {
      loss: -0.0084,
      values: { 'reward/mean': 0.2734375, 'reward/std': 0.44, kl: 0.00123, lr: 3e-4 },
    });
    expect(s1.metrics).toEqual([
      ['reward', 0.2734375],
      ['kl', 0.00123],
    ]);
    expect(formatProgress(s1, { width: 100 })).toMatch(
      /^step 1\/20 ▕█░+▏ 5% loss -0\.0084 reward 0\.2734 kl 0\.00123 step\/s 1\.00 eta 19s$/,
    );
    clock.set(2000);
    expect(p.update(2, { loss: 1 }).metrics).toEqual(s1.metrics);
    const dpo = new ProgressTracker({ total: 5 }).update(1, {
      values: { loss: 0.69, 'rewards/accuracies': 0.5 },
    });
    expect(dpo.metrics).toEqual([['acc', 0.5]]);
    expect(new ProgressTracker({ total: 5 }).update(1, { values: { lr: 1 } }).metrics).toBe(
      undefined,
    );
  });
});

describe('formatting helpers', () => {
  it.each([
    [0.52345, '0.52'],
    [3.254, '3.25'],
    [51.23, '51.2'],
    [512.4, '512'],
    [1234, '1.2k'],
    [12_345, '12.3k'],
    [123_456, '123k'],
    [999_999, '1.0M'],
    [4_500_000, '4.5M'],
  ])('formatCompact(%d) = %s', (x, s) => expect(formatCompact(x)).toBe(s));

  it.each([
    [2.31412, '2.314'],
    [12.3456, '12.35'],
    [0.0000123, '1.23e-5'],
    [123456, '1.23e+5'],
    [0, '0'],
    [Number.NEGATIVE_INFINITY, '-inf'],
  ])('formatValue(%d) = %s', (x, s) => expect(formatValue(x)).toBe(s));

  it.each([
    [42.9, '42s'],
    [192, '3m12s'],
    [7500, '2h05m'],
    [97_200, '1d03h'],
  ])('formatDuration(%d) = %s', (x, s) => expect(formatDuration(x)).toBe(s));
});

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns: 61, write: (c: string) => chunks.push(c) } };
}

describe('ProgressReporter (cli)', () => {
  it('on a TTY rewrites one line, at most every minIntervalMs, and ends it', () => {
    const out = sink(true);
    const clock = fakeClock();
    const r = new ProgressReporter({ stream: out.stream, now: clock.now, minIntervalMs: 100 });
    r.update(state({ step: 1, fraction: 0.001 }));
    clock.set(50);
    r.update(state({ step: 2, fraction: 0.002 })); // held back
    clock.set(150);
    r.update(state({ step: 3, fraction: 0.003 }));
    clock.set(160);
    r.update(state({ step: 4, fraction: 0.004 })); // held back, drawn by finish
    r.finish();
    expect(out.chunks.map((c) => /^\r(step \d+)/.exec(c)?.[1] ?? JSON.stringify(c))).toEqual([
      'step 1',
      'step 3',
      'step 4',
      '"\\n"',
    ]);
    expect(out.chunks[0]!.endsWith('\x1b[K')).toBe(true);
    expect(out.chunks[0]!.length).toBeLessThanOrEqual(1 + 60 + 3);
  });

  it('off a TTY prints a plain line each time a multiple of `every` is passed, and the last', () => {
    const out = sink(false);
    const r = new ProgressReporter({ stream: out.stream, every: 10 });
    for (const step of [1, 5, 9, 12, 19, 20, 33, 35]) {
      r.update(state({ step, total: 35, fraction: step / 35, done: step === 35 }));
    }
    r.finish();
    expect(out.chunks.map((c) => /^step (\d+)/.exec(c)![1])).toEqual(['1', '12', '20', '33', '35']);
    expect(out.chunks.every((c) => c.endsWith('\n') && !c.includes('\r'))).toBe(true);
  });

  /** The steps of the plain lines printed for the runs of `runs` ([total, steps]) in turn. */
  function plainLines(runs: ReadonlyArray<readonly [number, number[]]>, finishEach: boolean) {
    const out = sink(false);
    const r = new ProgressReporter({ stream: out.stream });
    for (const [total, steps] of runs) {
      for (const step of steps) {
        r.update(state({ step, total, fraction: step / total, done: step === total }));
      }
      if (finishEach) r.finish();
    }
    return out.chunks.map((c) => /^step (\d+\/\d+)/.exec(c)![1]);
  }

  const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

  it("off a TTY, one reporter over several runs (the demo's stages): each run gets its own cadence", () => {
    // 300 steps, then 60, then 20: every 5% of each, and each one's last step.
    const stages = [
      [300, range(1, 300)],
      [60, range(1, 60)],
      [20, range(1, 20)],
    ] as const;
    for (const finishEach of [true, false]) {
      const lines = plainLines(stages, finishEach);
      const of = (total: number) => lines.filter((l) => l.endsWith(`/${total}`));
      expect(of(300)).toHaveLength(21); // step 1, then 15, 30, …, 300
      expect(of(60)).toEqual(['1/60', ...range(1, 20).map((k) => `${3 * k}/60`)]);
      expect(of(20)).toEqual(range(1, 20).map((k) => `${k}/20`));
    }
  });

  it('off a TTY, a run of the same length after another (a step going back) is a new run', () => {
    expect(
      plainLines(
        [
          [10, range(1, 10)],
          [10, range(1, 10)],
        ],
        false,
      ),
    ).toEqual([...range(1, 10), ...range(1, 10)].map((k) => `${k}/10`));
  });

  it('on a TTY, a new run ends the line of the last, drawing its held-back state first', () => {
    const out = sink(true);
    const clock = fakeClock();
    const r = new ProgressReporter({ stream: out.stream, now: clock.now, minIntervalMs: 100 });
    r.update(state({ step: 1, total: 5, fraction: 0.2 }));
    clock.set(10);
    r.update(state({ step: 2, total: 5, fraction: 0.4 })); // held back
    clock.set(20);
    r.update(state({ step: 1, total: 8, fraction: 0.125 })); // a new run: drawn at once
    expect(out.chunks.map((c) => /^\r(step \S+)/.exec(c)?.[1] ?? JSON.stringify(c))).toEqual([
      'step 1/5',
      'step 2/5',
      '"\\n"',
      'step 1/8',
    ]);
  });
});
