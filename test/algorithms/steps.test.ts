import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type LoopHooks, recordFailure, runSteps } from '../../src/algorithms/common.js';
import { TroupeError } from '../../src/errors.js';
import { RunDir } from '../../src/train/run-dir.js';

/** What runSteps reads of a config. */
function config(train: { steps: number; evalEvery: number; saveEvery: number }) {
  return {
    algorithm: 'pretrain',
    seed: 0,
    model: { gradientCheckpointing: false },
    optim: {
      lr: 1e-3,
      betas: [0.9, 0.95] as const,
      eps: 1e-8,
      weightDecay: 0,
      maxGradNorm: 1,
      schedule: 'constant' as const,
      warmupSteps: 0,
      minLr: 0,
    },
    train,
  };
}

const newRun = () =>
  RunDir.create(mkdtempSync(join(tmpdir(), 'troupe-steps-')), { config: { test: true } });

/** Hooks that record what the loop asked: evals score 10 − step; `onStep` runs inside a step. */
function recorder(onStep: (step: number) => void = () => {}) {
  const saves: { step: number; evaluated?: number }[] = [];
  const evals: number[] = [];
  const hooks: LoopHooks = {
    step: async (step) => {
      onStep(step);
      return { loss: 1 / (step + 1), values: { loss: 1 / (step + 1) } };
    },
    evaluate: async (step) => {
      evals.push(step);
      return { loss: 10 - step };
    },
    save: async (step, evaluated) => {
      saves.push({ step, evaluated: evaluated?.['loss'] });
      return `ckpt-${step}`;
    },
  };
  return { hooks, saves, evals };
}

describe('runSteps', () => {
  it('evaluates and saves on the cadence, each save given the eval of its own step only', async () => {
    const run = await newRun();
    const { hooks, saves, evals } = recorder();
    const r = await runSteps(config({ steps: 7, evalEvery: 2, saveEvery: 4 }), run, 0, hooks, {});
    expect(evals).toEqual([0, 2, 4, 6, 7]);
    expect(saves).toEqual([
      { step: 4, evaluated: 6 },
      { step: 7, evaluated: 3 },
    ]);
    expect(r).toMatchObject({ steps: 7, aborted: false, checkpoint: 'ckpt-7' });
    expect(r.lastEval).toEqual({ step: 7, values: { loss: 3 } });
  });

  it('an abort finishes the step under way, saves it (unranked: no eval of that step) and says so', async () => {
    const run = await newRun();
    const ac = new AbortController();
    // Ctrl-C arrives while step 5 (0-based 4) is computing.
    const { hooks, saves, evals } = recorder((s) => s === 4 && ac.abort());
    const r = await runSteps(config({ steps: 20, evalEvery: 2, saveEvery: 4 }), run, 0, hooks, {
      signal: ac.signal,
    });
    expect(r.steps).toBe(5);
    expect(r.aborted).toBe(true);
    expect(saves).toEqual([
      { step: 4, evaluated: 6 },
      { step: 5, evaluated: undefined },
    ]);
    expect(r.checkpoint).toBe('ckpt-5');
    // The last eval is the one of step 4, labelled so; nothing evaluates the stopped step.
    expect(evals).toEqual([0, 2, 4]);
    expect(r.lastEval).toEqual({ step: 4, values: { loss: 6 } });
    expect(readFileSync(run.logPath, 'utf8')).toContain(
      'interrupted: stopped after step 5 of 20; resume from ckpt-5',
    );
    // the report's final write (a live one exists from the first eval on)
    expect(readFileSync(join(run.dir, 'report.html'), 'utf8')).toContain('data-live="0"');
  });

  it('an abort on a step that saves anyway saves once; one before the first step saves nothing', async () => {
    const run = await newRun();
    const ac = new AbortController();
    const { hooks, saves } = recorder((s) => s === 3 && ac.abort());
    const r = await runSteps(config({ steps: 20, evalEvery: 2, saveEvery: 4 }), run, 0, hooks, {
      signal: ac.signal,
    });
    expect(saves).toEqual([{ step: 4, evaluated: 6 }]);
    expect(r).toMatchObject({ steps: 4, aborted: true });

    const early = new AbortController();
    early.abort();
    const none = recorder();
    const r2 = await runSteps(
      config({ steps: 20, evalEvery: 2, saveEvery: 4 }),
      await newRun(),
      0,
      none.hooks,
      {
        signal: early.signal,
      },
    );
    expect(r2).toMatchObject({ steps: 0, aborted: true, checkpoint: undefined });
    expect(none.evals).toEqual([]);
    expect(none.saves).toEqual([]);
  });

  it('a failing step is written to log.txt with its code, actor, source and step; the report is still written', async () => {
    const run = await newRun();
    const boom = new TroupeError('BAD_REWARD', "reward 'flaky': row 2 is NaN", {
      details: { source: 'flaky' },
      cause: new RangeError('inner'),
    });
    const { hooks } = recorder((s) => {
      if (s === 2) throw Object.assign(boom, { actor: 'reward' });
    });
    await expect(
      runSteps(config({ steps: 9, evalEvery: 0, saveEvery: 0 }), run, 0, hooks, {}),
    ).rejects.toBe(boom);
    const log = readFileSync(run.logPath, 'utf8');
    expect(log).toContain(
      "run failed in step 3: [BAD_REWARD] reward 'flaky': row 2 is NaN (actor 'reward', reward source 'flaky')",
    );
    expect(log).toContain('caused by: inner');
    expect(readFileSync(join(run.dir, 'report.html'), 'utf8')).toContain('data-live="0"');
    // The trainer's own guard sees the same error again: it is not logged twice.
    await recordFailure(run, boom);
    expect(readFileSync(run.logPath, 'utf8').split('run failed').length).toBe(2);
  });
});
