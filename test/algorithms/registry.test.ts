import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PREFERENCE_LOSSES, preferenceLoss } from '../../src/algorithms/losses/index.js';
import { trainPreference } from '../../src/algorithms/preference.js';
import { placementOf } from '../../src/algorithms/topologies.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig } from '../../src/config/schema.js';
import * as tf from '../../src/kernels/tf.js';
import { useBackend } from '../helpers/backends.js';

/*
 * Adding a loss is one file plus one registry line (#16 item 4): a test-only loss file
 * (fixtures/hinge-loss.ts) registers `toy-hinge`; from then on the config accepts it, the
 * placement gives it the reference its entry asks for, and the real trainer trains with it in
 * its learner threads, which load the loss from the module its entry names.
 */

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-registry-'));

const dpoObject = (loss: string, extra: Record<string, unknown> = {}) => ({
  output: tmp(),
  model: {
    init: { family: 'gpt2', hidden: 32, layers: 1, heads: 2, maxPositions: 128 },
    tokenizer: { train: { vocabSize: 300 } },
  },
  data: { train: 'data/sentiment/preferences.jsonl', evalFraction: 0.1, maxLength: 96 },
  optim: { lr: 1e-2, schedule: 'constant' },
  train: { steps: 3, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
  runtime: { backend: 'wasm' },
  dpo: { loss, beta: 0.5 },
  ...extra,
});

describe('a preference loss registered at run time', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('is refused by the config until registered, then accepted and placed with its reference', async () => {
    await expect(loadConfig('dpo', { object: dpoObject('toy-hinge') })).rejects.toThrow(
      "dpo.loss: unknown preference loss 'toy-hinge'; known: sigmoid, ipo, simpo, orpo, kto",
    );
    await import('./fixtures/hinge-loss.js');
    expect([...PREFERENCE_LOSSES.keys()]).toEqual([
      'sigmoid',
      'ipo',
      'simpo',
      'orpo',
      'kto',
      'toy-hinge',
    ]);
    const c = await loadConfig<DpoConfig>('dpo', { object: dpoObject('toy-hinge') });
    expect(c.dpo.loss).toBe('toy-hinge');
    // needsReference in its entry: the run has a reference actor, as for sigmoid (not simpo).
    expect(placementOf(c).actors.map((a) => a.name)).toEqual(['dpo', 'reference']);
    // Hand-computed: pair 1 has h = (−1 − −1.5) − (−2 − −1.5) = 1, so 1 − β·h = 0.5 at β 0.5;
    // pair 2 has h = 0 − (−5 − −1) = 4, past the margin (1 − 2 < 0: 0).
    const out = tf.tidy(() => {
      const r = preferenceLoss(
        'toy-hinge',
        {
          policyChosenLogps: tf.tensor1d([-1, -1]),
          policyRejectedLogps: tf.tensor1d([-2, -5]),
          refChosenLogps: tf.tensor1d([-1.5, -1]),
          refRejectedLogps: tf.tensor1d([-1.5, -1]),
        },
        { beta: 0.5 },
      );
      return { loss: r.loss.dataSync()[0], active: r.metrics['toy/active'].dataSync()[0] };
    });
    expect(out.loss).toBeCloseTo((0.5 + 0) / 2, 6);
    expect(out.active).toBe(0.5);
  });

  it('trains through the real trainer, in learner threads that load it from its module', async () => {
    await import('./fixtures/hinge-loss.js');
    const c = await loadConfig<DpoConfig>('dpo', { object: dpoObject('toy-hinge') });
    const rows: { split: string; step: number; v: Record<string, number> }[] = [];
    const r = await trainPreference(c, {
      events: { onMetrics: (split, step, v) => rows.push({ split, step, v: { ...v } }) },
    });
    expect(r.steps).toBe(3);
    // At step 0 the policy is the reference: h = 0 for every pair, so the hinge is exactly 1
    // (DPO's sigmoid loss would be log 2) and every pair is inside the margin.
    const first = rows.find((x) => x.split === 'eval')!;
    expect(first.step).toBe(0);
    expect(first.v['loss']).toBeCloseTo(1, 5);
    expect(first.v['toy/active']).toBe(1);
    const train = rows.filter((x) => x.split === 'train');
    expect(train.map((x) => x.step)).toEqual([1, 2, 3]);
    expect(train[0].v['loss']).toBeCloseTo(1, 5);
    for (const x of train) expect(x.v['toy/active']).toBeGreaterThan(0);
    expect(readFileSync(join(r.runDir, 'config.yaml'), 'utf8')).toContain('loss: toy-hinge');
  }, 180_000);
});
