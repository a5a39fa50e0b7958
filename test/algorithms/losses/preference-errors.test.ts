import { beforeAll, describe, expect, it } from 'vitest';
import {
  dpoSigmoidLoss,
  ipoLoss,
  ktoLoss,
  needsReference,
  PREFERENCE_LOSSES,
  preferenceLoss,
  simpoLoss,
} from '../../../src/algorithms/losses/index.js';
import * as tf from '../../../src/kernels/tf.js';
import { useBackend } from '../../helpers/backends.js';
import { dpoInputs, expectTroupeError, f32, withInputs } from './fixtures.js';

/*
 * The preference-loss registry and every argument error: each names the argument or parameter
 * and says what would be accepted. Validation runs before any tensor is made, so nothing leaks.
 */

describe('preference loss registry and argument errors', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('lists the losses and which need a reference model', () => {
    expect([...PREFERENCE_LOSSES.keys()]).toEqual(['sigmoid', 'ipo', 'simpo', 'orpo', 'kto']);
    const refs = [...PREFERENCE_LOSSES.keys()].map((n) => [n, needsReference(n)]);
    expect(refs).toEqual([
      ['sigmoid', true],
      ['ipo', true],
      ['simpo', false],
      ['orpo', false],
      ['kto', true],
    ]);
    expect(PREFERENCE_LOSSES.get('kto')!.layout).toBe('unpaired');
  });

  it('an unknown loss name lists the known ones', async () => {
    await withInputs(
      () => dpoInputs(),
      (x) => {
        expectTroupeError(
          () => preferenceLoss('dpo', x, { beta: 0.1 }),
          'UNKNOWN_NAME',
          "Unknown preference loss 'dpo'. Known: sigmoid, ipo, simpo, orpo, kto.",
        );
      },
    );
    expectTroupeError(() => needsReference('rlhf'), 'UNKNOWN_NAME', 'Known: sigmoid, ipo');
  });

  it('reference-based losses need references; reference-free losses refuse them', async () => {
    await withInputs(
      () => ({ policyChosenLogps: f32([-1]), policyRejectedLogps: f32([-2]) }),
      (x) => {
        expectTroupeError(
          () => dpoSigmoidLoss(x, { beta: 0.1 }),
          'BAD_ARGUMENT',
          "'sigmoid' needs 'refChosenLogps' and 'refRejectedLogps'",
        );
      },
    );
    await withInputs(
      () => dpoInputs({ chosenLengths: () => f32([1, 1]), rejectedLengths: () => f32([1, 1]) }),
      (x) => {
        for (const name of ['simpo', 'orpo']) {
          expectTroupeError(
            () => preferenceLoss(name, x, { beta: 0.1 }),
            'BAD_ARGUMENT',
            `'${name}' does not take 'refChosenLogps' or 'refRejectedLogps'`,
            'reference-free',
          );
        }
      },
    );
  });

  it('length-normalised losses need lengths; the others refuse them', async () => {
    await withInputs(
      () => dpoInputs(),
      (x) => {
        expectTroupeError(
          () => ipoLoss(x, { beta: 0.1 }),
          'BAD_ARGUMENT',
          "'ipo' needs 'chosenLengths' and 'rejectedLengths'",
          'per-token mean',
        );
      },
    );
    await withInputs(
      () => dpoInputs({ chosenLengths: () => f32([1, 1]) }),
      (x) => {
        expectTroupeError(
          () => dpoSigmoidLoss(x, { beta: 0.1 }),
          'BAD_ARGUMENT',
          "'sigmoid' does not take 'chosenLengths'",
        );
      },
    );
  });

  it('chosenNll is refused where nothing reads it', async () => {
    await withInputs(
      () => ({
        policyChosenLogps: f32([-1]),
        policyRejectedLogps: f32([-2]),
        chosenLengths: f32([1]),
        rejectedLengths: f32([1]),
        chosenNll: tf.scalar(1),
      }),
      (x) => {
        expectTroupeError(
          () => simpoLoss(x, { beta: 2 }),
          'BAD_ARGUMENT',
          "'simpo' does not take 'chosenNll'",
        );
      },
    );
  });

  it('inputs of the wrong layout are refused', async () => {
    await withInputs(
      () => ({
        policyLogps: f32([-1]),
        refLogps: f32([-1]),
        desirable: f32([1]),
        kl: tf.scalar(0),
      }),
      (x) => {
        expectTroupeError(
          () => preferenceLoss('sigmoid', x, { beta: 0.1 }),
          'BAD_ARGUMENT',
          "'sigmoid' takes paired inputs",
        );
      },
    );
    await withInputs(
      () => dpoInputs(),
      (x) => {
        expectTroupeError(
          () => preferenceLoss('kto', x, { beta: 0.1 }),
          'BAD_ARGUMENT',
          "'kto' takes unpaired inputs",
        );
      },
    );
  });

  it('kto needs exactly one source for z0', async () => {
    await withInputs(
      () => ({ policyLogps: f32([-1]), refLogps: f32([-1]), desirable: f32([1]) }),
      (x) => {
        expectTroupeError(() => ktoLoss(x, { beta: 0.1 }), 'BAD_ARGUMENT', "pass 'policyKlLogps'");
      },
    );
    await withInputs(
      () => ({
        policyLogps: f32([-1]),
        refLogps: f32([-1]),
        desirable: f32([1]),
        kl: tf.scalar(0),
        policyKlLogps: f32([-1]),
        refKlLogps: f32([-1]),
      }),
      (x) => {
        expectTroupeError(() => ktoLoss(x, { beta: 0.1 }), 'BAD_ARGUMENT', 'not both');
      },
    );
  });

  it('ragged, non-vector or non-float inputs are refused naming the argument', async () => {
    await withInputs(
      () => dpoInputs({ refRejectedLogps: () => f32([-1, -2, -3]) }),
      (x) => {
        expectTroupeError(
          () => dpoSigmoidLoss(x, { beta: 0.1 }),
          'SHAPE_MISMATCH',
          "'refRejectedLogps' passed to 'sigmoid' must be a vector [B] of the length of " +
            "'policyChosenLogps' [2]; got [3]",
        );
      },
    );
    await withInputs(
      () => dpoInputs({ policyChosenLogps: () => f32([-1, -2], [2, 1]) }),
      (x) => {
        expectTroupeError(() => dpoSigmoidLoss(x, { beta: 0.1 }), 'SHAPE_MISMATCH', 'got [2,1]');
      },
    );
    await withInputs(
      () => dpoInputs({ policyRejectedLogps: () => tf.tensor1d([-1, -2], 'int32') }),
      (x) => {
        expectTroupeError(
          () => dpoSigmoidLoss(x, { beta: 0.1 }),
          'BAD_ARGUMENT',
          "'policyRejectedLogps' passed to 'sigmoid' must be float32; got int32",
        );
      },
    );
  });

  it('parameters: unknown, unread and out-of-range ones are refused', async () => {
    await withInputs(
      () => dpoInputs(),
      (x) => {
        expectTroupeError(
          () => dpoSigmoidLoss(x, { beta: 0.1, simpoGamma: 1 } as never),
          'BAD_ARGUMENT',
          "unknown parameter 'simpoGamma'. Known: beta, labelSmoothing, gamma, cpoAlpha",
        );
        expectTroupeError(
          () => dpoSigmoidLoss(x, { beta: 0.1, gamma: 1 }),
          'BAD_ARGUMENT',
          "'sigmoid': does not read 'gamma'; it reads beta, labelSmoothing",
        );
        expectTroupeError(() => dpoSigmoidLoss(x, { beta: 0 }), 'BAD_ARGUMENT', "'beta' must be");
        expectTroupeError(
          () => dpoSigmoidLoss(x, { beta: 0.1, labelSmoothing: 0.7 }),
          'BAD_ARGUMENT',
          "'labelSmoothing' must be a number in [0, 0.5]; got 0.7",
        );
        expectTroupeError(
          () => dpoSigmoidLoss(x, {} as never),
          'BAD_ARGUMENT',
          "'beta' is required",
        );
      },
    );
  });
});
