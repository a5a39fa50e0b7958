import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainPreference } from '../../src/algorithms/preference.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig, RmConfig } from '../../src/config/schema.js';
import { parseMetrics } from '../../src/train/metrics.js';

/**
 * A resumed DPO or reward-model run equals the run that was never interrupted: every logged
 * value (throughput aside) and the final weights, bit for bit. DPO's reference log-probs are
 * precomputed again on resume: from the start model, not from the resumed policy.
 */
// 64 of the shipped pairs: DPO precomputes the reference log-probs of every pair at each start.
const PAIRS = join(mkdtempSync(join(tmpdir(), 'troupe-pref-data-')), 'pairs.jsonl');
writeFileSync(
  PAIRS,
  readFileSync('data/sentiment/preferences.jsonl', 'utf8').split('\n').slice(0, 64).join('\n'),
);

function config(algorithm: 'dpo' | 'rm', output: string) {
  return loadConfig<DpoConfig | RmConfig>(algorithm, {
    object: {
      output,
      seed: 4,
      model: {
        init: { family: 'gpt2', hidden: 16, layers: 1, heads: 2, maxPositions: 96 },
        tokenizer: { train: { vocabSize: 300 } },
      },
      data: { train: PAIRS, evalFraction: 0.1, maxLength: 96 },
      optim: { lr: 3e-3, schedule: 'cosine', warmupSteps: 1 },
      train: { steps: 4, batchSize: 4, evalEvery: 2, evalBatches: 1, saveEvery: 2 },
      runtime: { backend: 'wasm' },
    },
  });
}

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-pref-resume-'));

function metrics(dir: string) {
  return parseMetrics(readFileSync(join(dir, 'metrics.jsonl'), 'utf8')).map((r) => ({
    step: r.step,
    split: r.split,
    values: Object.fromEntries(Object.entries(r.values).filter(([k]) => !k.endsWith('_per_s'))),
  }));
}

/** The weight files of the final checkpoint. */
function weights(dir: string): Record<string, Buffer> {
  const ck = join(dir, 'checkpoints', 'step-000004');
  return Object.fromEntries(
    readdirSync(ck)
      .filter((f) => f.endsWith('.safetensors'))
      .map((f) => [f, readFileSync(join(ck, f))]),
  );
}

describe('preference resume', () => {
  it.each(['dpo', 'rm'] as const)(
    '%s: stopped after 2 of 4 steps and resumed, it equals the uninterrupted run',
    async (algorithm) => {
      const straight = tmp();
      const interrupted = tmp();
      await trainPreference(await config(algorithm, straight));
      expect(
        (await trainPreference(await config(algorithm, interrupted), { stopAfterSteps: 2 })).steps,
      ).toBe(2);
      expect(
        (await trainPreference(await config(algorithm, interrupted), { resume: true })).steps,
      ).toBe(4);
      const a = metrics(straight);
      const b = metrics(interrupted);
      expect(b.filter((r) => r.split === 'train').map((r) => r.step)).toEqual([1, 2, 3, 4]);
      expect(b).toEqual(a);
      expect(new Set(a.map((r) => r.values['loss'])).size).toBeGreaterThan(3);
      const [wa, wb] = [weights(straight), weights(interrupted)];
      expect(Object.keys(wa).length).toBeGreaterThan(0);
      expect(Object.keys(wb)).toEqual(Object.keys(wa));
      for (const f of Object.keys(wa)) expect(wb[f].equals(wa[f]), f).toBe(true);
    },
    120_000,
  );
});
