import { describe, expect, it } from 'vitest';
import { makeSchedule, SCHEDULES } from '../../../src/policy/optim/index.js';
import { expectTroupeError } from './helpers.js';

/** Warmup 10 steps to lr 1, decay over steps 10 … 110: the midpoint is step 60. */
const O = { lr: 1, warmupSteps: 10, totalSteps: 110 };

describe('learning-rate schedules', () => {
  it('registers constant, linear and cosine', () => {
    expect([...SCHEDULES.keys()]).toEqual(['constant', 'linear', 'cosine']);
  });

  it('constant: linear warmup from 0 (HF: lr(0) = 0), then lr', () => {
    const s = makeSchedule('constant', { lr: 2, warmupSteps: 4 });
    expect([0, 1, 2, 3, 4, 5, 1000].map(s)).toEqual([0, 0.5, 1, 1.5, 2, 2, 2]);
    expect(makeSchedule('constant', { lr: 3 })(0)).toBe(3);
  });

  it('cosine: warmup, ½ at the midpoint, 0 at the end and after (HF num_cycles 0.5)', () => {
    const s = makeSchedule('cosine', O);
    expect(s(0)).toBe(0);
    expect(s(5)).toBe(0.5);
    expect(s(10)).toBe(1);
    expect(s(35)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)), 15); // a quarter through
    expect(s(60)).toBeCloseTo(0.5, 15);
    expect(s(110)).toBe(0);
    expect(s(500)).toBe(0);
  });

  it('cosine with minLr: minLr + (lr − minLr)·½(1 + cos πp)', () => {
    const s = makeSchedule('cosine', { ...O, minLr: 0.1 });
    expect(s(10)).toBe(1);
    expect(s(60)).toBeCloseTo(0.55, 15);
    expect(s(110)).toBeCloseTo(0.1, 15);
    expect(s(1000)).toBeCloseTo(0.1, 15);
  });

  it('linear: warmup, then straight down to 0 (or minLr) at totalSteps', () => {
    const s = makeSchedule('linear', O);
    expect([0, 5, 10, 60, 85, 110, 200].map(s)).toEqual([0, 0.5, 1, 0.5, 0.25, 0, 0]);
    const m = makeSchedule('linear', { ...O, minLr: 0.2 });
    expect(m(60)).toBeCloseTo(0.6, 15);
    expect(m(110)).toBeCloseTo(0.2, 15);
  });

  it('no warmup starts at lr; warmupSteps = totalSteps is allowed', () => {
    expect(makeSchedule('cosine', { lr: 1, totalSteps: 4 })(0)).toBe(1);
    const s = makeSchedule('linear', { lr: 1, warmupSteps: 4, totalSteps: 4 });
    expect([0, 2, 4, 5].map(s)).toEqual([0, 0.5, 0, 0]);
    const c = makeSchedule('cosine', { lr: 1, warmupSteps: 4, totalSteps: 4, minLr: 0.5 });
    expect([0, 2, 4, 5].map(c)).toEqual([0, 0.5, 0.5, 0.5]);
  });

  it('refuses bad options, naming the field and the fix', () => {
    const make = (name: string, o: unknown) => () => makeSchedule(name, o as never);
    expectTroupeError(
      make('cosne', O),
      'UNKNOWN_NAME',
      "'cosne'",
      'Known: constant, linear, cosine',
    );
    expectTroupeError(
      make('cosine', { lr: 1, warmupSteps: 200, totalSteps: 100 }),
      'BAD_ARGUMENT',
      "cosine schedule option 'warmupSteps'",
      'Lower warmupSteps or raise totalSteps',
    );
    expectTroupeError(
      make('constant', { lr: 1, warmupSteps: 20, totalSteps: 10 }),
      'BAD_ARGUMENT',
      "'warmupSteps'",
    );
    expectTroupeError(make('linear', { lr: 1 }), 'BAD_ARGUMENT', "'totalSteps'", 'is required');
    expectTroupeError(make('linear', { ...O, minLr: 2 }), 'BAD_ARGUMENT', "'minLr'", 'exceeds lr');
    expectTroupeError(make('linear', { ...O, warmupSteps: 2.5 }), 'BAD_ARGUMENT', 'whole number');
    expectTroupeError(make('cosine', { ...O, lr: -1 }), 'BAD_ARGUMENT', "'lr'");
    expectTroupeError(
      make('constant', { lr: 1, minLr: 0 }),
      'BAD_ARGUMENT',
      "unknown option 'minLr'",
      'Known: lr, warmupSteps, totalSteps',
    );
    expectTroupeError(() => makeSchedule('linear', O)(-1), 'BAD_ARGUMENT', 'step must be');
  });
});
