import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainLm } from '../../src/algorithms/lm.js';
import { loadConfig } from '../../src/config/load.js';
import type { PretrainConfig, SftConfig } from '../../src/config/schema.js';
import { tokenizeSft } from '../../src/data/batching/index.js';
import { loadTrainEval } from '../../src/data/split.js';
import { loadTokenizer } from '../../src/data/tokenizer/index.js';
import { loadModel } from '../../src/policy/io.js';
import { parseMetrics } from '../../src/train/metrics.js';
import { maskedNll } from './fixtures/completion-nll.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-lm-'));

function pretrainConfig(output: string, extra: Record<string, unknown> = {}) {
  return loadConfig<PretrainConfig>('pretrain', {
    object: {
      output,
      seed: 3,
      model: {
        init: { family: 'gpt2', hidden: 32, layers: 2, heads: 2, maxPositions: 64 },
        tokenizer: { train: { vocabSize: 300 } },
      },
      data: { train: 'data/moby-dick/eval.jsonl', evalFraction: 0.15, blockSize: 24 },
      optim: { lr: 3e-3, warmupSteps: 2 },
      train: { steps: 6, batchSize: 4, evalEvery: 3, evalBatches: 2, saveEvery: 3 },
      runtime: { backend: 'wasm' },
      ...extra,
    },
  });
}

const trainLosses = (dir: string) =>
  parseMetrics(readFileSync(join(dir, 'metrics.jsonl'), 'utf8'))
    .filter((r) => r.split === 'train')
    .map((r) => [r.step, r.values['loss']]);

describe('pretraining and SFT', () => {
  it('pretrains: loss falls, eval runs, checkpoints and a report are written', async () => {
    const out = tmp();
    const r = await trainLm(
      await pretrainConfig(out, {
        train: { steps: 12, batchSize: 4, evalEvery: 6, evalBatches: 2, saveEvery: 6 },
      }),
    );
    expect(r.steps).toBe(12);
    const losses = trainLosses(out).map(([, l]) => l as number);
    expect(losses).toHaveLength(12);
    expect(Math.min(...losses.slice(-3))).toBeLessThan(losses[0]);
    expect(r.finalEval?.['loss']).toBeLessThan(Math.log(300));
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('<svg');
    expect(readFileSync(join(r.checkpoint!, 'config.json'), 'utf8')).toContain(
      '"model_type": "gpt2"',
    );
  }, 180_000);

  it('resumes to exactly the run that was never interrupted', async () => {
    const straight = tmp();
    const interrupted = tmp();
    await trainLm(await pretrainConfig(straight));
    const first = await trainLm(await pretrainConfig(interrupted), { stopAfterSteps: 3 });
    expect(first.steps).toBe(3);
    await trainLm(await pretrainConfig(interrupted), { resume: true });
    expect(trainLosses(interrupted)).toEqual(trainLosses(straight));
    const weights = (d: string) =>
      readFileSync(join(d, 'checkpoints', 'step-000006', 'model.safetensors'));
    expect(weights(interrupted).equals(weights(straight))).toBe(true);
  }, 180_000);

  it('data parallel: 2 replicas train exactly like 1 worker with the same global batch', async () => {
    const one = tmp();
    const two = tmp();
    const llama = {
      init: { family: 'llama', hidden: 32, layers: 2, heads: 4, kvHeads: 2, maxPositions: 64 },
      tokenizer: { train: { vocabSize: 300 } },
    };
    const train = { steps: 3, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 3 };
    await trainLm(await pretrainConfig(one, { model: llama, train }));
    await trainLm(
      await pretrainConfig(two, { model: llama, train, runtime: { backend: 'wasm', replicas: 2 } }),
    );
    const a = trainLosses(one).map(([, l]) => l as number);
    const b = trainLosses(two).map(([, l]) => l as number);
    for (const [i, x] of a.entries()) expect(Math.abs(x - b[i])).toBeLessThan(1e-5);
    const { readSafetensors } = await import('../../src/policy/checkpoint/safetensors.js');
    const wa = (await readSafetensors(join(one, 'checkpoints', 'step-000003', 'model.safetensors')))
      .tensors;
    const wb = (await readSafetensors(join(two, 'checkpoints', 'step-000003', 'model.safetensors')))
      .tensors;
    let worst = 0;
    for (const [n, t] of wa) {
      for (const [i, v] of t.data.entries())
        worst = Math.max(worst, Math.abs(v - wb.get(n)!.data[i]));
    }
    expect(worst).toBeLessThan(1e-5);
  }, 180_000);

  it('fine-tunes on prompt/completion data with the loss on completions only (SFT + LoRA)', async () => {
    const out = tmp();
    const config = await loadConfig<SftConfig>('sft', {
      object: {
        output: out,
        model: {
          init: { family: 'llama', hidden: 32, layers: 2, heads: 4, kvHeads: 2, maxPositions: 96 },
          tokenizer: { train: { vocabSize: 320 } },
          lora: { rank: 4, alpha: 8, dropout: 0, targetModules: ['q', 'v', 'down'] },
        },
        data: {
          train: 'data/sentiment/preferences.jsonl',
          format: 'completion',
          columns: { chosen: 'completion' },
          evalFraction: 0.1,
          maxLength: 80,
        },
        optim: { lr: 1e-2 },
        train: { steps: 4, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
        runtime: { backend: 'wasm' },
      },
    }).catch((e: unknown) => e);
    // A preference file read as prompt/completion keeps its 'rejected' column as an extra.
    expect(config).not.toBeInstanceOf(Error);
    const r = await trainLm(config as SftConfig);
    expect(r.steps).toBe(4);
    expect(readFileSync(join(r.checkpoint!, 'adapter_config.json'), 'utf8')).toContain(
      '"peft_type": "LORA"',
    );
    // The final eval is the completion-only NLL of the first eval batch, by hand: the eval split
    // and the run's tokenizer read again, every target before the completion unweighted, the
    // saved (adapter-merged) model's logits in float64.
    const c = config as SftConfig;
    const tok = await loadTokenizer(join(out, 'tokenizer'));
    const { eval: held } = await loadTrainEval({
      train: c.data.train,
      evalFraction: c.data.evalFraction,
      seed: c.seed,
      columns: c.data.columns,
      format: 'completion',
    });
    const items = held
      .map((e) => tokenizeSft(tok, e, { maxLength: 80, overlong: 'drop', appendEos: true }))
      .filter((it) => it !== undefined)
      .slice(0, c.train.batchSize * c.train.evalBatches);
    for (const [i, it] of items.entries()) {
      const e = held.find((x) => x.where?.line === it.where?.line)!;
      const prompt = e.kind === 'completion' && typeof e.prompt === 'string' ? e.prompt : '';
      const P = tok.encode(prompt).length;
      expect(
        [...it.lossMask.subarray(0, P)].every((m) => m === 0),
        `item ${i} prompt`,
      ).toBe(true);
      expect(
        [...it.lossMask.subarray(P)].every((m) => m === 1),
        `item ${i} completion`,
      ).toBe(true);
    }
    const model = await loadModel(r.checkpoint!);
    const want = await maskedNll(model, items);
    model.dispose();
    expect(Math.abs(r.finalEval!['loss'] - want)).toBeLessThan(1e-5);
  }, 180_000);

  it('rejects a bad config with the field named and how to fix it', async () => {
    await expect(
      pretrainConfig('x', { train: { steps: 1, batchSize: 3, gradAccum: 2 } }),
    ).rejects.toThrow(
      /train.batchSize: batchSize 3 must be a multiple of runtime.replicas × train.gradAccum = 2; change batchSize to 4/,
    );
    await expect(pretrainConfig('x', { trian: {} })).rejects.toThrow(/unknown key 'trian'/);
    await expect(pretrainConfig('x', { model: { tokenizer: 'x' } })).rejects.toThrow(
      /set exactly one of 'model.path'/,
    );
  });
});
