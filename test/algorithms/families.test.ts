import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainLm } from '../../src/algorithms/lm.js';
import { loadConfig } from '../../src/config/load.js';
import type { PretrainConfig, SftConfig } from '../../src/config/schema.js';
import { saveTokenizer, trainWordPiece } from '../../src/data/tokenizer/index.js';
import { loadModel } from '../../src/policy/io.js';
import { parseMetrics } from '../../src/train/metrics.js';
import { FIXTURES } from '../policy/hf-fixtures.js';

/**
 * The trainers on every architecture Troupe runs: a fresh model of each transformers type
 * pretrains (`model.init.family`), and a transformers checkpoint of a new family takes an
 * SFT-LoRA run from `model.path`; each checkpoint is written as that type and loads back.
 */
const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-families-'));

const losses = (dir: string) =>
  parseMetrics(readFileSync(join(dir, 'metrics.jsonl'), 'utf8'))
    .filter((r) => r.split === 'train')
    .map((r) => r.values['loss'] as number);

describe('trainers on every family', () => {
  it.each([
    ['qwen3', 'qwen3'],
    ['mistral', 'mistral'],
    ['gemma2', 'gemma2'],
    ['gemma3', 'gemma3_text'],
    ['phi3', 'phi3'],
  ])(
    'pretrains a fresh %s: loss falls, saved as %s, loads back',
    async (family, type) => {
      const out = tmp();
      const config = await loadConfig<PretrainConfig>('pretrain', {
        object: {
          output: out,
          seed: 5,
          model: {
            init: { family, hidden: 32, layers: 2, heads: 4, kvHeads: 2, maxPositions: 64 },
            tokenizer: { train: { vocabSize: 300 } },
          },
          data: { train: 'data/moby-dick/eval.jsonl', evalFraction: 0.15, blockSize: 24 },
          optim: { lr: 3e-3, warmupSteps: 2 },
          train: { steps: 8, batchSize: 4, evalEvery: 8, evalBatches: 2, saveEvery: 8 },
          runtime: { backend: 'wasm' },
        },
      });
      const r = await trainLm(config);
      const l = losses(out);
      expect(Math.min(...l.slice(-2))).toBeLessThan(l[0]);
      const saved = JSON.parse(readFileSync(join(r.checkpoint!, 'config.json'), 'utf8'));
      expect(saved.model_type).toBe(type);
      const back = await loadModel(r.checkpoint!);
      expect(back.config.layers).toBe(2);
      back.dispose();
    },
    120_000,
  );

  it('SFT with LoRA from a transformers Qwen3 checkpoint (q/k norms, head_dim ≠ hidden/heads)', async () => {
    // the fixture's vocabulary is 96 tokens: a tokenizer of that size beside a copy of it
    const model = join(tmp(), 'qwen3');
    cpSync(join(FIXTURES, 'qwen3'), model, { recursive: true });
    // (a WordPiece one: a byte-level BPE needs 256 byte tokens)
    const lines = readFileSync('data/arithmetic/sft.jsonl', 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .slice(0, 300)
      .map((l) => {
        const r = JSON.parse(l);
        return `${r.prompt}${r.completion}`;
      });
    await saveTokenizer(model, trainWordPiece(lines, { vocabSize: 96 }));
    const out = tmp();
    const config = await loadConfig<SftConfig>('sft', {
      object: {
        output: out,
        seed: 2,
        model: {
          path: model,
          lora: { rank: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj', 'down_proj'] },
        },
        data: { train: 'data/arithmetic/sft.jsonl', evalFraction: 0.1, maxLength: 40 },
        optim: { lr: 3e-2 },
        train: { steps: 12, batchSize: 8, evalEvery: 12, evalBatches: 1, saveEvery: 12 },
        runtime: { backend: 'wasm' },
      },
    });
    const r = await trainLm(config);
    const l = losses(out);
    const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
    expect(mean(l.slice(-3))).toBeLessThan(mean(l.slice(0, 3)));
    const adapter = JSON.parse(readFileSync(join(r.checkpoint!, 'adapter_config.json'), 'utf8'));
    expect(adapter.target_modules).toEqual(['down_proj', 'q_proj', 'v_proj']);
    // the checkpoint loads with its adapter, as a Qwen3 model
    const back = await loadModel(r.checkpoint!);
    expect(back.config.qkNorm).toBe(true);
    back.dispose();
  }, 120_000);
});
