import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { rightPad } from '../../src/data/batching/collate.js';
import * as tf from '../../src/kernels/tf.js';
import { lmLoss } from '../../src/policy/lm-loss.js';
import { resolveModelSource } from '../../src/policy/source.js';
import { Trainable } from '../../src/policy/trainable.js';
import { useBackend } from '../helpers/backends.js';
import { CASES, expected, FIXTURES } from './hf-fixtures.js';

/**
 * Each family's transformers checkpoint trains as the trainers train it (Trainable: AdamW on the
 * LM loss), fully and with LoRA: the loss on a batch it is fitted to falls, and LoRA leaves the
 * base weights as they were.
 */
const TARGETS: Record<string, string[]> = {
  gpt2: ['c_attn', 'c_proj'],
  phi3: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'],
};

async function fitRows(t: Trainable, rows: number[][], steps: number): Promise<number[]> {
  const batch = rightPad(rows, 0);
  const losses: number[] = [];
  for (let s = 1; s <= steps; s++) {
    const r = await t.step([() => ({ loss: lmLoss(t.model, batch).loss, weight: 1 })], 1e-2, s);
    losses.push(r.loss);
  }
  return losses;
}

describe('every family trains, fully and with LoRA', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it.each(CASES)('%s', async (name) => {
    const before = tf.memory().numTensors;
    const want = expected(name);
    const source = await resolveModelSource(join(FIXTURES, name));
    const rows = want.rows.slice(0, 2);
    const full = await Trainable.create({ model: { source }, optimizer: { lr: 1e-2 } }, 'policy');
    const fullLosses = await fitRows(full, rows, 6);
    expect(fullLosses.at(-1)!).toBeLessThan(0.8 * fullLosses[0]);
    full.model.dispose();
    full.optimizer.dispose();

    const targets = TARGETS[want.model_type] ?? ['q_proj', 'v_proj', 'gate_proj', 'down_proj'];
    const lora = await Trainable.create(
      {
        model: { source },
        optimizer: { lr: 1e-2 },
        lora: { rank: 4, alpha: 8, dropout: 0, targetModules: targets, seed: 1 },
      },
      'policy',
    );
    const base = await lora.model.stateDict();
    const loraLosses = await fitRows(lora, rows, 6);
    expect(loraLosses.at(-1)!).toBeLessThan(0.9 * loraLosses[0]);
    for (const [n, t] of await lora.model.stateDict()) {
      if (!n.includes('.lora_')) expect(t.data, n).toEqual(base.get(n)!.data);
    }
    expect(lora.trainableNames.every((n) => n.includes('.lora_'))).toBe(true);
    lora.model.dispose();
    lora.optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
