import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainPreference } from '../../src/algorithms/preference.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig, RmConfig } from '../../src/config/schema.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-pref-'));

/** A tiny GPT-2 and a BPE trained on the shipped sentiment pairs (positive chosen, negative rejected). */
function config<T>(algorithm: 'dpo' | 'rm', extra: Record<string, unknown>): Promise<T> {
  return loadConfig<T>(algorithm, {
    object: {
      output: tmp(),
      model: {
        init: { family: 'gpt2', hidden: 48, layers: 2, heads: 2, maxPositions: 128 },
        tokenizer: { train: { vocabSize: 512 } },
      },
      data: { train: 'data/sentiment/preferences.jsonl', evalFraction: 0.1, maxLength: 96 },
      optim: { lr: algorithm === 'dpo' ? 3e-3 : 1e-3, schedule: 'constant', warmupSteps: 5 },
      train: { steps: 60, batchSize: 16, evalEvery: 0, evalBatches: 0, saveEvery: 0 },
      runtime: { backend: 'wasm' },
      ...extra,
    },
  });
}

describe('preference training on shipped pairs', () => {
  it('DPO raises held-out preference accuracy well above chance', async () => {
    const evals: Record<string, number>[] = [];
    const r = await trainPreference(await config<DpoConfig>('dpo', { dpo: { beta: 0.1 } }), {
      events: { onMetrics: (split, _s, v) => split === 'eval' && evals.push({ ...v }) },
    });
    expect(r.steps).toBe(60);
    // At step 0 the policy equals the reference: every implicit reward is 0, the loss log 2.
    expect(evals[0]['loss']).toBeCloseTo(Math.log(2), 5);
    expect(evals.at(-1)!['rewards/accuracies']).toBeGreaterThan(0.65);
    expect(evals.at(-1)!['loss']).toBeLessThan(0.6);
  }, 240_000);

  it('KTO (pairs unpaired) gives held-out desirable completions higher implicit rewards', async () => {
    const evals: Record<string, number>[] = [];
    await trainPreference(
      await config<DpoConfig>('dpo', {
        dpo: { loss: 'kto', beta: 0.1 },
        train: { steps: 40, batchSize: 16, evalEvery: 0, evalBatches: 0, saveEvery: 0 },
      }),
      {
        events: { onMetrics: (split, _s, v) => split === 'eval' && evals.push({ ...v }) },
      },
    );
    const last = evals.at(-1)!;
    expect(last['rewards/chosen'] - last['rewards/rejected']).toBeGreaterThan(0.1);
  }, 240_000);

  it('a Bradley–Terry reward model learns to rank held-out pairs', async () => {
    const evals: Record<string, number>[] = [];
    await trainPreference(await config<RmConfig>('rm', {}), {
      events: { onMetrics: (split, _s, v) => split === 'eval' && evals.push({ ...v }) },
    });
    expect(evals[0]['rm/accuracy']).toBeLessThan(0.6);
    expect(evals.at(-1)!['rm/accuracy']).toBeGreaterThan(0.65);
  }, 240_000);

  it('DPO on 2 data-parallel learners matches 1 learner (loss and metrics per step)', async () => {
    const run = async (replicas: number) => {
      const losses: number[][] = [];
      await trainPreference(
        await config<DpoConfig>('dpo', {
          optim: { lr: 1e-3, warmupSteps: 0 },
          train: { steps: 3, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
          runtime: { backend: 'wasm', replicas },
        }),
        {
          events: {
            onMetrics: (split, _s, v) =>
              split === 'train' && losses.push([v['loss'], v['rewards/margins']]),
          },
        },
      );
      return losses;
    };
    const [one, two] = [await run(1), await run(2)];
    for (const [i, [l, m]] of one.entries()) {
      expect(Math.abs(l - two[i][0])).toBeLessThan(1e-5);
      expect(Math.abs(m - two[i][1])).toBeLessThan(1e-5);
    }
  }, 240_000);

  it.each([
    ['simpo (reference-free)', { dpo: { loss: 'simpo', beta: 2 } }],
    ['ipo with a live reference actor', { dpo: { loss: 'ipo', beta: 0.5, reference: 'actor' } }],
    ['kto on the pairs unpaired', { dpo: { loss: 'kto', beta: 0.1 } }],
  ])(
    '%s trains and evaluates',
    async (_name, extra) => {
      const r = await trainPreference(
        await config<DpoConfig>('dpo', {
          ...extra,
          optim: { lr: 1e-3, warmupSteps: 0 },
          train: { steps: 2, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
        }),
      );
      expect(r.steps).toBe(2);
      expect(Number.isFinite(r.finalEval?.['loss'])).toBe(true);
    },
    240_000,
  );
});
