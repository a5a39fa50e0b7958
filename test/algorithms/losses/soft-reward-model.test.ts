import { beforeAll, describe, expect, it } from 'vitest';
import { bradleyTerryLoss } from '../../../src/algorithms/losses/index.js';
import { rewardModelObjective } from '../../../src/algorithms/losses/objectives.js';
import { REWARD_MODEL_LOSSES } from '../../../src/algorithms/losses/reward-model.js';
import { softBradleyTerryLoss } from '../../../src/algorithms/losses/soft-reward-model.js';
import * as tf from '../../../src/kernels/tf.js';
import {
  BACKEND_CASES,
  expectClose,
  expectNoLeak,
  read,
  useBackend,
} from '../../helpers/backends.js';
import { fdGradient } from '../../helpers/reference.js';
import { evaluate, expectMatches, expectTroupeError, f32, normal, uniform } from './fixtures.js';
import { logSigmoid } from './reference.js';

const TOL = { atol: 1e-6, rtol: 1e-5 };

/**
 * Float64 plain loop of the soft-target Bradley–Terry loss, written from its formula:
 * mean_b −[p log σ(r_c − r_r) + (1 − p) log σ(r_r − r_c)] (+ c·mean (r_c + r_r)²).
 */
function refSoftBradleyTerry(
  chosen: ArrayLike<number>,
  rejected: ArrayLike<number>,
  prob: ArrayLike<number>,
  c?: number,
) {
  const B = chosen.length;
  let loss = 0;
  let acc = 0;
  let margin = 0;
  let entropy = 0;
  let center = 0;
  let cs = 0;
  let rs = 0;
  let ps = 0;
  for (let b = 0; b < B; b++) {
    const d = chosen[b] - rejected[b];
    const p = prob[b];
    loss += -(p * logSigmoid(d) + (1 - p) * logSigmoid(-d));
    acc += chosen[b] > rejected[b] ? 1 : 0;
    margin += d;
    entropy += -(p > 0 ? p * Math.log(p) : 0) - (p < 1 ? (1 - p) * Math.log(1 - p) : 0);
    center += (chosen[b] + rejected[b]) ** 2;
    cs += chosen[b];
    rs += rejected[b];
    ps += p;
  }
  const metrics: Record<string, number> = {
    'rm/accuracy': acc / B,
    'rm/chosen_score': cs / B,
    'rm/rejected_score': rs / B,
    'rm/margin': margin / B,
    'rm/label_mean': ps / B,
    'rm/label_entropy': entropy / B,
  };
  let total = loss / B;
  if (c !== undefined) {
    metrics['rm/center_loss'] = (c * center) / B;
    total += metrics['rm/center_loss'];
  }
  return { loss: total, metrics };
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(
    `soft-label reward-model loss on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it('hand-computed: r_c (2, 0, 1), r_r (1, 1, 1), p (0.8, 0.5, 1)', async () => {
        // d = (1, −1, 0); 0.8·softplus(−1) + 0.2·softplus(1) = 0.5132616875,
        // 0.5·(softplus(1) + softplus(−1)) = 0.8132616875, 1·ln 2 = 0.6931471806 → mean 0.6732235185
        const got = await evaluate(
          () => ({
            chosenRewards: f32([2, 0, 1]),
            rejectedRewards: f32([1, 1, 1]),
            chosenProb: f32([0.8, 0.5, 1]),
          }),
          (x) => softBradleyTerryLoss(x),
        );
        expectClose([got.loss], [0.6732235185321302], { ...TOL, what: 'loss' });
        expect(got.metrics['rm/accuracy']).toBeCloseTo(1 / 3, 6);
        expect(got.metrics['rm/label_mean']).toBeCloseTo(2.3 / 3, 6);
        // H(0.8) = 0.5004024235, H(0.5) = ln 2, H(1) = 0 → mean 0.3978498680
        expectClose([got.metrics['rm/label_entropy']], [0.3978498680327111], TOL);
      });

      it('with every label 1 it is Bradley–Terry', async () => {
        const chosen = normal('soft bt eq chosen', 8, 0.2, 1.5);
        const rejected = normal('soft bt eq rejected', 8, 0, 1.5);
        const soft = await evaluate(
          () => ({
            chosenRewards: f32(chosen),
            rejectedRewards: f32(rejected),
            chosenProb: f32(new Array(8).fill(1)),
          }),
          (x) => softBradleyTerryLoss(x),
        );
        const hard = await evaluate(
          () => ({ chosenRewards: f32(chosen), rejectedRewards: f32(rejected) }),
          (x) => bradleyTerryLoss(x),
        );
        expectClose([soft.loss], [hard.loss], TOL);
      });

      it('matches the float64 reference, loss and finite-difference gradients', async () => {
        const B = 16;
        const chosen = normal('soft rm chosen', B, 0.5, 2);
        const rejected = normal('soft rm rejected', B, 0, 2);
        // Labels over [0, 1], two of them at the ends (log 0 must not appear).
        const prob = uniform('soft rm prob', B);
        prob[0] = 0;
        prob[1] = 1;
        const c = 0.05;
        const got = await evaluate(
          () => ({
            chosenRewards: f32(chosen),
            rejectedRewards: f32(rejected),
            chosenProb: f32(prob),
          }),
          (x) => softBradleyTerryLoss(x, { centerRewardsCoefficient: c }),
        );
        expectMatches(got, refSoftBradleyTerry(chosen, rejected, prob, c), {}, 'softBradleyTerry');

        const grads = await expectNoLeak(async () => {
          const xs = [f32(chosen), f32(rejected)];
          const p = f32(prob);
          const g = tf.grads(
            (a: tf.Tensor, b: tf.Tensor) =>
              softBradleyTerryLoss(
                { chosenRewards: a, rejectedRewards: b, chosenProb: p },
                { centerRewardsCoefficient: c },
              ).loss,
          )(xs);
          const out = await Promise.all(g.map(read));
          tf.dispose([...g, ...xs, p]);
          return out;
        });
        const f = (a: Float64Array, b: Float64Array) =>
          Float64Array.of(refSoftBradleyTerry(a, b, prob, c).loss);
        for (const which of [0, 1]) {
          const want = fdGradient(
            f,
            [chosen.slice(), rejected.slice()],
            Float64Array.of(1),
            which,
            1e-4,
          );
          expectClose(grads[which], want, { atol: 2e-6, rtol: 1e-3, what: `d/dx${which}` });
        }
        // The analytic gradient of each pair, d L / d r_c = (σ(d) − p) / B, as a third check.
        const analytic = Float64Array.from(
          chosen,
          (x, b) =>
            (1 / (1 + Math.exp(-(x - rejected[b]))) - prob[b]) / B +
            (2 * c * (x + rejected[b])) / B,
        );
        expectClose(grads[0], analytic, { atol: 1e-6, rtol: 1e-4, what: 'analytic d/dr_c' });
      });
    },
  );
}

describe('reward-model loss registry', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('rewardModelObjective picks the soft loss by name; a row without a label is p = 1', async () => {
    expect([...REWARD_MODEL_LOSSES.keys()]).toEqual(['bradley-terry', 'soft-bradley-terry']);
    const scores = [2, 0, 1, 1, 1, 1]; // chosen (2, 0, 1), rejected (1, 1, 1)
    const soft = await evaluate(
      () => ({ s: f32(scores) }),
      ({ s }) =>
        tf.tidy(() =>
          rewardModelObjective(s, { loss: 'soft-bradley-terry' }, Float32Array.of(0.8, 0.5, 1)),
        ),
    );
    expectClose([soft.loss], [0.6732235185321302], TOL);
    const unlabelled = await evaluate(
      () => ({ s: f32(scores) }),
      ({ s }) => tf.tidy(() => rewardModelObjective(s, { loss: 'soft-bradley-terry' })),
    );
    const hard = await evaluate(
      () => ({ s: f32(scores) }),
      ({ s }) => tf.tidy(() => rewardModelObjective(s, {})),
    );
    expectClose([unlabelled.loss], [hard.loss], TOL);
  });

  it('refuses an unknown loss (listing the known ones), a margin, ragged labels', async () => {
    await expectNoLeak(() => {
      const s = f32([1, 2, 3, 4]);
      expectTroupeError(
        () => tf.tidy(() => rewardModelObjective(s, { loss: 'hinge' })),
        'UNKNOWN_NAME',
        "Unknown reward-model loss 'hinge'. Known: bradley-terry, soft-bradley-terry.",
      );
      expectTroupeError(
        () => tf.tidy(() => rewardModelObjective(s, { loss: 'soft-bradley-terry', margin: 0.5 })),
        'BAD_ARGUMENT',
        'takes soft labels, not margins',
      );
      expectTroupeError(
        () =>
          tf.tidy(() =>
            rewardModelObjective(s, { loss: 'soft-bradley-terry' }, Float32Array.of(1, 1, 1)),
          ),
        'SHAPE_MISMATCH',
        "'chosenProb' passed to 'softBradleyTerryLoss' must be a vector [B]",
      );
      s.dispose();
    });
  });
});
