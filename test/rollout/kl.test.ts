import { beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../src/errors.js';
import { klEstimate } from '../../src/kernels/numerics/index.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import {
  AdaptiveKLController,
  FixedKLController,
  shapeRewards,
  tokenKl,
} from '../../src/rollout/index.js';
import { expectClose, useBackend } from '../helpers/backends.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('shapeRewards', () => {
  it('matches a hand-computed batch (k1, β = 0.1)', () => {
    // Row 0: 3 actions, KL = logp − logq = [0.5, −0.2, 1.0]; r = 2 at t = 2.
    //   r_t = −0.1·KL + [0, 0, 2] = [−0.05, 0.02, 1.9]; mean KL = 1.3/3
    // Row 1: 1 action, KL = [0.3]; r = −1 at t = 0 → [−1.03, 0, 0]; mean KL = 0.3
    // meanKl = (1.3/3 + 0.3)/2
    const out = shapeRewards(
      {
        shape: { batch: 2, actions: 3 },
        rewards: Float32Array.of(2, -1),
        logp: Float32Array.of(-1, -2, -0.5, -1, 9, 9),
        refLogp: Float32Array.of(-1.5, -1.8, -1.5, -1.3, 0, 0),
        mask: Uint8Array.of(1, 1, 1, 1, 0, 0),
      },
      { beta: 0.1 },
    );
    expectClose(out.kl, [0.5, -0.2, 1.0, 0.3, 0, 0], { atol: 1e-6, rtol: 1e-6 });
    expectClose(out.tokenRewards, [-0.05, 0.02, 1.9, -1.03, 0, 0], { atol: 1e-6, rtol: 1e-6 });
    expect(out.meanKl).toBeCloseTo((1.3 / 3 + 0.3) / 2, 6);
  });

  it('puts the reward at the last action token, after a hole', () => {
    const out = shapeRewards(
      {
        shape: { batch: 1, actions: 4 },
        rewards: Float32Array.of(1),
        logp: new Float32Array(4),
        refLogp: new Float32Array(4),
        mask: Uint8Array.of(1, 0, 1, 0),
      },
      { beta: 0.5, estimator: 'k3' },
    );
    expectClose(out.tokenRewards, [0, 0, 1, 0], { atol: 0, rtol: 0 });
  });

  it('tokenKl agrees with the tensor klEstimate for k1, k2, k3 (with clamp)', async () => {
    const n = 40;
    const s = RandomStream.of({ seed: 3, step: 0, actor: 'kl' });
    const logp = s.normal(n, -2, 1);
    const logq = s.normal(n, -2, 1);
    const mask = new Uint8Array(n).fill(1);
    for (const name of ['k1', 'k2', 'k3'] as const) {
      for (const clamp of [undefined, 0.5]) {
        const p = tf.tensor(logp);
        const q = tf.tensor(logq);
        const t = klEstimate(name, p, q, { clamp });
        const want = await t.data();
        tf.dispose([p, q, t]);
        expectClose(tokenKl(logp, logq, mask, name, clamp), want, {
          atol: 1e-6,
          rtol: 1e-5,
          what: `${name} clamp ${clamp}`,
        });
      }
    }
  });

  it('an unknown estimator lists the known ones', () => {
    try {
      tokenKl(new Float32Array(1), new Float32Array(1), new Uint8Array(1), 'k4' as never);
      throw new Error('expected a throw');
    } catch (e) {
      expect(hasCode(e, 'UNKNOWN_NAME')).toBe(true);
      expect((e as Error).message).toContain('k1, k2, k3');
    }
  });
});

describe('KL controllers', () => {
  it('FixedKLController keeps β', () => {
    const c = new FixedKLController(0.05);
    c.update(100, 1000);
    expect(c.value).toBe(0.05);
  });

  it('AdaptiveKLController follows Ziegler et al. by hand', () => {
    const c = new AdaptiveKLController(0.2, 6, 10000);
    // KL 9: e = clip(9/6 − 1 = 0.5, ±0.2) = 0.2; β = 0.2·(1 + 0.2·256/10000) = 0.201024
    c.update(9, 256);
    expect(c.value).toBeCloseTo(0.201024, 12);
    // KL 5.7: e = 5.7/6 − 1 = −0.05; β = 0.201024·(1 − 0.05·100/10000) = 0.200923488
    c.update(5.7, 100);
    expect(c.value).toBeCloseTo(0.200923488, 12);
    // KL 0: e = clip(−1) = −0.2; β = 0.200923488·(1 − 0.2·10000/10000) = 0.1607387904
    c.update(0, 10000);
    expect(c.value).toBeCloseTo(0.1607387904, 12);
  });

  it('refuses a non-positive target or horizon', () => {
    expect(() => new AdaptiveKLController(0.1, 0, 100)).toThrow(/'target'/);
    expect(() => new AdaptiveKLController(0.1, 6, 0)).toThrow(/'horizon'/);
  });
});
