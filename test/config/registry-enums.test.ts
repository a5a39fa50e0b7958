import { describe, expect, it } from 'vitest';
import { AGG_MODES } from '../../src/algorithms/losses/ppo.js';
import { loadConfig } from '../../src/config/load.js';
import { DATASET_FORMATS } from '../../src/data/datasets/formats.js';
import { KL_ESTIMATORS } from '../../src/kernels/numerics/kl.js';
import { SCHEDULES } from '../../src/policy/optim/schedule.js';
import { ADVANTAGE_ESTIMATORS } from '../../src/rollout/advantages.js';
import { rejected } from '../helpers/thrown.js';

const BASE = {
  output: 'o',
  model: { path: 'm' },
  data: { train: 't' },
  train: { steps: 2, batchSize: 4 },
  reward: { sources: [{ type: 'sentiment' }] },
};

/** The base config of `algorithm`: the RL ones add a reward. */
const baseOf = (algorithm: string) => {
  const { reward, ...lm } = BASE;
  return algorithm === 'sft' ? lm : { ...lm, reward };
};

/** Every config field whose names are a registry's keys, the registry, and an algorithm with it. */
const FIELDS: ReadonlyArray<readonly [string, readonly string[], string]> = [
  ['rl.estimator', [...ADVANTAGE_ESTIMATORS.keys()], 'ppo'],
  ['rl.aggMode', [...AGG_MODES.keys()], 'ppo'],
  ['rl.kl.estimator', [...KL_ESTIMATORS.keys()], 'ppo'],
  ['optim.schedule', [...SCHEDULES.keys()], 'ppo'],
  ['data.format', [...DATASET_FORMATS], 'sft'],
];

describe('config enums are the keys of their registries', () => {
  it.each(FIELDS)('%s takes every key of its registry', async (field, keys, algorithm) => {
    for (const key of keys) {
      // A group estimator compares the samples of a prompt: give it more than one.
      const group = field === 'rl.estimator' ? [['rollout.samplesPerPrompt', '4'] as const] : [];
      const c = await loadConfig<Record<string, unknown>>(algorithm, {
        object: baseOf(algorithm),
        overrides: [[field, key], ...group],
      });
      const value = field
        .split('.')
        .reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], c);
      expect(value).toBe(key);
    }
  });

  it.each(FIELDS)('%s refuses another name, listing the keys', async (field, keys, algorithm) => {
    const e = await rejected(
      loadConfig(algorithm, { object: baseOf(algorithm), overrides: [[field, 'no-such-name']] }),
    );
    expect(e.message).toContain(field);
    for (const key of keys) expect(e.message).toContain(key);
  });
});
