import { beforeAll, describe, expect, it } from 'vitest';
import {
  type AggMode,
  aggLoss,
  entropyBonus,
  type PolicyLossParams,
  policyLoss,
  ppoPolicyLoss,
  valueLoss,
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
import { evaluate, expectMatches, expectTroupeError, normal, uniform } from './fixtures.js';
import type { RefOut } from './reference.js';

/*
 * Hand-computed cases, float64 plain-loop references (written from verl core_algos.py) on seeded
 * inputs for each loss and each aggregation mode, and tfjs gradients w.r.t. logp / values against
 * central finite differences of the reference.
 */

const B = 5;
const A = 7;
const EPS = 1e-4;
const GRAD_TOL = { atol: 2e-6, rtol: 2e-3 };
const MODES: AggMode[] = [
  'token-mean',
  'seq-mean-token-sum',
  'seq-mean-token-mean',
  'seq-mean-token-sum-norm',
];
const MAX_LEN = 10;

const m2 = (data: ArrayLike<number>, rows = B, cols = A) =>
  tf.tensor2d(Float32Array.from(data), [rows, cols]);

// Ragged right-padded mask with an empty row (row 2).
const lens = [7, 3, 0, 5, 1];
const maskData = Float64Array.from({ length: B * A }, (_, i) =>
  i % A < lens[Math.floor(i / A)] ? 1 : 0,
);
const oldLogp = normal('ppo old', B * A, -1.5, 0.5);
const logp = Float64Array.from(normal('ppo delta', B * A, 0, 0.3), (d, i) =>
  Math.fround(oldLogp[i] + d),
);
const adv = normal('ppo adv', B * A);
const oldValues = normal('ppo v old', B * A);
const values = Float64Array.from(normal('ppo v delta', B * A, 0, 0.3), (d, i) =>
  Math.fround(oldValues[i] + d),
);
const returns = normal('ppo returns', B * A);
const entropy = Float64Array.from(uniform('ppo entropy', B * A), (u) => Math.fround(3 * u));

// ---- references -------------------------------------------------------------------------------

type Arr = ArrayLike<number>;

function refAgg(l: Arr, m: Arr, mode: AggMode, maxLen = A): number {
  const sums: number[] = [];
  const counts: number[] = [];
  for (let b = 0; b < B; b++) {
    let s = 0;
    let n = 0;
    for (let t = 0; t < A; t++) {
      s += l[b * A + t] * m[b * A + t];
      n += m[b * A + t];
    }
    sums.push(s);
    counts.push(n);
  }
  const total = sums.reduce((a, x) => a + x, 0);
  const tokens = counts.reduce((a, x) => a + x, 0);
  if (mode === 'token-mean') return total / tokens;
  if (mode === 'seq-mean-token-sum') return total / B;
  if (mode === 'seq-mean-token-mean') {
    return sums.reduce((a, s, b) => a + (counts[b] ? s / counts[b] : 0), 0) / B;
  }
  return total / B / maxLen;
}

const tokenMean = (x: Arr, m: Arr) => refAgg(x, m, 'token-mean');

function refPolicy(lp: Arr, p: PolicyLossParams): RefOut {
  const n = B * A;
  const loss = new Float64Array(n);
  const clipped = new Float64Array(n);
  const lower = new Float64Array(n);
  const negKl = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const logRatio = Math.min(20, Math.max(-20, lp[i] - oldLogp[i]));
    const ratio = Math.exp(logRatio);
    const l1 = -adv[i] * ratio;
    const l2 = -adv[i] * Math.min(1 + p.clipHigh, Math.max(1 - p.clipLow, ratio));
    let l = Math.max(l1, l2);
    clipped[i] = l2 > l1 ? 1 : 0;
    if (p.dualClip !== undefined && adv[i] < 0) {
      const l3 = -adv[i] * p.dualClip;
      lower[i] = l > l3 ? 1 : 0;
      l = Math.min(l, l3);
    }
    loss[i] = l;
    negKl[i] = -logRatio;
  }
  const L = refAgg(loss, maskData, p.aggMode, p.maxLength);
  return {
    loss: L,
    metrics: {
      'actor/pg_loss': L,
      'actor/pg_clipfrac': tokenMean(clipped, maskData),
      'actor/ppo_kl': tokenMean(negKl, maskData),
      'actor/pg_clipfrac_lower': tokenMean(lower, maskData),
    },
  };
}

function refValue(v: Arr, clip: number | undefined, mode: AggMode, maxLen?: number): RefOut {
  const n = B * A;
  const loss = new Float64Array(n);
  const clipped = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const l1 = (v[i] - returns[i]) ** 2;
    if (clip === undefined) {
      loss[i] = l1;
      continue;
    }
    const vc = oldValues[i] + Math.min(clip, Math.max(-clip, v[i] - oldValues[i]));
    const l2 = (vc - returns[i]) ** 2;
    loss[i] = Math.max(l1, l2);
    clipped[i] = l2 > l1 ? 1 : 0;
  }
  const L = 0.5 * refAgg(loss, maskData, mode, maxLen);
  return {
    loss: L,
    metrics: { 'critic/vf_loss': L, 'critic/vf_clipfrac': tokenMean(clipped, maskData) },
  };
}

const POLICY_CASES: PolicyLossParams[] = [
  ...MODES.map((aggMode) => ({ clipLow: 0.2, clipHigh: 0.2, aggMode, maxLength: MAX_LEN })),
  { clipLow: 0.1, clipHigh: 0.28, dualClip: 1.15, aggMode: 'token-mean' },
  { clipLow: 0.2, clipHigh: 0.3, dualClip: 1.3, aggMode: 'seq-mean-token-mean' },
];

const policyInputs = (lp: tf.Tensor) => ({
  logp: lp,
  oldLogp: m2(oldLogp),
  advantages: m2(adv),
  mask: m2(maskData),
});

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`ppo losses on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it('aggLoss by hand, every mode', async () => {
      // ℓ = [[1, 2, 3], [4, 5, 6]], m = [[1, 1, 0], [1, 0, 0]]: row sums 3 and 4, counts 2 and 1.
      //   token-mean               (1 + 2 + 4)/3 = 7/3
      //   seq-mean-token-sum       (3 + 4)/2 = 3.5
      //   seq-mean-token-mean      (3/2 + 4/1)/2 = 2.75
      //   seq-mean-token-sum-norm  (3 + 4)/2/4 = 0.875   (L_max = 4)
      const want: Record<AggMode, number> = {
        'token-mean': 7 / 3,
        'seq-mean-token-sum': 3.5,
        'seq-mean-token-mean': 2.75,
        'seq-mean-token-sum-norm': 0.875,
      };
      for (const mode of MODES) {
        const got = await expectNoLeak(async () => {
          const l = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
          const m = tf.tensor2d([1, 1, 0, 1, 0, 0], [2, 3]);
          const out = aggLoss(l, m, mode, 4);
          const v = (await read(out))[0];
          tf.dispose([l, m, out]);
          return v;
        });
        expectClose([got], [want[mode]], { atol: 1e-6, rtol: 1e-6, what: mode });
      }
    });

    it('ppoPolicyLoss by hand, with and without dual clip', async () => {
      // ε = 0.2, c = 3; token 3 is masked out.
      //   ρ = 1.5, Â = +1: max(−1.5, −1.2) = −1.2   clipped
      //   ρ = 0.5, Â = −1: max(0.5, 0.8) = 0.8      clipped; min(0.8, 3) = 0.8
      //   ρ = 4,   Â = −1: max(4, 1.2) = 4          min(4, 3) = 3: dual-clipped
      // token-mean: (−1.2 + 0.8 + 3)/3 = 2.6/3 (no dual clip: (−1.2 + 0.8 + 4)/3 = 1.2)
      // clipfrac 2/3, clipfrac_lower 1/3 (0 without), ppo_kl = −(ln 1.5 + ln 0.5 + ln 4)/3 = −ln 3/3
      const make = () => ({
        logp: tf.tensor2d([Math.log(1.5), Math.log(0.5), Math.log(4), Math.log(10)], [1, 4]),
        oldLogp: tf.zeros([1, 4]),
        advantages: tf.tensor2d([1, -1, -1, 5], [1, 4]),
        mask: tf.tensor2d([1, 1, 1, 0], [1, 4]),
      });
      const base = { clipLow: 0.2, clipHigh: 0.2, aggMode: 'token-mean' as const };
      const kl = -Math.log(3) / 3;
      const dual = await evaluate(make, (x) => ppoPolicyLoss(x, { ...base, dualClip: 3 }));
      expectMatches(dual, {
        loss: 2.6 / 3,
        metrics: {
          'actor/pg_loss': 2.6 / 3,
          'actor/pg_clipfrac': 2 / 3,
          'actor/ppo_kl': kl,
          'actor/pg_clipfrac_lower': 1 / 3,
        },
      });
      const plain = await evaluate(make, (x) => policyLoss('vanilla', x, base));
      expectMatches(plain, {
        loss: 1.2,
        metrics: {
          'actor/pg_loss': 1.2,
          'actor/pg_clipfrac': 2 / 3,
          'actor/ppo_kl': kl,
          'actor/pg_clipfrac_lower': 0,
        },
      });
    });

    it('valueLoss by hand', async () => {
      // ε_v = 0.2. Token 0: V 1, V_old 0.5, R 0: (1 − 0)² = 1 vs (0.7 − 0)² = 0.49 → 1
      //            Token 1: V 2, V_old 1.5, R 3: (2 − 3)² = 1 vs (1.7 − 3)² = 1.69 → 1.69, clipped
      // loss = ½ (1 + 1.69)/2 = 0.6725, clipfrac 1/2
      const got = await evaluate(
        () => ({
          values: tf.tensor2d([1, 2], [1, 2]),
          oldValues: tf.tensor2d([0.5, 1.5], [1, 2]),
          returns: tf.tensor2d([0, 3], [1, 2]),
          mask: tf.tensor2d([1, 1], [1, 2]),
        }),
        (x) => valueLoss(x, { clip: 0.2, aggMode: 'token-mean' }),
      );
      expectMatches(got, {
        loss: 0.6725,
        metrics: { 'critic/vf_loss': 0.6725, 'critic/vf_clipfrac': 0.5 },
      });
    });

    it.each(POLICY_CASES.map((p) => [JSON.stringify(p), p] as const))(
      'ppoPolicyLoss %s: loss, metrics and d/dlogp vs reference',
      async (label, p) => {
        const got = await evaluate(
          () => policyInputs(m2(logp)),
          (x) => ppoPolicyLoss(x, p),
        );
        const want = refPolicy(logp, p);
        // The seeded batch exercises the clip (and the dual clip where it is on).
        expect(want.metrics['actor/pg_clipfrac']).toBeGreaterThan(0);
        if (p.dualClip !== undefined)
          expect(want.metrics['actor/pg_clipfrac_lower']).toBeGreaterThan(0);
        expectMatches(got, want, { atol: 1e-5, rtol: 1e-4 }, label);

        const grad = await expectNoLeak(async () => {
          const x = m2(logp);
          const [g] = tf.grads((a: tf.Tensor) => ppoPolicyLoss(policyInputs(a), p).loss)([x]);
          const out = await read(g);
          tf.dispose([g, x]);
          return out;
        });
        const fd = fdGradient(
          (lp) => Float64Array.of(refPolicy(lp, p).loss),
          [logp.slice()],
          Float64Array.of(1),
          0,
          EPS,
        );
        expectClose(grad, fd, { ...GRAD_TOL, what: `${label}: d/dlogp` });
      },
    );

    it.each(
      [...MODES.map((mode) => [mode, 0.2] as const), ['token-mean', undefined] as const].map(
        ([mode, clip]) => [`${mode} clip ${clip}`, mode, clip] as const,
      ),
    )('valueLoss %s: loss, metrics and d/dvalues vs reference', async (label, mode, clip) => {
      const params = { clip, aggMode: mode, maxLength: MAX_LEN };
      const inputs = (v: tf.Tensor) => ({
        values: v,
        oldValues: m2(oldValues),
        returns: m2(returns),
        mask: m2(maskData),
      });
      const got = await evaluate(
        () => inputs(m2(values)),
        (x) => valueLoss(x, params),
      );
      const want = refValue(values, clip, mode, MAX_LEN);
      if (clip !== undefined) expect(want.metrics['critic/vf_clipfrac']).toBeGreaterThan(0);
      expectMatches(got, want, { atol: 1e-5, rtol: 1e-4 }, label);

      const grad = await expectNoLeak(async () => {
        const x = m2(values);
        const [g] = tf.grads((a: tf.Tensor) => valueLoss(inputs(a), params).loss)([x]);
        const out = await read(g);
        tf.dispose([g, x]);
        return out;
      });
      const fd = fdGradient(
        (v) => Float64Array.of(refValue(v, clip, mode, MAX_LEN).loss),
        [values.slice()],
        Float64Array.of(1),
        0,
        EPS,
      );
      expectClose(grad, fd, { ...GRAD_TOL, what: `${label}: d/dvalues` });
    });

    it.each(MODES)('entropyBonus %s vs reference', async (mode) => {
      const got = await evaluate(
        () => ({ entropy: m2(entropy), mask: m2(maskData) }),
        (x) => entropyBonus(x, { coef: 0.01, aggMode: mode, maxLength: MAX_LEN }),
      );
      const h = refAgg(entropy, maskData, mode, MAX_LEN);
      expectMatches(got, { loss: -0.01 * h, metrics: { 'actor/entropy': h } }, {}, mode);
    });

    it('errors name the argument and list known names', () => {
      const lp = m2(logp);
      const x = policyInputs(lp);
      try {
        expectTroupeError(
          () => ppoPolicyLoss(x, { clipLow: 0.2, clipHigh: 0.2, aggMode: 'sum' as never }),
          'UNKNOWN_NAME',
          'token-mean, seq-mean-token-sum, seq-mean-token-mean, seq-mean-token-sum-norm',
        );
        expectTroupeError(
          () =>
            policyLoss('gspo' as never, x, { clipLow: 0.2, clipHigh: 0.2, aggMode: 'token-mean' }),
          'UNKNOWN_NAME',
          'vanilla',
        );
        expectTroupeError(
          () =>
            ppoPolicyLoss(x, { clipLow: 0.2, clipHigh: 0.2, dualClip: 0.5, aggMode: 'token-mean' }),
          'BAD_ARGUMENT',
          "'dualClip'",
        );
        const short = tf.zeros([B, A - 1]);
        expectTroupeError(
          () =>
            ppoPolicyLoss(
              { ...x, advantages: short },
              { clipLow: 0.2, clipHigh: 0.2, aggMode: 'token-mean' },
            ),
          'SHAPE_MISMATCH',
          "'advantages'",
          "'ppoPolicyLoss'",
        );
        short.dispose();
      } finally {
        tf.dispose(Object.values(x));
      }
    });
  });
}
