import { beforeAll, describe, expect, it } from 'vitest';
import {
  aggLoss,
  POLICY_LOSSES,
  type PolicyLoss,
  type PolicyLossName,
  policyObjective,
} from '../../../src/algorithms/losses/index.js';
import { RL_TOPOLOGY } from '../../../src/algorithms/rl.js';
import { loadConfig } from '../../../src/config/load.js';
import type { RlConfig } from '../../../src/config/schema.js';
import * as tf from '../../../src/kernels/tf.js';
import { useBackend } from '../../helpers/backends.js';
import { evaluate, expectMatches, expectTroupeError } from './fixtures.js';

/*
 * The RL policy's objective looks its policy loss up in POLICY_LOSSES by the name `rl.policyLoss`
 * gives: hand-computed cases for the registered loss and for a toy loss registered here, in the
 * test only (adding a policy loss is one file plus one registry line).
 */

// One row of four actions, the last masked out: ratios 1.5, 0.5, 4 against old log-probs of 0.
const make = () => ({
  logp: tf.tensor2d([Math.log(1.5), Math.log(0.5), Math.log(4), Math.log(10)], [1, 4]),
  oldLogp: tf.zeros([1, 4]),
  advantages: tf.tensor2d([1, -1, -1, 5], [1, 4]),
  mask: tf.tensor2d([1, 1, 1, 0], [1, 4]),
  refLogp: tf.zeros([1, 4]),
});
const clip = { clipLow: 0.2, clipHigh: 0.2, aggMode: 'token-mean' as const, entropyCoef: 0 };

/** A valid RL config with `rl` set as given. */
const rlConfig = (algorithm: RlConfig['algorithm'], rl: Record<string, unknown>) =>
  loadConfig<RlConfig>(algorithm, {
    object: {
      output: 'unused',
      model: { init: { family: 'gpt2', hidden: 32, layers: 1, heads: 2 }, tokenizer: 'unused' },
      data: { train: 'unused.jsonl' },
      train: { steps: 1 },
      reward: { sources: [{ type: 'sentiment' }] },
      rl,
    },
  });

/** −mean over the masked tokens of Â · log π: plain REINFORCE, the toy entry. */
const toyLoss: PolicyLoss = (x, p) =>
  tf.tidy(() => {
    const loss = aggLoss(tf.neg(tf.mul(x.advantages, x.logp)), x.mask, p.aggMode);
    return { loss, metrics: { 'actor/pg_loss': tf.clone(loss) as tf.Scalar } };
  });

describe('policyObjective: the policy loss from POLICY_LOSSES', () => {
  beforeAll(() => useBackend('cpu'));

  it('vanilla (the default) is PPO clipped surrogate, by hand', async () => {
    // −min(r·Â, clip(r, 0.8, 1.2)·Â) per token: −min(1.5, 1.2) = −1.2, −min(−0.5, −0.8) = 0.8,
    // −min(−4, −1.2) = 4 → mean 1.2; the clipped term wins on the first two (clipfrac 2/3).
    const metrics = {
      'actor/pg_loss': 1.2,
      'actor/pg_clipfrac': 2 / 3,
      'actor/ppo_kl': -Math.log(3) / 3,
      'actor/pg_clipfrac_lower': 0,
    };
    for (const c of [clip, { ...clip, name: 'vanilla' as const }]) {
      expectMatches(await evaluate(make, (x) => policyObjective(x, c)), { loss: 1.2, metrics });
    }
  });

  it('a loss registered in the test only is used by name, with the KL term on top', async () => {
    const registry = POLICY_LOSSES as Map<string, PolicyLoss>;
    registry.set('toy', toyLoss);
    try {
      const name = 'toy' as PolicyLossName;
      // −(1·ln 1.5 − 1·ln 0.5 − 1·ln 4)/3
      const pg = -(Math.log(1.5) - Math.log(0.5) - Math.log(4)) / 3;
      const got = await evaluate(make, (x) => tf.tidy(() => policyObjective(x, { ...clip, name })));
      expectMatches(got, { loss: pg, metrics: { 'actor/pg_loss': pg } });
      // k3 with π_ref = 1: e^{−log π} + log π − 1 per token, mean over the three: coef 0.5.
      const k3 = (r: number) => 1 / r + Math.log(r) - 1;
      const kl = (k3(1.5) + k3(0.5) + k3(4)) / 3;
      const withKl = await evaluate(make, (x) =>
        tf.tidy(() =>
          policyObjective(x, { ...clip, name, klLoss: { coef: 0.5, estimator: 'k3' } }),
        ),
      );
      expectMatches(withKl, {
        loss: pg + 0.5 * kl,
        metrics: { 'actor/pg_loss': pg, 'actor/kl_loss': kl },
      });
    } finally {
      registry.delete('toy');
    }
  });

  it('an unknown name is refused, listing the registered ones', () => {
    const x = make();
    try {
      expectTroupeError(
        () => policyObjective(x, { ...clip, name: 'gspo' as PolicyLossName }),
        'UNKNOWN_NAME',
        'vanilla',
      );
    } finally {
      tf.dispose(Object.values(x));
    }
  });

  it('rl.policyLoss names it: default vanilla, every registered name accepted, handed to the policy', async () => {
    const grpo = await rlConfig('grpo', {});
    expect(grpo.rl.policyLoss).toBe('vanilla');
    for (const name of POLICY_LOSSES.keys()) {
      const c = await rlConfig('ppo', { policyLoss: name });
      const args = await RL_TOPOLOGY.policy.args(
        c,
        {
          model: { config: {} as never, seed: 0 },
          criticSource: undefined,
          rewardSources: [],
          resumeFrom: undefined,
        },
        { name: 'policy', replica: 0, replicas: 1 },
        undefined as never,
      );
      expect((args as { rl: { loss: { name: string } } }).rl.loss.name).toBe(name);
    }
    await expect(rlConfig('grpo', { policyLoss: 'gspo' })).rejects.toThrow(
      /rl\.policyLoss: unknown policy loss 'gspo'; known: vanilla/,
    );
    // The schema reads the registry: a loss registered later is a valid name at once.
    (POLICY_LOSSES as Map<string, PolicyLoss>).set('toy', toyLoss);
    try {
      expect((await rlConfig('grpo', { policyLoss: 'toy' })).rl.policyLoss).toBe('toy');
    } finally {
      (POLICY_LOSSES as Map<string, PolicyLoss>).delete('toy');
    }
  });
});
