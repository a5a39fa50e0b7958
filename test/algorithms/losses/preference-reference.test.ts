import { beforeAll, describe, expect, it } from 'vitest';
import {
  log1mexp,
  type PairedInputs,
  type PreferenceParams,
  preferenceLoss,
} from '../../../src/algorithms/losses/index.js';
import * as tf from '../../../src/kernels/tf.js';
import {
  BACKEND_CASES,
  expectClose,
  expectNoLeak,
  read,
  useBackend,
} from '../../helpers/backends.js';
import { fdGradient } from '../../helpers/reference.js';
import { evaluate, expectMatches, f32, ints, normal, uniform } from './fixtures.js';
import * as ref from './reference.js';

/*
 * Each loss against its float64 plain-loop reference on seeded random batches, and tfjs
 * gradients with respect to the policy log-probs against central finite differences of the
 * reference (eps 1e-4 in float64: FD error ~1e-8, far below float32 noise).
 */

const B = 12;
const EPS = 1e-4;
const GRAD_TOL = { atol: 2e-6, rtol: 1e-3 };

// Summed log-probs of responses of 1..24 tokens, per-token means in (−2.05, −0.05): both sides
// of log1mexp's switch at −ln 2 (ORPO) and realistic DPO margins.
const nc = ints('nc', B, 1, 24);
const nr = ints('nr', B, 1, 24);
const sums = (purpose: string, n: Float64Array) => {
  const u = uniform(purpose, n.length);
  return Float64Array.from(n, (len, i) => Math.fround(-len * (0.05 + 2 * u[i])));
};
const pc = sums('pc', nc);
const pr = sums('pr', nr);
const rc = Float64Array.from(normal('rc', B, 0, 3), (d, i) => Math.fround(pc[i] + d));
const rr = Float64Array.from(normal('rr', B, 0, 3), (d, i) => Math.fround(pr[i] + d));

interface Case {
  name: string;
  params: PreferenceParams;
  reference: boolean;
  lengths: boolean;
  ref: (x: ref.RefPaired) => ref.RefOut;
}

const CASES: Case[] = [
  {
    name: 'sigmoid',
    params: { beta: 0.1 },
    reference: true,
    lengths: false,
    ref: (x) => ref.refDpo(x, 0.1),
  },
  {
    name: 'sigmoid',
    params: { beta: 0.5, labelSmoothing: 0.15 },
    reference: true,
    lengths: false,
    ref: (x) => ref.refDpo(x, 0.5, 0.15),
  },
  {
    name: 'ipo',
    params: { beta: 0.4 },
    reference: true,
    lengths: true,
    ref: (x) => ref.refIpo(x, 0.4),
  },
  {
    name: 'simpo',
    params: { beta: 2.5, gamma: 1.2, labelSmoothing: 0.1, cpoAlpha: 0.3 },
    reference: false,
    lengths: true,
    ref: (x) => ref.refSimpo(x, 2.5, 1.2, 0.1, 0.3),
  },
  {
    name: 'simpo',
    params: { beta: 2 },
    reference: false,
    lengths: true,
    ref: (x) => ref.refSimpo(x, 2),
  },
  {
    name: 'orpo',
    params: { beta: 0.2 },
    reference: false,
    lengths: true,
    ref: (x) => ref.refOrpo(x, 0.2),
  },
];

const label = (c: Case) => `${c.name} ${JSON.stringify(c.params)}`;

function pairedTensors(c: Case, policyChosen: tf.Tensor, policyRejected: tf.Tensor): PairedInputs {
  return {
    policyChosenLogps: policyChosen,
    policyRejectedLogps: policyRejected,
    ...(c.reference ? { refChosenLogps: f32(rc), refRejectedLogps: f32(rr) } : {}),
    ...(c.lengths ? { chosenLengths: f32(nc), rejectedLengths: f32(nr) } : {}),
  };
}

function refInputs(c: Case, x0: ArrayLike<number>, x1: ArrayLike<number>): ref.RefPaired {
  return {
    pc: x0,
    pr: x1,
    ...(c.reference ? { rc, rr } : {}),
    ...(c.lengths ? { nc, nr } : {}),
  };
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(
    `preference losses vs float64 reference on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it.each(CASES.map((c) => [label(c), c] as const))('%s: loss and metrics', async (_, c) => {
        const got = await evaluate(
          () => pairedTensors(c, f32(pc), f32(pr)),
          (x) => preferenceLoss(c.name, x, c.params),
        );
        expectMatches(got, c.ref(refInputs(c, pc, pr)), { atol: 1e-5, rtol: 1e-4 }, label(c));
      });

      it.each(CASES.map((c) => [label(c), c] as const))(
        '%s: gradient w.r.t. the policy log-probs',
        async (_, c) => {
          const got = await expectNoLeak(async () => {
            const xs = [f32(pc), f32(pr)];
            // Tensors made inside f (references, lengths, metrics) die in tf.grads' tidy.
            const grads = tf.grads(
              (a: tf.Tensor, b: tf.Tensor) =>
                preferenceLoss(c.name, pairedTensors(c, a, b), c.params).loss,
            )(xs);
            const out = await Promise.all(grads.map(read));
            tf.dispose([...grads, ...xs]);
            return out;
          });
          const objective = (x0: Float64Array, x1: Float64Array) =>
            Float64Array.of(c.ref(refInputs(c, x0, x1)).loss);
          for (const which of [0, 1]) {
            const want = fdGradient(
              objective,
              [pc.slice(), pr.slice()],
              Float64Array.of(1),
              which,
              EPS,
            );
            expectClose(got[which], want, { ...GRAD_TOL, what: `${label(c)}: d/dx${which}` });
          }
        },
      );

      it('kto: loss, metrics and gradient against the reference', async () => {
        const N = 10;
        const policy = normal('kto policy', N, -30, 6);
        const reference = Float64Array.from(normal('kto ref', N, 0, 4), (d, i) =>
          Math.fround(policy[i] + d),
        );
        const desirable = Float64Array.from(uniform('kto label', N), (u) => (u < 0.4 ? 1 : 0));
        const policyKl = normal('kto pkl', N, -31, 6);
        const refKl = Float64Array.from(normal('kto rkl', N, 0.3, 1), (d, i) =>
          Math.fround(policyKl[i] - d),
        );
        const params = { beta: 0.2, desirableWeight: 1.3, undesirableWeight: 0.8 };
        const want = (p: ArrayLike<number>) =>
          ref.refKto({ policy: p, ref: reference, desirable, policyKl, refKl }, 0.2, 1.3, 0.8);
        const inputs = (p: tf.Tensor) => ({
          policyLogps: p,
          refLogps: f32(reference),
          desirable: tf.tensor1d(Int32Array.from(desirable), 'int32'),
          policyKlLogps: f32(policyKl),
          refKlLogps: f32(refKl),
        });
        const got = await evaluate(
          () => inputs(f32(policy)),
          (x) => preferenceLoss('kto', x, params),
        );
        expect(want(policy).metrics['kto/kl']).toBeGreaterThan(0);
        expectMatches(got, want(policy), { atol: 1e-5, rtol: 1e-4 }, 'kto');

        const grad = await expectNoLeak(async () => {
          const p = f32(policy);
          const [g] = tf.grads((a: tf.Tensor) => preferenceLoss('kto', inputs(a), params).loss)([
            p,
          ]);
          const out = await read(g);
          tf.dispose([g, p]);
          return out;
        });
        const fd = fdGradient(
          (p) => Float64Array.of(want(p).loss),
          [policy.slice()],
          Float64Array.of(1),
          0,
          EPS,
        );
        expectClose(grad, fd, { ...GRAD_TOL, what: 'kto: d/dpolicyLogps' });
      });

      it('log1mexp matches float64 from −1e-7 to −80', async () => {
        const xs = [
          -1e-7,
          -1e-4,
          -0.01,
          -0.1 + 1e-4,
          -0.1 - 1e-4,
          -0.5,
          -Math.LN2 + 1e-3,
          -Math.LN2 - 1e-3,
          -2,
          -20,
          -80,
        ];
        const got = await expectNoLeak(async () => {
          // 2,048 copies: WebGPU runs the ops of small uploaded tensors on the CPU, not in shaders.
          const x = tf.tidy(() => tf.tile(f32(xs), [2048]));
          const y = log1mexp(x);
          const out = (await read(y)).subarray(0, xs.length);
          tf.dispose([x, y]);
          return out;
        });
        const want = xs.map((v) => ref.log1mexp(Math.fround(v)));
        expectClose(got, want, { atol: 1e-7, rtol: 1e-5, what: 'log1mexp' });
      });
    },
  );
}
