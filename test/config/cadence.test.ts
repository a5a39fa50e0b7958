import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { REWARD_TIMEOUT_MS, type RlConfig } from '../../src/config/schema.js';

const base = {
  output: 'runs/x',
  model: { path: 'some/model' },
  data: { train: 'train.jsonl' },
};

describe('checkpoint and eval cadence', () => {
  it('refuses saveEvery that is not a multiple of evalEvery, naming both and the nearest fixes', async () => {
    await expect(
      loadConfig('sft', {
        object: { ...base, train: { steps: 100, evalEvery: 20, saveEvery: 30 } },
      }),
    ).rejects.toMatchObject({
      code: 'BAD_ARGUMENT',
      message: expect.stringContaining(
        "train.saveEvery: saveEvery 30 is not a multiple of train.evalEvery 20, so some checkpoints would have no eval of their own to rank them for best.json (as TRL's load_best_model_at_end requires save_steps to be a multiple of eval_steps): set saveEvery to 20 or 40, or evalEvery to a divisor of 30",
      ),
    });
    await expect(
      loadConfig('pretrain', {
        object: { ...base, train: { steps: 100, evalEvery: 50, saveEvery: 20 } },
      }),
    ).rejects.toThrow('set saveEvery to 50, or evalEvery to a divisor of 20');
  });

  it('accepts multiples, evaluation only at the end, saving only at the end, and a save past the last step', async () => {
    for (const train of [
      { steps: 100, evalEvery: 10, saveEvery: 30 },
      { steps: 100, evalEvery: 0, saveEvery: 30 },
      { steps: 100, evalEvery: 30, saveEvery: 0 },
      { steps: 100, evalEvery: 30, saveEvery: 100 },
      { steps: 100 }, // the defaults: 50 and 100
    ]) {
      const c = await loadConfig<{ train: { saveEvery: number } }>('dpo', {
        object: { ...base, train },
      });
      expect(c.train.saveEvery).toBe('saveEvery' in train ? train.saveEvery : 100);
    }
  });
});

describe('reward.timeoutMs', () => {
  it('defaults to a finite 10 minutes; 0 still means no limit', async () => {
    const object = { ...base, train: { steps: 2 }, reward: { sources: [{ type: 'sentiment' }] } };
    const c = await loadConfig<RlConfig>('grpo', { object });
    expect(c.reward.timeoutMs).toBe(600_000);
    expect(REWARD_TIMEOUT_MS).toBe(600_000);
    const off = await loadConfig<RlConfig>('grpo', {
      object: { ...object, reward: { ...object.reward, timeoutMs: 0 } },
    });
    expect(off.reward.timeoutMs).toBe(0);
  });
});
