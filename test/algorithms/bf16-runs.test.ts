import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainLm } from '../../src/algorithms/lm.js';
import { trainRl } from '../../src/algorithms/rl.js';
import { placementOf } from '../../src/algorithms/topologies.js';
import { loadConfig } from '../../src/config/load.js';
import type { PretrainConfig, RlConfig } from '../../src/config/schema.js';
import { parseMetrics } from '../../src/train/metrics.js';
import { nativeSkip } from '../helpers/native.js';

/** `runtime.precision: bf16` through the trainers: the actors' threads run it, runs finish. */
const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-bf16-'));

function pretrain(precision: 'fp32' | 'bf16') {
  return loadConfig<PretrainConfig>('pretrain', {
    object: {
      output: tmp(),
      seed: 3,
      model: {
        init: { family: 'gpt2', hidden: 64, layers: 2, heads: 2, maxPositions: 64 },
        tokenizer: { train: { vocabSize: 300 } },
      },
      data: { train: 'data/moby-dick/eval.jsonl', evalFraction: 0.15, blockSize: 32 },
      optim: { lr: 3e-3, warmupSteps: 2 },
      train: { steps: 8, batchSize: 4, evalEvery: 4, evalBatches: 2, saveEvery: 4 },
      runtime: { backend: 'wasm', precision },
    },
  });
}

const losses = (dir: string) =>
  parseMetrics(readFileSync(join(dir, 'metrics.jsonl'), 'utf8'))
    .filter((r) => r.split === 'train')
    .map((r) => r.values['loss'] as number);

describe('precision bf16 refused where it cannot run', () => {
  it.each(['webgpu', 'tensorflow-gpu'])(
    'runtime.backend %s: refused at placement, naming it and wasm/cpu',
    async (backend) => {
      const c = await loadConfig<PretrainConfig>('pretrain', {
        object: {
          output: tmp(),
          model: { path: 'some/model' },
          data: { train: 'train.jsonl' },
          train: { steps: 1 },
          runtime: { backend, precision: 'bf16' },
        },
      });
      expect(() => placementOf(c)).toThrow(
        new RegExp(
          `runtime\\.precision: backend '${backend}' cannot compute precision bf16.*wasm and cpu`,
        ),
      );
    },
  );
});

describe.skipIf(nativeSkip !== null)(`bf16 runs${nativeSkip ? ` (${nativeSkip})` : ''}`, () => {
  it('pretrain: the policy thread runs bf16, and its losses track the fp32 run within 0.5 % + 0.005', async () => {
    const fp32 = await trainLm(await pretrain('fp32'));
    const bf16 = await trainLm(await pretrain('bf16'));
    expect(bf16.actors?.find((a) => a.actor === 'policy')?.precision).toBe('bf16');
    expect(fp32.actors?.find((a) => a.actor === 'policy')?.precision).toBeUndefined();
    const a = losses(fp32.runDir);
    const b = losses(bf16.runDir);
    expect(b).toHaveLength(8);
    for (const [i, l] of b.entries()) {
      expect(Math.abs(l - a[i])).toBeLessThanOrEqual(0.005 * a[i] + 0.005);
    }
    expect(b).not.toEqual(a);
    expect(
      Math.abs((bf16.finalEval?.['loss'] ?? 0) - (fp32.finalEval?.['loss'] ?? 0)),
    ).toBeLessThan(0.05);
  }, 180_000);

  it('GRPO: policy, generator, reference and reward threads all run bf16, and the run finishes', async () => {
    const c = await loadConfig<RlConfig>('grpo', {
      object: {
        output: tmp(),
        model: {
          init: { family: 'gpt2', hidden: 32, layers: 1, heads: 2, maxPositions: 64 },
          tokenizer: { train: { vocabSize: 300 } },
        },
        data: { train: 'data/sentiment/prompts.jsonl', evalFraction: 0.02, maxLength: 24 },
        optim: { lr: 1e-3, schedule: 'constant' },
        train: { steps: 2, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
        rollout: { maxNewTokens: 6 },
        reward: { sources: [{ type: 'sentiment' }] },
        runtime: { backend: 'wasm', precision: 'bf16' },
      },
    });
    const r = await trainRl(c);
    expect(r.steps).toBe(2);
    expect(Object.fromEntries((r.actors ?? []).map((a) => [a.actor, a.precision]))).toEqual({
      policy: 'bf16',
      generator: 'bf16',
      reward: 'bf16',
      reference: 'bf16',
    });
  }, 180_000);
});
