import { beforeAll, describe, expect, it } from 'vitest';
import { frozenModel } from '../../src/algorithms/roles/models.js';
import { wasmTensorBytes } from '../../src/kernels/backends/wasm.js';
import * as tf from '../../src/kernels/tf.js';
import { gpt2Config, llamaConfig, type ModelConfig } from '../../src/policy/index.js';
import { headTransientFloats, type MemoryJob, predictMemory } from '../../src/policy/memory.js';
import { targetLogProbs } from '../../src/policy/target-logprobs.js';
import { useBackend } from '../helpers/backends.js';
import { nativeSkip } from '../helpers/native.js';
import { LORA, stepPeak, tokenBatch } from './memory-step.js';

/**
 * The predictor's terms that tiny vocabularies and short layers stacks do not exercise, each
 * against a real step's measured wasm peak (each buffer once) on a shape where that term is most
 * of the step, so that a wrong term falls outside the tolerance:
 *   - a frozen LM head (LoRA) computes no [V, d] weight gradient (the predictor used to count one);
 *   - checkpointed LoRA differentiates no frozen weight (checkpointing.ts used to differentiate
 *     every parameter of a recomputed block and keep those gradients to the backward's end:
 *     measured on a Qwen3-0.6B shape with scripts/memory/phase-peaks.ts, 60 MiB a layer);
 *   - past 2²⁵ logits the head goes in chunks of max(128, 2²³/V) rows forward and
 *     max(4096, 2²³/N) vocabulary columns backward.
 * Tolerance as in memory.test.ts: the predicted peak above weights and optimizer is 0.9–1.6× the
 * measured one.
 */

const measure = (config: ModelConfig, job: Omit<MemoryJob, 'config'>) => stepPeak(config, job, 3);

function expectWithin(r: { measured: number; predicted: number }) {
  const ratio = r.predicted / r.measured;
  const msg = `predicted ${r.predicted}, measured ${r.measured}`;
  expect(ratio, msg).toBeGreaterThan(0.9);
  expect(ratio, msg).toBeLessThan(1.6);
}

describe('memory predictor terms', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('LoRA under a large frozen vocabulary: no [V, d] head gradient', () => {
    // the head's [32768, 512] is 64 MiB; the step's own tensors at 1×64 tokens a few MiB
    const config = llamaConfig({
      vocabSize: 32768,
      hidden: 512,
      layers: 1,
      heads: 8,
      intermediate: 1024,
      tieEmbeddings: true,
    });
    const r = measure(config, { method: 'lora', lora: LORA, batch: 1, seq: 64 });
    expect(r.measured).toBeLessThan(config.vocabSize * config.hidden * 4);
    expectWithin(r);
  });

  it('checkpointed LoRA: the recompute computes no gradient for the frozen weights', () => {
    // 6 layers of 2.9 MB of projections against 32 tokens' activations: the frozen weights'
    // gradients, were they computed and held, would be 17 MB, several times the step's peak
    const config = llamaConfig({
      vocabSize: 512,
      hidden: 256,
      layers: 6,
      heads: 4,
      intermediate: 688,
      tieEmbeddings: true,
    });
    const r = measure(config, { method: 'lora', lora: LORA, batch: 1, seq: 32, checkpoint: true });
    const layerWeights = 4 * 256 * 256 + 3 * 256 * 688;
    expect(r.measured).toBeLessThan(layerWeights * 4 * 2);
    expectWithin(r);
  });

  for (const N of [64, 1280]) {
    it(`full fine-tune, tied [V, d] dominating, ${N} tokens: the head's and the embedding's gradients summed`, () => {
      // the embedding/head [32768, 256] is 32 MiB; at 1280 tokens the head goes in chunks
      const config = llamaConfig({
        vocabSize: 32768,
        hidden: 256,
        layers: 1,
        heads: 4,
        intermediate: 512,
        tieEmbeddings: true,
      });
      expectWithin(measure(config, { method: 'full', batch: 1, seq: N }));
    });
  }

  const chunked = llamaConfig({
    vocabSize: 32768,
    hidden: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    intermediate: 176,
    qkNorm: true,
    tieEmbeddings: true,
  });
  for (const [method, checkpoint] of [
    ['full', false],
    ['lora', false],
    ['lora', true],
  ] as const) {
    it(`chunked LM head (2×640 tokens × 32768 words > 2²⁵ logits): ${method}${checkpoint ? ' checkpointed' : ''}`, () => {
      expect(2 * 640 * 32768).toBeGreaterThan(2 ** 25);
      expectWithin(measure(chunked, { method, lora: LORA, batch: 2, seq: 640, checkpoint }));
    });
  }

  it('head transients: kept logits up to 2²⁵, else the larger of a row chunk and a column block', () => {
    expect(headTransientFloats(100, 512, true)).toBe(2 * 100 * 512);
    expect(headTransientFloats(100, 512, false)).toBe(100 * 512);
    // Qwen's vocabulary at 4×256 tokens: 128-row forward chunks, 8192-column backward blocks
    expect(headTransientFloats(1024, 151936, false)).toBe(128 * 151936);
    expect(headTransientFloats(1024, 151936, true)).toBe(Math.max(128 * 151936, 2 * 1024 * 8192));
    expect(headTransientFloats(256, 151936, true)).toBe(128 * 151936);
  });
});

describe.skipIf(nativeSkip !== null)(
  `an fp32 frozen model's forward, measured${nativeSkip ? ` (${nativeSkip})` : ''}`,
  () => {
    beforeAll(async () => {
      await useBackend('wasm');
    });

    /**
     * A reference's log-probs (targetLogProbs, as roles/reference.ts computes them, no tape) on
     * an fp32 frozen model built as the roles build it: the wasm heap's peak above what was live
     * (each buffer once) against the predicted activations, 0.9–1.6×. With no tape the head's
     * kept block computes the [N, V] logits and their pick only (lm-head.ts keptHeadLogProbs): it
     * computed onehot − softmax [N, V] beside them too, measured 0.6× of this prediction at
     * 32768 words, where the head is most of the forward.
     */
    it.each([
      [
        "V 512, the RL bench's GRPO tiny GPT-2 at 64 × 64 tokens",
        gpt2Config({ vocabSize: 512, hidden: 128, layers: 4, heads: 4, maxPositions: 128 }),
        64,
        64,
      ],
      [
        'V 32768, 2 × 64 tokens',
        llamaConfig({
          vocabSize: 32768,
          hidden: 256,
          layers: 2,
          heads: 4,
          intermediate: 688,
          tieEmbeddings: true,
        }),
        2,
        64,
      ],
      [
        'V 151936, 1 × 128 tokens',
        llamaConfig({
          vocabSize: 151936,
          hidden: 128,
          layers: 1,
          heads: 4,
          intermediate: 344,
          tieEmbeddings: true,
        }),
        1,
        128,
      ],
    ] as const)('%s', async (_, c, B, T) => {
      const model = await frozenModel({ config: c, seed: 3 });
      const start = wasmTensorBytes({ reset: true })!.liveBytes;
      const lp = tf.tidy(
        () => targetLogProbs(model, tokenBatch(B, T, c.vocabSize), { start: 1 }).logp,
      );
      await lp.data();
      lp.dispose();
      const measured = wasmTensorBytes()!.peakBytes - start;
      model.dispose();
      const p = predictMemory({ config: c, method: 'none', batch: B, seq: T });
      const ratio = p.activations / measured;
      const msg = `predicted ${p.activations}, measured ${measured}`;
      expect(ratio, msg).toBeGreaterThan(0.9);
      expect(ratio, msg).toBeLessThan(1.6);
    });
  },
);
