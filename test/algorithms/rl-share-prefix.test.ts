import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RL_TOPOLOGY, sharePrefixInStep } from '../../src/algorithms/rl/topology.js';
import { createPolicy, type PolicyArgs } from '../../src/algorithms/roles/policy.js';
import { RandomStream } from '../../src/kernels/random.js';
import { gpt2Config } from '../../src/policy/config.js';
import { generate } from '../../src/policy/generate.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { assembleExperience, layoutOf } from '../../src/rollout/assemble.js';
import { encodeExperience } from '../../src/rollout/codec.js';
import { useBackend } from '../helpers/backends.js';
import { rlConfig as rl } from './fixtures/rl-config.js';

/*
 * The RL update runs each prompt its samples repeat once (targetLogProbs' sharePrefix) where its
 * forward is the same for every row of a group: which configs allow it, that the topology hands
 * it to the policy, and that a policy step with it equals one without to float32 rounding while
 * running the distinct prompts only once.
 */

describe('sharePrefixInStep: when the update may run a repeated prompt once', () => {
  it('with no dropout and no LoRA dropout, whatever the epochs, minibatches or KL', async () => {
    for (const c of [
      await rl('grpo'),
      await rl('grpo', { rl: { epochs: 2, miniBatches: 2 } }),
      await rl('rloo'),
      await rl('ppo'),
      await rl('grpo', { model: { path: 'm', lora: { rank: 4, dropout: 0 } } }),
    ]) {
      expect(sharePrefixInStep(c), c.algorithm).toBe(true);
    }
    expect(sharePrefixInStep(await rl('grpo', { model: { path: 'm', dropout: true } }))).toBe(
      false,
    );
    expect(sharePrefixInStep(await rl('grpo', { model: { path: 'm', lora: { rank: 4 } } }))).toBe(
      false,
    ); // LoRA's default dropout is 0.05
  });

  it('the topology hands it to the policy', async () => {
    for (const [c, want] of [
      [await rl('grpo'), true],
      [await rl('grpo', { model: { path: 'm', dropout: true } }), false],
    ] as const) {
      const args = (await RL_TOPOLOGY.policy.args(
        c,
        { model: { path: 'm' } } as never,
        {} as never,
        {} as never,
      )) as PolicyArgs;
      expect(args.rl?.sharePrefix).toBe(want);
    }
  });
});

describe('a policy step with the shared prefix equals one without', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });
  const forward = CausalLM.prototype.forward;
  afterEach(() => {
    CausalLM.prototype.forward = forward;
  });

  const config = gpt2Config({ vocabSize: 37, hidden: 16, layers: 2, heads: 2, maxPositions: 96 });
  const ctx = {
    name: 'policy',
    runtime: { backend: 'wasm' },
    log: () => {},
    metric: () => {},
  } as unknown as Parameters<typeof createPolicy>[1];
  const policyArgs = (sharePrefix: boolean): PolicyArgs => ({
    model: { config, seed: 21 },
    optimizer: { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 },
    maxGradNorm: 1,
    rl: {
      temperature: 1,
      oldLogpInStep: true,
      sharePrefix,
      loss: { clipLow: 0.2, clipHigh: 0.28, aggMode: 'token-mean', entropyCoef: 0 },
    },
  });

  it('loss, gradient norm and updated weights; the 2 distinct prompts run once', async () => {
    // 2 prompts of 34 and 36 tokens × 4 samples, 33 new tokens each (no stop token)
    const sampler = CausalLM.init(config, { seed: 21 });
    const base = (n: number, s: number) => Array.from({ length: n }, (_, i) => (i * s + 1) % 37);
    const prompts = [base(34, 5), base(36, 7)].flatMap((p) => [p, p, p, p]);
    const rng = RandomStream.of({ seed: 5, step: 0, actor: 'generator', purpose: 'sample' });
    const g = await generate(sampler, prompts, { maxNewTokens: 33, rng, stopTokenIds: [] });
    sampler.dispose();
    const layout = layoutOf(g);
    const { batch: B, actions: A } = layout.shape;
    const sampled = new Float32Array(B * A);
    g.logprobs.forEach((row, b) => {
      row.forEach((x, t) => {
        sampled[b * A + t] = x;
      });
    });
    const experience = encodeExperience(
      assembleExperience(
        {
          layout,
          oldLogp: sampled,
          rewards: Float32Array.from({ length: B }, (_, i) => (i * 3) % 5),
          groups: Array.from({ length: B }, (_, i) => Math.floor(i / 4)),
        },
        { estimator: 'grpo', klCoef: 0, klEstimator: 'k3', normByStd: true },
      ).experience,
    );
    const rows: number[] = [];
    CausalLM.prototype.forward = function (this: CausalLM, batch, opts) {
      rows.push(batch.batch);
      return forward.call(this, batch, opts);
    };
    const full = await createPolicy(policyArgs(false), ctx);
    const shared = await createPolicy(policyArgs(true), ctx);
    rows.length = 0;
    const a = await full.step([experience], 1e-2, 0);
    expect(rows).toEqual([8]);
    rows.length = 0;
    const b = await shared.step([experience], 1e-2, 0);
    expect(rows).toEqual([2, 8]); // the distinct prompts, then every row's continuation
    expect(a.gradNorm).toBeGreaterThan(1e-3);
    expect(Math.abs(b.loss - a.loss)).toBeLessThan(1e-5 * Math.abs(a.loss) + 1e-7);
    expect(Math.abs(b.gradNorm - a.gradNorm)).toBeLessThan(1e-5 * a.gradNorm);
    const [wa, wb] = [await full.flatParams(), await shared.flatParams()];
    let worst = 0;
    for (let i = 0; i < wa.length; i++) worst = Math.max(worst, Math.abs(wa[i] - wb[i]));
    // AdamW's first step is lr·g/(|g| + ε): where a gradient is ~ε, a float32-rounding
    // difference in it moves the step by a fraction of lr (1e-2 here)
    expect(worst).toBeLessThan(1e-4);
  }, 60_000);
});
