import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { memoryProblem, threadPeak } from '../../src/algorithms/memory-check.js';
import { rlActors } from '../../src/algorithms/memory-check-rl.js';
import { trainRl } from '../../src/algorithms/rl.js';
import type { RlConfig } from '../../src/config/schema.js';
import * as tf from '../../src/kernels/tf.js';
import { predictMemory } from '../../src/policy/memory.js';
import { useBackend } from '../helpers/backends.js';
import { rejected } from '../helpers/thrown.js';
import { MEMORY_RL_MODEL as MODEL, memoryRlConfig } from './fixtures/memory-rl-config.js';

/**
 * The memory check of the online algorithms (src/algorithms/memory-check-rl.ts): each actor of
 * the RL topology with what it computes, colocation adding up in one thread, and a run past its
 * heap refused with the prediction and what would fit before any actor starts.
 */

const config = (algorithm: RlConfig['algorithm'], extra: Record<string, unknown> = {}) =>
  memoryRlConfig(algorithm, { runtime: { backend: 'wasm' }, ...extra });

describe('memory check of RL runs', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('GRPO: policy (step on a micro-batch, old log-probs of the rollout), generator, reference', async () => {
    // 4 prompts × 4 samples = 16 rows of 24 + 8 tokens; 2 minibatches → 8 rows a step
    const c = await config('grpo', { rl: { miniBatches: 2, kl: { mode: 'loss', coef: 0.01 } } });
    const actors = rlActors(c, MODEL);
    expect(actors.map((a) => a.actor)).toEqual(['policy', 'generator', 'reference']);
    const [policy, generator, reference] = actors;
    expect(policy.job).toMatchObject({ method: 'full', batch: 8, seq: 32 });
    expect(policy.phases?.map((p) => p.job)).toEqual([
      { config: MODEL, method: 'none', batch: 16, seq: 32 },
    ]);
    expect(generator.job).toMatchObject({
      method: 'none',
      batch: 16,
      seq: 24,
      generation: { batch: 16, length: 32 },
    });
    expect(predictMemory(generator.job).kvCache).toBe(2 * 4 * 16 * 4 * 64 * 32 * 4);
    expect(reference.job).toMatchObject({ method: 'none', batch: 16, seq: 32 });
    // the policy's thread: the larger of its step and its scoring pass over the same weights
    const { prediction, peak } = threadPeak(policy);
    const score = predictMemory(policy.phases![0].job);
    expect(peak).toBe(
      Math.max(prediction.peak, prediction.weights + prediction.optimizer + score.activations),
    );
  });

  it('PPO: a critic with its value head; colocated actors add to their host thread', async () => {
    const c = await config('ppo', {
      actors: {
        reference: { colocateWith: 'policy' },
        generator: { colocateWith: 'policy' },
        critic: { replicas: 2 },
      },
      // π_old from a pass of the policy (the colocated default takes the generator's)
      rl: { oldLogprobs: 'recompute' },
    });
    const actors = rlActors(c, MODEL);
    // the generator shares the policy's weights: a pass of the policy, not an actor of its own
    expect(actors.map((a) => a.actor)).toEqual(['policy', 'critic']);
    const [policy, critic] = actors;
    expect(policy.colocated?.map((g) => g.actor)).toEqual(['reference']);
    expect(policy.phases?.map((p) => p.what)).toEqual([
      expect.stringMatching(/^old log-probs of the rollout \(4×32 tokens/),
      expect.stringMatching(/^generation with its KV cache/),
    ]);
    expect(critic.job).toMatchObject({ method: 'full', heads: ['value_head'], batch: 2 });
    expect(critic.replicas).toBe(2);
    const alone = threadPeak({ ...policy, colocated: [] }).peak;
    expect(threadPeak(policy).peak).toBe(alone + predictMemory(policy.colocated![0].job).peak);
  });

  it("PPO with its generator colocated: no π_old pass by default (the generator's log-probs)", async () => {
    const colocated = { generator: { colocateWith: 'policy' } };
    const phases = async (o: Record<string, unknown>) =>
      rlActors(await config('ppo', o), MODEL)[0].phases?.map((p) => p.what.split(' (')[0]);
    expect(await phases({ actors: colocated })).toEqual(['generation with its KV cache']);
    expect(await phases({ actors: colocated, rl: { oldLogprobs: 'recompute' } })).toEqual([
      'old log-probs of the rollout',
      'generation with its KV cache',
    ]);
    // a generator of its own: recomputed unless asked otherwise
    expect(await phases({})).toEqual(['old log-probs of the rollout']);
    expect(await phases({ rl: { oldLogprobs: 'generator' } })).toEqual([]);
  });

  it('a GRPO run past a stated heap is refused with its breakdown and what would fit', async () => {
    const c = await config('grpo', { rl: { miniBatches: 2 } });
    const actors = rlActors(c, MODEL);
    // 80 MiB: the full AdamW step of this 4.2 M-parameter model needs ~92 MiB, LoRA ~72 MiB
    const budget = 80 * 2 ** 20;
    expect(threadPeak(actors[0]).peak).toBeGreaterThan(budget);
    const e = memoryProblem(actors, { wasmHeap: budget, host: 64 * 2 ** 30 })!;
    expect(e.code).toBe('OUT_OF_MEMORY');
    expect(e.message).toMatch(/^Actor 'policy' will not fit: a full fine-tune of a 4\.\d M/);
    expect(e.message).toMatch(/peak [\d.]+ GiB \(weights [\d.]+ GiB, gradients .*AdamW/);
    expect(e.message).toMatch(/with old log-probs of the rollout \(16×32 tokens/);
    expect(e.message).toMatch(/LoRA \(model\.lora: rank 8 on q, v\): peak [\d.]+ GiB \(fits\)/);
    expect(e.message).toMatch(/Nothing was allocated/);
    expect(e.details).toMatchObject({ actor: 'policy', limitBytes: budget });
    // replicas multiply the host's share
    const host = threadPeak(actors[0]).peak;
    const two = memoryProblem([{ ...actors[0], replicas: 2 }], {
      wasmHeap: 2 ** 32,
      host: 1.5 * host,
    })!;
    expect(two.message).toMatch(/will not fit in host memory: .*policy × 2/);
  });

  it('troupe grpo refuses a model too big for the wasm heap before any actor starts', async () => {
    const c = await config('grpo', {
      // 32 layers of d 2048: ~1.6 B parameters, a full AdamW fine-tune needs ~26 GiB
      model: {
        init: { family: 'llama', hidden: 2048, layers: 32, heads: 16, maxPositions: 64 },
        tokenizer: { train: { vocabSize: 300 } },
      },
    });
    const before = tf.memory().numBytes;
    const e = await rejected(trainRl(c));
    expect(e?.code, e?.message).toBe('OUT_OF_MEMORY');
    expect(e.message).toMatch(/Actor 'policy' will not fit: a full fine-tune/);
    expect(tf.memory().numBytes).toBe(before);
    expect(readFileSync(join(c.output, 'log.txt'), 'utf8')).not.toMatch(/ready/);
  });
});
