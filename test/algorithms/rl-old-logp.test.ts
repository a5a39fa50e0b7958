import { availableParallelism } from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  oldLogpFromGenerator,
  oldLogpInStep,
  samplingThreads,
} from '../../src/algorithms/rl/topology.js';
import { createPolicy, type PolicyArgs } from '../../src/algorithms/roles/policy.js';
import { RandomStream } from '../../src/kernels/random.js';
import { gpt2Config } from '../../src/policy/config.js';
import { generate } from '../../src/policy/generate.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { assembleExperience, layoutOf, tokenStats } from '../../src/rollout/assemble.js';
import { encodeExperience, encodeRollout } from '../../src/rollout/codec.js';
import { useBackend } from '../helpers/backends.js';
import { rlConfig as rl } from './fixtures/rl-config.js';

/*
 * oldLogpInStep: with exactly one optimiser step per batch (on-policy, one epoch of one
 * minibatch) and nothing reading π_old before the update, the policy takes π_old as its own
 * log π_θ detached, and the separate π_old pass is skipped. Checked against that pass: the same
 * loss, gradient norm, metrics and updated weights; and that nothing else takes the shortcut.
 */

describe('oldLogpInStep: when the update may be its own π_old', () => {
  it('only for one on-policy optimiser step per batch with nothing reading π_old first and no dropout', async () => {
    // GRPO (KL as a loss term), and any estimator without a KL in the reward.
    expect(oldLogpInStep(await rl('grpo'))).toBe(true);
    expect(oldLogpInStep(await rl('rloo', { rl: { kl: { mode: 'none' } } }))).toBe(true);
    expect(oldLogpInStep(await rl('reinforce', { rl: { kl: { mode: 'loss' } } }))).toBe(true);
    expect(oldLogpInStep(await rl('rloo', { rl: { kl: { coef: 0 } } }))).toBe(true);
    expect(oldLogpInStep(await rl('grpo', { model: { path: 'm', dropout: false } }))).toBe(true);
    expect(
      oldLogpInStep(await rl('grpo', { model: { path: 'm', lora: { rank: 4, dropout: 0 } } })),
    ).toBe(true);
    // Not when a batch gets more than one step: π_θ moves away from π_old after the first.
    expect(oldLogpInStep(await rl('grpo', { rl: { epochs: 2 } }))).toBe(false);
    expect(oldLogpInStep(await rl('grpo', { rl: { miniBatches: 2 } }))).toBe(false);
    // Not off-policy: the batch was sampled with the weights of the step before.
    expect(oldLogpInStep(await rl('grpo', { rollout: { offPolicy: true } }))).toBe(false);
    // Not with a KL in the reward (PPO, RLOO, REINFORCE++ by default): it shapes the rewards
    // from π_old before the update runs.
    expect(oldLogpInStep(await rl('ppo'))).toBe(false);
    expect(oldLogpInStep(await rl('rloo'))).toBe(false);
    expect(oldLogpInStep(await rl('reinforce'))).toBe(false);
    // Not with dropout: the update's forward is not the pass's.
    expect(oldLogpInStep(await rl('grpo', { model: { path: 'm', dropout: true } }))).toBe(false);
    expect(
      oldLogpInStep(
        await rl('grpo', {
          model: { path: 'm', dropout: { embedding: 0, attention: 0.1, residual: 0 } },
        }),
      ),
    ).toBe(false);
    expect(oldLogpInStep(await rl('grpo', { model: { path: 'm', lora: { rank: 4 } } }))).toBe(
      false,
    ); // LoRA's default dropout is 0.05
  });
});

describe("oldLogpFromGenerator: when π_old is the generator's log-probs", () => {
  it("by default where the generator samples with the policy's own tensors; as configured otherwise; never where the update is its own π_old", async () => {
    const colocated = { actors: { generator: { colocateWith: 'policy' } } };
    expect(oldLogpFromGenerator(await rl('ppo', colocated))).toBe(true);
    expect(oldLogpFromGenerator(await rl('ppo'))).toBe(false); // a generator of its own
    expect(oldLogpFromGenerator(await rl('ppo', { rl: { oldLogprobs: 'generator' } }))).toBe(true);
    expect(
      oldLogpFromGenerator(await rl('ppo', { ...colocated, rl: { oldLogprobs: 'recompute' } })),
    ).toBe(false);
    expect(oldLogpFromGenerator(await rl('rloo', { ...colocated, rl: { epochs: 2 } }))).toBe(true);
    // GRPO's update computes π_old itself: no generator's log-probs, no pass
    expect(oldLogpFromGenerator(await rl('grpo', colocated))).toBe(false);
    expect(oldLogpFromGenerator(await rl('grpo', { rl: { oldLogprobs: 'generator' } }))).toBe(
      false,
    );
  });

  it('names the allowed values of rl.oldLogprobs', async () => {
    await expect(rl('ppo', { rl: { oldLogprobs: 'pass' } })).rejects.toThrow(/rl\.oldLogprobs/);
  });
});

describe('samplingThreads: the cores for a generator that samples while nothing else computes', () => {
  it('every core on-policy with one generator; the configured count; none with several generators, off-policy or its own blasThreads', async () => {
    const env = process.env.TROUPE_BLAS_THREADS;
    delete process.env.TROUPE_BLAS_THREADS;
    try {
      const cores = availableParallelism();
      expect(samplingThreads(await rl('ppo'), 1)).toBe(cores);
      expect(samplingThreads(await rl('ppo', { runtime: { blasThreads: 3 } }), 1)).toBe(3);
      expect(samplingThreads(await rl('grpo'), 2)).toBeUndefined(); // the hybrid's generators
      expect(samplingThreads(await rl('ppo', { rollout: { offPolicy: true } }), 1)).toBeUndefined();
      expect(
        samplingThreads(await rl('ppo', { actors: { generator: { blasThreads: 1 } } }), 1),
      ).toBeUndefined();
      process.env.TROUPE_BLAS_THREADS = '1';
      expect(samplingThreads(await rl('ppo'), 1)).toBe(1);
    } finally {
      if (env === undefined) delete process.env.TROUPE_BLAS_THREADS;
      else process.env.TROUPE_BLAS_THREADS = env;
    }
  });
});

describe('oldLogpInStep: the same update as a separate π_old pass', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  const config = gpt2Config({ vocabSize: 37, hidden: 16, layers: 2, heads: 2, maxPositions: 32 });
  const T = 0.9;
  const ctx = {
    name: 'policy',
    runtime: { backend: 'wasm' },
    log: () => {},
    metric: () => {},
  } as unknown as Parameters<typeof createPolicy>[1];
  const policyArgs = (inStep: boolean, entropyCoef: number): PolicyArgs => ({
    model: { config, seed: 11 },
    optimizer: { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 },
    maxGradNorm: 1,
    rl: {
      temperature: T,
      oldLogpInStep: inStep,
      loss: {
        clipLow: 0.2,
        clipHigh: 0.28,
        aggMode: 'token-mean',
        entropyCoef,
        klLoss: { coef: 0.04, estimator: 'k3' },
      },
    },
  });

  it.each([0, 0.01])(
    'entropy coefficient %s: loss, gradient norm, metrics and updated weights equal; it reports entropy and generator mismatch itself',
    async (entropyCoef) => {
      // A rollout sampled by a copy of the start weights, groups of 4 samples of 2 prompts.
      const sampler = CausalLM.init(config, { seed: 11 });
      const prompts = [
        [1, 2, 3],
        [4, 5],
      ].flatMap((p) => [p, p, p, p]);
      const rng = RandomStream.of({ seed: 3, step: 0, actor: 'generator', purpose: 'sample' });
      const g = await generate(sampler, prompts, { maxNewTokens: 5, temperature: T, rng });
      sampler.dispose();
      const layout = layoutOf(g);
      const { batch: B, actions: A } = layout.shape;
      const frame = encodeRollout(layout);
      // A reference unlike the policy (another seed), for GRPO's KL term.
      const refPolicy = await createPolicy(
        { ...policyArgs(false, 0), model: { config, seed: 12 } },
        ctx,
      );
      const ref = await refPolicy.actionLogprobs(frame);

      const separate = await createPolicy(policyArgs(false, entropyCoef), ctx);
      const inStep = await createPolicy(policyArgs(true, entropyCoef), ctx);
      const pass = await separate.actionLogprobs(frame);
      // The generator's log-probs as the maker hands them over without a π_old pass, moved by
      // ±0.03 (a generator that computes a little differently, bf16 say): the update must not
      // read them (its ratio is 1), only report the mismatch.
      const sampled = new Float32Array(B * A);
      g.logprobs.forEach((row, b) => {
        row.forEach((x, t) => {
          if (layout.actionMask[b * A + t]) sampled[b * A + t] = x + (t % 2 ? 0.03 : -0.03);
        });
      });
      const experience = (oldLogp: Float32Array) =>
        assembleExperience(
          {
            layout,
            oldLogp,
            refLogp: ref.logp,
            rewards: Float32Array.from({ length: B }, (_, i) => (i * 7) % 5),
            groups: Array.from({ length: B }, (_, i) => Math.floor(i / 4)),
          },
          { estimator: 'grpo', klCoef: 0, klEstimator: 'k3', normByStd: true },
        ).experience;
      const a = await separate.step([encodeExperience(experience(pass.logp))], 1e-2, 0);
      const b = await inStep.step([encodeExperience(experience(sampled))], 1e-2, 0);

      expect(b.loss).toBeCloseTo(a.loss, 6);
      expect(b.gradNorm).toBeCloseTo(a.gradNorm, 5);
      expect(a.gradNorm).toBeGreaterThan(1e-4);
      for (const k of ['actor/pg_loss', 'actor/kl_loss', 'actor/pg_clipfrac']) {
        expect(b.metrics[k], k).toBeCloseTo(a.metrics[k], 6);
      }
      // Ratio 1 exactly in both: nothing is clipped on the one step.
      expect(a.metrics['actor/pg_clipfrac']).toBe(0);
      expect(b.metrics['actor/pg_clipfrac']).toBe(0);
      // The pass's entropy (the metric before) against the update's own.
      const H = tokenStats(pass.entropy, layout.actionMask).mean;
      expect(b.metrics['actor/entropy']).toBeCloseTo(H, 5);
      if (entropyCoef > 0) expect(a.metrics['actor/entropy']).toBeCloseTo(H, 5);
      // |log π_θ − log π_generator| over the actions, in float64 from the pass.
      let diff = 0;
      let n = 0;
      for (let i = 0; i < B * A; i++) {
        if (!layout.actionMask[i]) continue;
        diff += Math.abs(pass.logp[i] - sampled[i]);
        n++;
      }
      expect(n).toBeGreaterThan(0);
      expect(b.metrics['rollout/logprob_diff']).toBeCloseTo(diff / n, 5);
      expect(diff / n).toBeGreaterThan(0.029);
      // The same weights after the step.
      const wa = await separate.flatParams();
      const wb = await inStep.flatParams();
      let worst = 0;
      for (let i = 0; i < wa.length; i++) worst = Math.max(worst, Math.abs(wa[i] - wb[i]));
      expect(worst).toBeLessThan(1e-6);
    },
    60_000,
  );
});
