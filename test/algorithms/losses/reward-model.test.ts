import { beforeAll, describe, expect, it } from 'vitest';
import { bradleyTerryLoss } from '../../../src/algorithms/losses/index.js';
import * as tf from '../../../src/kernels/tf.js';
import {
  BACKEND_CASES,
  expectClose,
  expectNoLeak,
  read,
  useBackend,
} from '../../helpers/backends.js';
import { fdGradient } from '../../helpers/reference.js';
import { evaluate, expectMatches, expectTroupeError, f32, normal } from './fixtures.js';
import { refBradleyTerry } from './reference.js';

const TOL = { atol: 1e-6, rtol: 1e-5 };

/*
 * r_c = (2, 0, 1), r_r = (1, 1, 1), m = (0.5, 0, 0):
 *   z = r_c − r_r − m = (0.5, −1, 0)
 *   −log σ(z) = (0.4740769842, 1.3132616875, 0.6931471806) → mean 0.8268286174
 */
const fixture = (withMargin = true) => ({
  chosenRewards: f32([2, 0, 1]),
  rejectedRewards: f32([1, 1, 1]),
  ...(withMargin ? { margin: f32([0.5, 0, 0]) } : {}),
});

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(
    `reward-model loss on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it('Bradley–Terry with margins: hand-computed loss and metrics', async () => {
        const got = await evaluate(fixture, (x) => bradleyTerryLoss(x));
        expectClose([got.loss], [0.8268286174194249], { ...TOL, what: 'loss' });
        expect(got.metrics).toEqual({
          'rm/accuracy': expect.closeTo(1 / 3, 6), // 2 > 1 yes; 0 > 1 no; 1 > 1 no (tie)
          'rm/chosen_score': 1, // mean(2, 0, 1)
          'rm/rejected_score': 1,
          'rm/margin': 0, // mean(1, −1, 0): the margin m is not subtracted here
        });
      });

      it('centerRewardsCoefficient adds c·mean((r_c + r_r)²)', async () => {
        // (r_c + r_r)² = (9, 1, 4) → mean 14/3; c = 0.01 → +0.0466666667
        const got = await evaluate(fixture, (x) =>
          bradleyTerryLoss(x, { centerRewardsCoefficient: 0.01 }),
        );
        expectClose([got.loss], [0.8268286174194249 + 0.14 / 3], { ...TOL, what: 'loss' });
        expectClose([got.metrics['rm/center_loss']], [0.14 / 3], { ...TOL, what: 'center' });
      });

      it('without margins: −log σ(r_c − r_r)', async () => {
        // z = (1, −1, 0): (0.3132616875 + 1.3132616875 + 0.6931471806) / 3
        const got = await evaluate(
          () => fixture(false),
          (x) => bradleyTerryLoss(x),
        );
        expectClose([got.loss], [(0.31326168751822286 + 1.3132616875182228 + Math.LN2) / 3], TOL);
      });

      it('matches the float64 reference, loss and gradients', async () => {
        const B = 16;
        const chosen = normal('rm chosen', B, 0.5, 2);
        const rejected = normal('rm rejected', B, 0, 2);
        const margin = Float64Array.from(normal('rm margin', B, 0.3, 0.2), Math.abs);
        const c = 0.05;
        const got = await evaluate(
          () => ({
            chosenRewards: f32(chosen),
            rejectedRewards: f32(rejected),
            margin: f32(margin),
          }),
          (x) => bradleyTerryLoss(x, { centerRewardsCoefficient: c }),
        );
        expectMatches(got, refBradleyTerry(chosen, rejected, margin, c), {}, 'bradleyTerry');

        const grads = await expectNoLeak(async () => {
          const xs = [f32(chosen), f32(rejected)];
          const m = f32(margin);
          const g = tf.grads(
            (a: tf.Tensor, b: tf.Tensor) =>
              bradleyTerryLoss(
                { chosenRewards: a, rejectedRewards: b, margin: m },
                { centerRewardsCoefficient: c },
              ).loss,
          )(xs);
          const out = await Promise.all(g.map(read));
          tf.dispose([...g, ...xs, m]);
          return out;
        });
        const f = (a: Float64Array, b: Float64Array) =>
          Float64Array.of(refBradleyTerry(a, b, margin, c).loss);
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
      });
    },
  );
}

describe('reward-model loss argument errors', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('refuses ragged rows, unknown parameters and a negative coefficient', async () => {
    await expectNoLeak(() => {
      const x = { chosenRewards: f32([1, 2]), rejectedRewards: f32([1, 2, 3]) };
      expectTroupeError(
        () => bradleyTerryLoss(x),
        'SHAPE_MISMATCH',
        "'rejectedRewards' passed to 'bradleyTerryLoss' must be a vector [B]",
      );
      const y = fixture(false);
      expectTroupeError(
        () => bradleyTerryLoss(y, { centerRewards: 0.01 } as never),
        'BAD_ARGUMENT',
        "unknown parameter 'centerRewards'. Known: centerRewardsCoefficient.",
      );
      expectTroupeError(
        () => bradleyTerryLoss(y, { centerRewardsCoefficient: -1 }),
        'BAD_ARGUMENT',
        "'centerRewardsCoefficient' must be a non-negative finite number; got -1",
      );
      tf.dispose([...Object.values(x), ...Object.values(y)]);
    });
  });
});
