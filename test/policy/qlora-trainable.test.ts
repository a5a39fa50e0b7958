import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rightPad } from '../../src/data/batching/collate.js';
import { lmLoss } from '../../src/policy/lm-loss.js';
import { quantizedBase } from '../../src/policy/quantize/base.js';
import { resolveModelSource } from '../../src/policy/source.js';
import { Trainable, type TrainableArgs } from '../../src/policy/trainable.js';
import { useBackend } from '../helpers/backends.js';
import { expected, FIXTURES } from './hf-fixtures.js';

/**
 * QLoRA as the trainers run it (Trainable with `quantize: 'nf4'`): the loss of a fitted batch
 * falls, only adapters train, the base stays NF4; the checkpoint holds the adapters (PEFT) and
 * names the base; a resume quantises the base again and continues exactly as the run would have.
 */
async function fitRows(t: Trainable, rows: number[][], from: number, to: number) {
  const batch = rightPad(rows, 0);
  const losses: number[] = [];
  for (let s = from; s <= to; s++) {
    const r = await t.step([() => ({ loss: lmLoss(t.model, batch).loss, weight: 1 })], 1e-2, s);
    losses.push(r.loss);
  }
  return losses;
}

describe('QLoRA through Trainable', () => {
  let dir: string;
  beforeAll(async () => {
    await useBackend('wasm');
    dir = mkdtempSync(join(tmpdir(), 'troupe-qlora-train-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const lora = { rank: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj'], seed: 1 };

  it('trains the adapters on an NF4 base; resumes from its adapter-only checkpoint exactly', async () => {
    const source = await resolveModelSource(join(FIXTURES, 'llama'));
    const rows = expected('llama').rows.slice(0, 2);
    const args: TrainableArgs = {
      model: { source },
      optimizer: { lr: 1e-2 },
      lora,
      quantize: 'nf4',
    };
    const t = await Trainable.create(args, 'policy');
    expect(quantizedBase(t.model)?.matrices.size).toBe(2 * 7); // 2 layers × q, k, v, o, gate, up, down
    expect(t.trainableNames.every((n) => n.includes('.lora_'))).toBe(true);
    const first = await fitRows(t, rows, 1, 3);
    const ck = join(dir, 'step-3');
    await t.saveCheckpoint(ck);
    // the adapters and the optimizer, no base: it is named, and quantised again at load
    expect(existsSync(join(ck, 'adapter_model.safetensors'))).toBe(true);
    expect(existsSync(join(ck, 'model.safetensors'))).toBe(false);
    const cfg = JSON.parse(readFileSync(join(ck, 'adapter_config.json'), 'utf8'));
    expect(cfg.base_model_name_or_path).toBe(source.base);
    const rest = await fitRows(t, rows, 4, 6);
    expect(rest.at(-1)!).toBeLessThan(0.9 * first[0]);

    const r = await Trainable.create({ ...args, resumeFrom: ck }, 'policy');
    const resumed = await fitRows(r, rows, 4, 6);
    expect(resumed).toEqual(rest);
    // what the checkpoint leads to elsewhere (troupe generate, a later stage): the fp32 base
    // with the adapter merged in
    const led = await resolveModelSource(ck);
    expect(led.base).toBe(source.base);
    expect(led.adapters).toEqual([ck]);
    for (const x of [t, r]) {
      x.model.dispose();
      x.optimizer.dispose();
    }
  });

  it('refuses quantize without LoRA, with a head, and on a LoRA checkpoint, saying why', async () => {
    const source = await resolveModelSource(join(FIXTURES, 'llama'));
    await expect(
      Trainable.create({ model: { source }, quantize: 'nf4' }, 'policy'),
    ).rejects.toThrow(/model.quantize: 'nf4' needs LoRA: a base stored in 4 bits is frozen/);
    await expect(
      Trainable.create({ model: { source }, quantize: 'nf4', lora, heads: ['score'] }, 'policy'),
    ).rejects.toThrow(/a model with a score head cannot be quantised yet/);
    const ck = join(dir, 'step-3');
    await expect(
      Trainable.create(
        { model: { source: await resolveModelSource(ck) }, quantize: 'nf4', lora },
        'policy',
      ),
    ).rejects.toThrow(/is a LoRA checkpoint; QLoRA quantises a plain model/);
  });
});
