import { beforeAll, describe, expect, it } from 'vitest';
import {
  dpoSigmoidLoss,
  ipoLoss,
  ktoLoss,
  orpoLoss,
  type PairedInputs,
  preferenceLoss,
  simpoLoss,
  type UnpairedInputs,
} from '../../../src/algorithms/losses/index.js';
import * as tf from '../../../src/kernels/tf.js';
import { BACKEND_CASES, expectClose, expectNoLeak, useBackend } from '../../helpers/backends.js';
import { dpoInputs, evaluate, f32 } from './fixtures.js';
import { log1mexp, refOrpo, sigmoid } from './reference.js';

/*
 * Hand-computed values on tiny batches (arithmetic in the comments, digits from a float64
 * calculator) and properties of the losses, on each backend. Argument errors are in
 * preference-errors.test.ts, float64-reference comparisons in preference-reference.test.ts.
 */

const TOL = { atol: 1e-6, rtol: 1e-5 };

const expectValues = (got: Record<string, number>, want: Record<string, number>) => {
  for (const [k, v] of Object.entries(want)) expectClose([got[k]], [v], { ...TOL, what: k });
};

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(
    `preference losses on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it('sigmoid (DPO): hand-computed loss and metrics', async () => {
        const got = await evaluate(
          () => dpoInputs(),
          (x) => dpoSigmoidLoss(x, { beta: 0.1 }),
        );
        // row 0: −log σ(0.2) = log(1 + e^−0.2) = 0.5981388693815918; row 1: −log σ(0) = log 2
        // mean = (0.5981388693815918 + 0.6931471805599453) / 2
        expectClose([got.loss], [0.6456430249707685], { ...TOL, what: 'loss' });
        expectValues(got.metrics, {
          'rewards/chosen': 0.05, // β·(1, 0) → mean 0.05
          'rewards/rejected': -0.05, // β·(−1, 0)
          'rewards/accuracies': 0.5, // 0.1 > −0.1 yes; 0 > 0 no (ties are wrong)
          'rewards/margins': 0.1, // mean(0.2, 0)
          'logps/chosen': -7.5, // mean(−10, −5)
          'logps/rejected': -9.5, // mean(−12, −7)
        });
      });

      it('sigmoid with label smoothing (cDPO): hand-computed', async () => {
        const got = await evaluate(
          () => dpoInputs(),
          (x) => dpoSigmoidLoss(x, { beta: 0.1, labelSmoothing: 0.1 }),
        );
        // row 0: 0.9·(−log σ(0.2)) + 0.1·(−log σ(−0.2)) = 0.9·0.598138869 + 0.1·0.798138869
        //        = 0.618138869 (= −log σ(0.2) + ε·βh); row 1: log 2 whatever ε
        expectClose([got.loss], [(0.6181388693815918 + Math.LN2) / 2], { ...TOL, what: 'loss' });
      });

      it('ipo: hand-computed on per-token means', async () => {
        // β = 0.5 → target 1/(2β) = 1.
        // row 0: |y_c| = 2, |y_r| = 4: ā_θ(c) = −4/2 = −2, ā_ref(c) = −6/2 = −3,
        //        ā_θ(r) = −8/4 = −2, ā_ref(r) = −4/4 = −1 → h̄ = (−2 + 3) − (−2 + 1) = 2 → (2 − 1)² = 1
        // row 1: |y| = 1: ā_θ(c) = −0.5, ā_ref(c) = −1, ā_θ(r) = ā_ref(r) = −1 → h̄ = 0.5 → 0.25
        const got = await evaluate(
          () => ({
            policyChosenLogps: f32([-4, -0.5]),
            policyRejectedLogps: f32([-8, -1]),
            refChosenLogps: f32([-6, -1]),
            refRejectedLogps: f32([-4, -1]),
            chosenLengths: tf.tensor1d([2, 1], 'int32'),
            rejectedLengths: tf.tensor1d([4, 1], 'int32'),
          }),
          (x) => ipoLoss(x, { beta: 0.5 }),
        );
        expectClose([got.loss], [0.625], { ...TOL, what: 'loss' }); // mean(1, 0.25)
        expectValues(got.metrics, {
          'rewards/chosen': 0.375, // β·(1, 0.5) → mean 0.375
          'rewards/rejected': -0.25, // β·(−1, 0)
          'rewards/accuracies': 1,
          'rewards/margins': 0.625, // mean(1, 0.25)
          'logps/chosen': -1.25, // mean(−2, −0.5): per-token, as TRL logs them for ipo
          'logps/rejected': -1.5, // mean(−2, −1)
        });
      });

      /*
       * SimPO fixture, β = 2, γ = 0.5:
       *   row 0: ā_c = −3/3 = −1, ā_r = −8/4 = −2 → z = 2·1 − 0.5 = 1.5
       *   row 1: ā_c = −2/1 = −2, ā_r = −2/2 = −1 → z = 2·(−1) − 0.5 = −2.5
       */
      const simpoInputs = (): PairedInputs => ({
        policyChosenLogps: f32([-3, -2]),
        policyRejectedLogps: f32([-8, -2]),
        chosenLengths: f32([3, 1]),
        rejectedLengths: f32([4, 2]),
      });

      it('simpo: hand-computed', async () => {
        const got = await evaluate(simpoInputs, (x) => simpoLoss(x, { beta: 2, gamma: 0.5 }));
        // −log σ(1.5) = 0.2014132779827524, −log σ(−2.5) = 2.5788897342925496 → mean 1.390151506
        expectClose([got.loss], [1.390151506137651], { ...TOL, what: 'loss' });
        expectValues(got.metrics, {
          'rewards/chosen': -3, // β·ā_c = (−2, −4)
          'rewards/rejected': -3, // β·ā_r = (−4, −2)
          'rewards/accuracies': 0.5, // −2 > −4 yes, −4 > −2 no
          'rewards/margins': 0, // mean(2, −2)
          'logps/chosen': -1.5, // mean(−1, −2)
          'logps/rejected': -1.5, // mean(−2, −1)
        });
        expect(got.metrics['loss/nll']).toBeUndefined();
      });

      it('simpo with cpoAlpha: adds α·NLL, NLL from the inputs or given', async () => {
        // NLL = −(−3 + −2) / (3 + 1) = 1.25 → 1.390151506 + 0.5·1.25 = 2.015151506
        const got = await evaluate(simpoInputs, (x) =>
          simpoLoss(x, { beta: 2, gamma: 0.5, cpoAlpha: 0.5 }),
        );
        expectClose([got.loss], [2.0151515061376513], { ...TOL, what: 'loss' });
        expectClose([got.metrics['loss/nll']], [1.25], { ...TOL, what: 'nll' });
        const given = await evaluate(
          () => ({ ...simpoInputs(), chosenNll: tf.scalar(2) }),
          (x) => simpoLoss(x, { beta: 2, gamma: 0.5, cpoAlpha: 0.5 }),
        );
        expectClose([given.loss], [1.390151506137651 + 1], { ...TOL, what: 'loss' });
      });

      it('orpo: hand-computed', async () => {
        // λ = 0.1. row 0: ā_c = −2/2 = −1, ā_r = −6/3 = −2;
        //   log odds(−1) = −1 − log(1 − e^−1) = −0.5413248546, log odds(−2) = −1.8545865421
        //   r = 1.3132616875, log σ(r) = −0.2381830264 (= log(odds_c/(odds_c + odds_r)))
        // row 1: ā_c = −1/2 = −0.5, ā_r = −2/4 = −0.5 → r = 0, log σ(0) = −log 2
        // mean log σ = −0.4656651035; NLL = −(−2 − 1)/(2 + 2) = 0.75
        // L = 0.75 − 0.1·(−0.4656651035) = 0.7965665103
        const got = await evaluate(
          () => ({
            policyChosenLogps: f32([-2, -1]),
            policyRejectedLogps: f32([-6, -2]),
            chosenLengths: f32([2, 2]),
            rejectedLengths: f32([3, 4]),
          }),
          (x) => orpoLoss(x, { beta: 0.1 }),
        );
        expectClose([got.loss], [0.7965665103486886], { ...TOL, what: 'loss' });
        expectValues(got.metrics, {
          'loss/nll': 0.75,
          'orpo/log_odds_ratio': -0.4656651034868868,
          'orpo/log_odds_chosen': 0.6566308437591114, // mean(1.3132616875, 0)
          'rewards/chosen': -0.075, // λ·mean(−1, −0.5)
          'rewards/rejected': -0.125, // λ·mean(−2, −0.5)
          'rewards/accuracies': 0.5, // −0.1 > −0.2 yes; −0.05 > −0.05 no
          'logps/chosen': -0.75,
          'logps/rejected': -1.25,
        });
      });

      /*
       * KTO fixture, β = 0.1, λ_D = 1, λ_U = 1.5:
       *   KL pairs: π_KL − ref_KL = (−3 + 4, −4 + 4) = (1, 0) → z0 = max(0, 0.5) = 0.5
       *   ρ = π − ref = (2, −1, 1), desirable = (1, 0, 0)
       */
      const ktoInputs = (
        kl: [number[], number[]] | number = [
          [-3, -4],
          [-4, -4],
        ],
      ): UnpairedInputs => ({
        policyLogps: f32([-8, -11, -9]),
        refLogps: f32([-10, -10, -10]),
        desirable: tf.tensor1d([true, false, false], 'bool'),
        ...(typeof kl === 'number'
          ? { kl: tf.scalar(kl) }
          : { policyKlLogps: f32(kl[0]), refKlLogps: f32(kl[1]) }),
      });

      it('kto: hand-computed', async () => {
        const got = await evaluate(
          () => ktoInputs(),
          (x) => ktoLoss(x, { beta: 0.1, undesirableWeight: 1.5 }),
        );
        // ℓ_0 = 1 − σ(0.1·(2 − 0.5)) = σ(−0.15) = 0.4625701547
        // ℓ_1 = 1.5·(1 − σ(0.1·(0.5 + 1))) = 1.5·σ(−0.15) = 0.6938552320
        // ℓ_2 = 1.5·(1 − σ(0.1·(0.5 − 1))) = 1.5·σ(0.05) = 0.7687460947
        // L = (0.4625701547 + 0.6938552320 + 0.7687460947) / 3 = 0.6417238271
        expectClose([got.loss], [0.6417238271223139], { ...TOL, what: 'loss' });
        expectValues(got.metrics, {
          'kto/kl': 0.5,
          'rewards/chosen': 0.2, // β·2
          'rewards/rejected': 0, // β·mean(−1, 1)
          'logps/chosen': -8,
          'logps/rejected': -10, // mean(−11, −9)
          'count/chosen': 1,
          'count/rejected': 2,
        });
      });

      it('kto: z0 is clamped at 0, and a precomputed kl gives the same loss', async () => {
        // KL pairs mean (−1 − 1)/2 = −1 → z0 = 0: ℓ_0 = σ(−0.2), ℓ_1 = σ(−0.1), ℓ_2 = σ(0.1)
        const want =
          (1 / (1 + Math.exp(0.2)) + 1 / (1 + Math.exp(0.1)) + 1 / (1 + Math.exp(-0.1))) / 3;
        const clamped = await evaluate(
          () =>
            ktoInputs([
              [-5, -5],
              [-4, -4],
            ]),
          (x) => ktoLoss(x, { beta: 0.1 }),
        );
        expectClose([clamped.loss], [want], { ...TOL, what: 'loss' });
        expect(clamped.metrics['kto/kl']).toBe(0);
        const given = await evaluate(
          () => ktoInputs(-1),
          (x) => ktoLoss(x, { beta: 0.1 }),
        );
        expectClose([given.loss], [want], { ...TOL, what: 'loss (given kl)' });
      });

      it('kto: no gradient flows through the KL reference point', async () => {
        await expectNoLeak(async () => {
          const x = ktoInputs();
          const [gPolicy, gKl] = tf.grads((p: tf.Tensor, k: tf.Tensor) => {
            const out = ktoLoss({ ...x, policyLogps: p, policyKlLogps: k }, { beta: 0.1 });
            return out.loss;
          })([x.policyLogps, x.policyKlLogps!]);
          expect(Array.from(await gKl.data())).toEqual([0, 0]);
          // d/dρ_0 of σ(β(z0 − ρ_0))/3 = −β·σ(−0.15)·σ(0.15)/3
          const s = 1 / (1 + Math.exp(0.15));
          expectClose([(await gPolicy.data())[0]], [(-0.1 * s * (1 - s)) / 3], TOL);
          tf.dispose([gPolicy, gKl, ...Object.values(x)]);
        });
      });

      it('DPO loss is log 2 when the policy equals the reference, for any β and ε', async () => {
        for (const [beta, labelSmoothing] of [
          [0.1, 0],
          [0.5, 0.2],
          [3, 0.5],
        ]) {
          const logps = [-3.5, -17, -0.25, -40];
          const got = await evaluate(
            () => ({
              policyChosenLogps: f32(logps),
              policyRejectedLogps: f32(logps.map((v) => v * 2)),
              refChosenLogps: f32(logps),
              refRejectedLogps: f32(logps.map((v) => v * 2)),
            }),
            (x) => dpoSigmoidLoss(x, { beta, labelSmoothing }),
          );
          expectClose([got.loss], [Math.LN2], { ...TOL, what: `β ${beta} ε ${labelSmoothing}` });
          expect(got.metrics['rewards/accuracies']).toBe(0);
          expect(got.metrics['rewards/margins']).toBe(0);
        }
      });

      it('cDPO with ε = 0 is DPO', async () => {
        const plain = await evaluate(
          () => dpoInputs(),
          (x) => dpoSigmoidLoss(x, { beta: 0.3 }),
        );
        const smoothed = await evaluate(
          () => dpoInputs(),
          (x) => dpoSigmoidLoss(x, { beta: 0.3, labelSmoothing: 0 }),
        );
        expect(smoothed).toEqual(plain);
      });

      it('rewards/accuracies counts pairs with chosen reward strictly above rejected', async () => {
        // rewards β·(π − ref): chosen (1, 0, −1, 2), rejected (0, 0, 1, −2) → 1, tie, no, 1 → 0.5
        const got = await evaluate(
          () => ({
            policyChosenLogps: f32([1, 0, -1, 2]),
            policyRejectedLogps: f32([0, 0, 1, -2]),
            refChosenLogps: f32([0, 0, 0, 0]),
            refRejectedLogps: f32([0, 0, 0, 0]),
          }),
          (x) => dpoSigmoidLoss(x, { beta: 1 }),
        );
        expect(got.metrics['rewards/accuracies']).toBe(0.5);
      });

      it('the registry calls the same functions', async () => {
        const direct = await evaluate(
          () => dpoInputs(),
          (x) => dpoSigmoidLoss(x, { beta: 0.1 }),
        );
        const named = await evaluate(
          () => dpoInputs(),
          (x) => preferenceLoss('sigmoid', x, { beta: 0.1 }),
        );
        expect(named).toEqual(direct);
        const kto = await evaluate(
          () => ktoInputs(),
          (x) => preferenceLoss('kto', x, { beta: 0.1 }),
        );
        expect(kto.metrics['kto/kl']).toBe(0.5);
      });

      it('orpo at mean log-probs of 0 and far below: loss, metrics and gradients by hand', async () => {
        // ā = 0 and −1e-9 are held at −1e-7 (gradient 0 through the odds there; TRL's formula
        // gives infinite log odds); ā = −20 is far in the log1p(−eˣ) branch.
        const [c, r, n, beta] = [[0, -80, -1e-9], [-80, 0, -3], [4, 4, 1], 0.1];
        const want = refOrpo({ pc: c, pr: r, nc: n, nr: n }, beta);
        // ∂L/∂c_b = −1/Σn (NLL) − (β/B)·(1 − σ(r_b))·LO′(ā_c)/n_b, ∂L/∂rej_b = +(β/B)·(1 −
        // σ(r_b))·LO′(ā_r)/n_b, with LO′(ā) = 1/(1 − e^ā) where ā is not held, else 0.
        const lo = (a: number) => Math.min(a, -1e-7) - log1mexp(Math.min(a, -1e-7));
        const dlo = (a: number) => (a > -1e-7 ? 0 : -1 / Math.expm1(a));
        const B = c.length;
        const total = n.reduce((x, y) => x + y, 0);
        const wantGc: number[] = [];
        const wantGr: number[] = [];
        for (let b = 0; b < B; b++) {
          const [ac, ar] = [c[b] / n[b], r[b] / n[b]];
          const w = (beta / B) * (1 - sigmoid(lo(ac) - lo(ar)));
          wantGc.push(-1 / total - (w * dlo(ac)) / n[b]);
          wantGr.push((w * dlo(ar)) / n[b]);
        }
        await expectNoLeak(async () => {
          const chosen = f32(c);
          const rejected = f32(r);
          const lengths = f32(n);
          const inputs = (cc: tf.Tensor, rr: tf.Tensor) => ({
            policyChosenLogps: cc,
            policyRejectedLogps: rr,
            chosenLengths: lengths,
            rejectedLengths: lengths,
          });
          const [gc, gr] = tf.grads(
            (cc: tf.Tensor, rr: tf.Tensor) => orpoLoss(inputs(cc, rr), { beta }).loss,
          )([chosen, rejected]);
          const out = orpoLoss(inputs(chosen, rejected), { beta });
          expectClose([(await out.loss.data())[0]], [want.loss], { ...TOL, what: 'loss' });
          const got: Record<string, number> = {};
          for (const [k, v] of Object.entries(out.metrics)) got[k] = (await v.data())[0];
          expectValues(got, want.metrics);
          expectClose(await gc.data(), wantGc, { ...TOL, what: '∂L/∂chosen' });
          expectClose(await gr.data(), wantGr, { ...TOL, what: '∂L/∂rejected' });
          expect(wantGc[0]).toBe(-1 / total); // held: only the NLL term
          tf.dispose([chosen, rejected, lengths, gc, gr, out.loss, ...Object.values(out.metrics)]);
        });
      });
    },
  );
}
