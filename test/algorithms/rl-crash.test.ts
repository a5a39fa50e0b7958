import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainRl } from '../../src/algorithms/rl.js';
import { loadConfig } from '../../src/config/load.js';
import type { RlConfig } from '../../src/config/schema.js';
import { parseMetrics } from '../../src/train/metrics.js';
import { CRASHING_POLICY } from './fixtures/crashing-policy.js';

/**
 * A learner that dies between steps is not restarted from its start weights (it would train on
 * from them, silently): the run stops with an error naming the actor and saying to resume, and
 * the resume continues it exactly. The tiny GRPO job of rl-resume.test.ts, a checkpoint a step.
 */
function config(output: string) {
  return loadConfig<RlConfig>('grpo', {
    object: {
      output,
      seed: 5,
      model: {
        init: { family: 'gpt2', hidden: 16, layers: 1, heads: 2, maxPositions: 48 },
        tokenizer: { train: { vocabSize: 280 } },
      },
      data: { train: 'data/sentiment/prompts.jsonl', evalFraction: 0.02, maxLength: 24 },
      optim: { lr: 3e-3, schedule: 'cosine', warmupSteps: 1 },
      train: { steps: 3, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 1 },
      rollout: { maxNewTokens: 4, samplesPerPrompt: 2 },
      reward: { sources: [{ type: 'sentiment' }, { type: 'length', weight: 0.1, target: 4 }] },
      runtime: { backend: 'wasm' },
    },
  });
}

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-rl-crash-'));

/** Each step's logged values, minus what measures the machine rather than the run. */
function metrics(dir: string) {
  return parseMetrics(readFileSync(join(dir, 'metrics.jsonl'), 'utf8')).map((r) => ({
    step: r.step,
    split: r.split,
    values: Object.fromEntries(
      Object.entries(r.values).filter(([k]) => !k.startsWith('timing/') && !k.endsWith('_per_s')),
    ),
  }));
}

describe('a learner that crashes while idle', () => {
  it('stops the run (no restart from the start weights) with an error that says to --resume, and the resume equals the uninterrupted run', async () => {
    const marker = join(tmp(), 'crashed');
    const straight = tmp();
    const crashed = tmp();
    process.env.TROUPE_TEST_POLICY_CRASH_MARKER = marker;
    try {
      const e = await trainRl(await config(crashed), { roles: { policy: CRASHING_POLICY } }).catch(
        (x: unknown) => x,
      );
      expect(existsSync(marker)).toBe(true); // it died after step 1's checkpoint
      expect(e).toMatchObject({ code: 'ACTOR_CRASHED', details: { restarted: false } });
      expect((e as Error).message).toMatch(
        /^Actor thread 'policy' died \(exit code 1\)\. It is not restarted: 'policy' holds what it has trained .*--resume/,
      );
      const log = readFileSync(join(crashed, 'log.txt'), 'utf8');
      expect(log).not.toMatch(/actor 'policy' restarted/);
    } finally {
      delete process.env.TROUPE_TEST_POLICY_CRASH_MARKER;
    }
    // Only step 1 trained; the resume continues from its checkpoint.
    const train = (dir: string) => metrics(dir).filter((r) => r.split === 'train');
    expect(train(crashed).map((r) => r.step)).toEqual([1]);
    const resumed = await trainRl(await config(crashed), { resume: true });
    expect(resumed.steps).toBe(3);
    await trainRl(await config(straight));
    expect(train(crashed).map((r) => r.step)).toEqual([1, 2, 3]);
    expect(metrics(crashed)).toEqual(metrics(straight));
    const weights = (dir: string) =>
      readFileSync(join(dir, 'checkpoints', 'step-000003', 'model.safetensors'));
    expect(weights(crashed).equals(weights(straight))).toBe(true);
  }, 240_000);
});
