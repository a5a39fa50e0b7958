import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainRl } from '../../src/algorithms/rl.js';
import {
  tinyRlConfig as config,
  finalCheckpointFile as file,
  runMetrics as metrics,
} from './fixtures/tiny-rl.js';

/**
 * A resumed RL run equals the run that was never interrupted: every logged value of every step
 * (wall-clock timings and throughput aside) and the final weights, bit for bit; GRPO on-policy,
 * PPO (critic, adaptive KL) one step off-policy. The tiny job of fixtures/tiny-rl.ts, 4 steps
 * stopped after 2.
 */
const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-rl-resume-'));

describe('RL resume', () => {
  it.each(['grpo', 'ppo'] as const)(
    '%s: stopped after 2 of 4 steps and resumed, it equals the uninterrupted run',
    async (algorithm) => {
      const straight = tmp();
      const interrupted = tmp();
      await trainRl(await config(algorithm, straight));
      const first = await trainRl(await config(algorithm, interrupted), { stopAfterSteps: 2 });
      expect(first.steps).toBe(2);
      const second = await trainRl(await config(algorithm, interrupted), { resume: true });
      expect(second.steps).toBe(4);

      const a = metrics(straight);
      const b = metrics(interrupted);
      expect(b.filter((r) => r.split === 'train').map((r) => r.step)).toEqual([1, 2, 3, 4]);
      expect(b).toEqual(a);
      // The weights version counts on across the resume: step k samples with step k−1's weights
      // (k−2's when generated ahead, the start weights for the first two).
      expect(
        b.filter((r) => r.split === 'train').map((r) => r.values['rollout/weights_version']),
      ).toEqual(algorithm === 'ppo' ? [0, 0, 1, 2] : [0, 1, 2, 3]);

      // Something was learned and logged (so equal metrics are not equal emptiness).
      expect(new Set(a.map((r) => r.values['actor/loss'])).size).toBeGreaterThan(2);
      expect(
        file(interrupted, 'model.safetensors').equals(file(straight, 'model.safetensors')),
      ).toBe(true);
      if (algorithm === 'ppo') {
        for (const m of a.filter((r) => r.split === 'train').map((r) => r.values)) {
          // The critic's loss is its clipped value loss alone; explained variance is at most 1.
          expect(m['critic/loss']).toBe(m['critic/vf_loss']);
          expect(m['critic/vf_loss']).toBeGreaterThan(0);
          expect(m['critic/explained_variance']).toBeLessThanOrEqual(1);
        }
        // Step 3's batch, kept in the checkpoint, was sampled before step 2's update.
        const step3 = b.find((r) => r.split === 'train' && r.step === 3)!;
        expect(step3.values['rollout/logprob_diff']).toBeGreaterThan(1e-4);
        const critic = ['critic', 'model.safetensors'];
        expect(file(interrupted, ...critic).equals(file(straight, ...critic))).toBe(true);
        const kl = a.filter((r) => r.split === 'train').map((r) => r.values['kl_coef']);
        expect(kl[3]).not.toBe(0.05);
      }
    },
    120_000,
  );

  it("grpo with the generator and the reference on the policy's thread: stopped after 2 of 4 steps and resumed, it equals the uninterrupted run", async () => {
    // The generator samples with the policy's own tensors: a resumed policy's, from its first batch.
    const actors = { generator: { colocateWith: 'policy' }, reference: { colocateWith: 'policy' } };
    const straight = tmp();
    const interrupted = tmp();
    await trainRl(await config('grpo', straight, actors));
    await trainRl(await config('grpo', interrupted, actors), { stopAfterSteps: 2 });
    expect((await trainRl(await config('grpo', interrupted, actors), { resume: true })).steps).toBe(
      4,
    );
    const a = metrics(straight);
    expect(metrics(interrupted)).toEqual(a);
    expect(
      a.filter((r) => r.split === 'train').map((r) => r.values['rollout/weights_version']),
    ).toEqual([0, 1, 2, 3]);
    expect(new Set(a.map((r) => r.values['actor/loss'])).size).toBeGreaterThan(2);
    expect(file(interrupted, 'model.safetensors').equals(file(straight, 'model.safetensors'))).toBe(
      true,
    );
  }, 120_000);
});
