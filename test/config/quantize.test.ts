import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';

/** `model.quantize` (QLoRA) in the run config: accepted with LoRA, refused with the reason otherwise. */
const EXAMPLES = new URL('../../examples/', import.meta.url);
const file = (name: string) => fileURLToPath(new URL(name, EXAMPLES));

describe('model.quantize', () => {
  it('sft with LoRA takes nf4; unset by default', async () => {
    const c = await loadConfig<{ model: { quantize?: string } }>('sft', {
      file: file('sft-sentiment-lora.yaml'),
      overrides: [['model.quantize', 'nf4']],
    });
    expect(c.model.quantize).toBe('nf4');
    const d = await loadConfig<{ model: { quantize?: string } }>('sft', {
      file: file('sft-sentiment-lora.yaml'),
    });
    expect(d.model.quantize).toBeUndefined();
  });

  it('refuses a base that would train (no lora), an unknown mode, and the algorithms it does not run with', async () => {
    const noLora = loadConfig('sft', {
      file: file('sft-arithmetic.yaml'),
      overrides: [['model.quantize', 'nf4']],
    });
    await expect(noLora).rejects.toThrow(/model\.quantize.*needs 'model\.lora'/s);
    await expect(
      loadConfig('sft', {
        file: file('sft-sentiment-lora.yaml'),
        overrides: [['model.quantize', 'int8']],
      }),
    ).rejects.toThrow(/model\.quantize/);
    for (const [algorithm, example, why] of [
      ['rm', 'rm-sentiment.yaml', /not supported for rm yet: the reward model trains a score head/],
      ['dpo', 'dpo-sentiment.yaml', /not supported for dpo yet: the reference model/],
      ['ppo', 'ppo-sentiment.yaml', /not supported for the online algorithms/],
    ] as const) {
      await expect(
        loadConfig(algorithm, {
          file: file(example),
          overrides: [
            ['model.quantize', 'nf4'],
            ['model.lora', '{ rank: 4, targetModules: [c_attn] }'],
          ],
        }),
      ).rejects.toThrow(why);
    }
  });
});
