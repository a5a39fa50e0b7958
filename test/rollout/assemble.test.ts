import { describe, expect, it } from 'vitest';
import { TroupeError } from '../../src/errors.js';
import type { StreamKey } from '../../src/kernels/random.js';
import {
  type AssembleInputs,
  type AssembleParams,
  assembleExperience,
  checkExperience,
  decodeRollout,
  EXPERIENCE_ARRAY_FIELDS,
  type Experience,
  encodeExperience,
  encodeFrame,
  encodeRollout,
  experienceMetrics,
  type GeneratedRows,
  layoutOf,
  minibatchRows,
  ROLLOUT_FRAME,
  type RolloutLayout,
  sliceExperience,
} from '../../src/rollout/index.js';
import { expectClose } from '../helpers/backends.js';
import { thrown } from '../helpers/thrown.js';
import { floats, makeExperience } from './fixtures.js';

/*
 * The experience assembly (layout → shaped rewards → advantages → Experience), slicing,
 * minibatching, metrics and the rollout frame, each against hand-computed cases (arithmetic in
 * the comments) or plain-loop references written here.
 */

const EXACT = { atol: 1e-6, rtol: 1e-6 };
const TOL = { atol: 1e-5, rtol: 1e-5 };

/**
 * A valid layout built by hand: row b has `prompt[b]` real prompt tokens (left-padded to P) and
 * `response[b]` real response tokens (right-padded to A); every real response token is an action
 * except the (b, j) in `holes`.
 */
function makeLayout(
  P: number,
  A: number,
  prompt: number[],
  response: number[],
  holes: [number, number][] = [],
): RolloutLayout {
  const B = prompt.length;
  const L = P + A;
  const sequences = new Int32Array(B * L);
  const attentionMask = new Uint8Array(B * L);
  const actionMask = new Uint8Array(B * A);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      const real = t < P ? t >= P - prompt[b] : t - P < response[b];
      attentionMask[b * L + t] = real ? 1 : 0;
      sequences[b * L + t] = real ? 3 + b * 10 + t : 0;
    }
    for (let j = 0; j < response[b]; j++) actionMask[b * A + j] = 1;
  }
  for (const [b, j] of holes) actionMask[b * A + j] = 0;
  return {
    sequences,
    attentionMask,
    actionMask,
    promptLength: P,
    shape: { batch: B, length: L, actions: A },
  };
}

/** Plain-loop r_t = −β·(logp − ref) on actions, plus R at each row's last action. */
function refTokenRewards(
  layout: RolloutLayout,
  R: ArrayLike<number>,
  logp: ArrayLike<number>,
  ref: ArrayLike<number>,
  beta: number,
): number[] {
  const { batch: B, actions: A } = layout.shape;
  const m = layout.actionMask;
  const out = new Array<number>(B * A).fill(0);
  for (let b = 0; b < B; b++) {
    let last = -1;
    for (let t = 0; t < A; t++) {
      const i = b * A + t;
      if (!m[i]) continue;
      out[i] = -beta * (logp[i] - ref[i]);
      last = t;
    }
    if (last >= 0) out[b * A + last] += R[b];
  }
  return out;
}

/** Plain unbiased masked whitening, ε = 1e-8 (verl masked_whiten). */
function refWhiten(x: ArrayLike<number>, m: Uint8Array): number[] {
  const kept: number[] = [];
  for (let i = 0; i < x.length; i++) if (m[i]) kept.push(x[i]);
  const mean = kept.reduce((a, b) => a + b, 0) / kept.length;
  const variance = kept.reduce((a, v) => a + (v - mean) ** 2, 0) / (kept.length - 1);
  return Array.from(x, (v, i) => (m[i] ? (v - mean) / Math.sqrt(variance + 1e-8) : 0));
}

// ---- layoutOf ---------------------------------------------------------------------------------

describe('layoutOf', () => {
  // B = 2, P = 3, A = 3, L = 6.
  //   row 0: prompt |pad 5 6|  response |7 8 2|     (one prompt pad, full response)
  //   row 1: prompt |4 5 6|    response |9 2 pad|   (no prompt pad, one response pad)
  const ids = Int32Array.of(0, 5, 6, 7, 8, 2, 4, 5, 6, 9, 2, 0);
  const mask = Uint8Array.of(0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0);
  const gen: GeneratedRows = {
    sequences: { ids, mask, batch: 2, length: 6 },
    // (B·L): 1 on response tokens only.
    actionMask: Uint8Array.of(0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0),
    promptLength: 3,
  };

  it('keeps sequences and attention mask, and takes the response part of the action mask', () => {
    const layout = layoutOf(gen);
    expect(layout.sequences).toEqual(Int32Array.of(0, 5, 6, 7, 8, 2, 4, 5, 6, 9, 2, 0));
    expect(layout.attentionMask).toEqual(Uint8Array.of(0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0));
    // (B, A) = positions 3..5 of each row: [1 1 1], [1 1 0].
    expect(layout.actionMask).toEqual(Uint8Array.of(1, 1, 1, 1, 1, 0));
    expect(layout.promptLength).toBe(3);
    expect(layout.shape).toEqual({ batch: 2, length: 6, actions: 3 });
  });

  it('fails when there is no response position', () => {
    const e = thrown(() => layoutOf({ ...gen, promptLength: 6 }));
    expect(e.code).toBe('BAD_ARGUMENT');
  });
});

// ---- assembleExperience -----------------------------------------------------------------------

describe('assembleExperience', () => {
  const base = { klEstimator: 'k1' } as const;

  it('grpo without KL: group-normalised rewards broadcast over the actions', () => {
    // B = 4, A = 3, response lengths [3, 2, 3, 1]; groups [0, 0, 1, 1]; r = [1, 0, 0.5, 0.5].
    // No KL in the reward, so each row's score is its reward.
    //   group 0: mean 0.5, unbiased std = sqrt((0.25 + 0.25)/1) = sqrt(0.5)
    //            Â = ±0.5/(sqrt(0.5) + 1e-6)
    //   group 1: equal scores, std 0: Â = 0/(0 + 1e-6) = 0
    const layout = makeLayout(2, 3, [2, 1, 2, 1], [3, 2, 3, 1]);
    const rewards = Float32Array.of(1, 0, 0.5, 0.5);
    const acc = Float32Array.of(1, 0, 1, 1);
    const { experience: e, meanKl } = assembleExperience(
      {
        layout,
        oldLogp: floats(12, 1).map((x) => -Math.abs(x)),
        rewards,
        groups: [0, 0, 1, 1],
        info: { 'reward/acc': acc },
      },
      { ...base, estimator: 'grpo', klCoef: 0 },
    );
    const a = 0.5 / (Math.sqrt(0.5) + 1e-6);
    const want = [a, a, a, -a, -a, 0, 0, 0, 0, 0, 0, 0];
    expectClose(e.advantages as Float32Array, want, EXACT);
    expectClose(e.returns as Float32Array, want, EXACT);
    expect(e.rewards).toEqual(Float32Array.of(1, 0, 0.5, 0.5));
    expect(e.info.score).toEqual(Float32Array.of(1, 0, 0.5, 0.5));
    expect(e.info.response_length).toEqual(Float32Array.of(3, 2, 3, 1));
    expect(e.info['reward/acc']).toEqual(Float32Array.of(1, 0, 1, 1));
    expect(meanKl).toBe(0);
    for (const k of ['refLogProbs', 'values', 'kl']) expect(k in e).toBe(false);
    expect(e.sequences).toEqual(layout.sequences);
    expect(e.actionMask).toEqual(layout.actionMask);
    expect(e.promptLength).toBe(2);
  });

  it('reinforce_plus_plus with a k1 KL penalty in the reward (β = 0.1, γ = 1)', () => {
    // B = 2, A = 3; row 0 has 3 actions, row 1 has 2 (the pad holds garbage log-probs).
    //   row 0: KL = [−1 − (−1.5), −2 − (−1), −0.5 − (−0.5)] = [0.5, −1, 0]
    //          r_t = −0.1·KL + [0, 0, 1] = [−0.05, 0.1, 1]
    //          G = [−0.05 + 0.1 + 1, 0.1 + 1, 1] = [1.05, 1.1, 1]
    //   row 1: KL = [−0.2 − (−0.4), −0.3 − (−0.7)] = [0.2, 0.4]
    //          r_t = [−0.02, −0.04 − 1] = [−0.02, −1.04]
    //          G = [−1.06, −1.04, 0]
    //   meanKl = ((0.5 − 1 + 0)/3 + (0.2 + 0.4)/2)/2 = (−1/6 + 0.3)/2
    const layout = makeLayout(2, 3, [2, 1], [3, 2]);
    const oldLogp = Float32Array.of(-1, -2, -0.5, -0.2, -0.3, -9);
    const refLogp = Float32Array.of(-1.5, -1, -0.5, -0.4, -0.7, -3);
    const rewards = Float32Array.of(1, -1);
    const { experience: e, meanKl } = assembleExperience(
      { layout, oldLogp, refLogp, rewards, groups: [0, 1] },
      { ...base, estimator: 'reinforce_plus_plus', gamma: 1, klCoef: 0.1 },
    );
    const G = [1.05, 1.1, 1, -1.06, -1.04, 0];
    expectClose(e.returns as Float32Array, G, EXACT);
    expectClose(e.kl as Float32Array, [0.5, -1, 0, 0.2, 0.4, 0], EXACT);
    expect(e.refLogProbs).toEqual(refLogp);
    expect(meanKl).toBeCloseTo((-1 / 6 + 0.3) / 2, 6);
    // The score is the sum of the token rewards: 1.05 and −1.06.
    expectClose(e.info.score, [1.05, -1.06], EXACT);
    expect(e.rewards).toEqual(Float32Array.of(1, -1));

    // The same through plain loops: token rewards, returns, whitened advantages.
    const r = refTokenRewards(layout, rewards, oldLogp, refLogp, 0.1);
    const m = layout.actionMask;
    const ret = new Array<number>(6).fill(0);
    for (let b = 0; b < 2; b++) {
      for (let t = 0; t < 3; t++) {
        if (!m[b * 3 + t]) continue;
        for (let k = t; k < 3 && m[b * 3 + k]; k++) ret[b * 3 + t] += r[b * 3 + k];
      }
    }
    expectClose(e.returns as Float32Array, ret, EXACT);
    expectClose(e.advantages as Float32Array, refWhiten(ret, m), TOL);
  });

  describe('gae with a critic, against a plain backward loop', () => {
    // B = 3, P = 2, A = 5; response lengths [5, 3, 4], a hole at (2, 1); β = 0.05, k1.
    const layout = makeLayout(2, 5, [2, 1, 2], [5, 3, 4], [[2, 1]]);
    const B = 3;
    const A = 5;
    const oldLogp = floats(B * A, 21).map((x) => -Math.abs(x) * 2);
    const refLogp = floats(B * A, 22).map((x) => -Math.abs(x) * 2);
    const values = floats(B * A, 23);
    const rewards = Float32Array.of(0.7, -0.3, 1.2);
    const inputs: AssembleInputs = { layout, oldLogp, refLogp, values, rewards, groups: [0, 1, 2] };
    const params: AssembleParams = {
      ...base,
      estimator: 'gae',
      gamma: 0.9,
      lambda: 0.8,
      klCoef: 0.05,
    };

    /** verl compute_gae_advantage_return: every token, masked ones blended out. */
    function refGae(gamma: number, lam: number) {
      const r = refTokenRewards(layout, rewards, oldLogp, refLogp, 0.05);
      const m = layout.actionMask;
      const adv = new Array<number>(B * A).fill(0);
      const ret = new Array<number>(B * A).fill(0);
      for (let b = 0; b < B; b++) {
        let nextValue = 0;
        let lastGae = 0;
        for (let t = A - 1; t >= 0; t--) {
          const i = b * A + t;
          const delta = r[i] + gamma * nextValue - values[i];
          const candidate = delta + gamma * lam * lastGae;
          nextValue = m[i] ? values[i] : nextValue;
          lastGae = m[i] ? candidate : lastGae;
          adv[i] = m[i] ? lastGae : 0;
          ret[i] = m[i] ? lastGae + values[i] : 0;
        }
      }
      return { adv, ret };
    }

    it('unwhitened advantages and returns', () => {
      const { experience: e } = assembleExperience(inputs, { ...params, whiten: false });
      const want = refGae(0.9, 0.8);
      expectClose(e.advantages as Float32Array, want.adv, TOL);
      expectClose(e.returns as Float32Array, want.ret, TOL);
      expect(e.values).toEqual(values);
    });

    it('whitened advantages (default), returns from the raw ones', () => {
      const { experience: e } = assembleExperience(inputs, params);
      const want = refGae(0.9, 0.8);
      expectClose(e.advantages as Float32Array, refWhiten(want.adv, layout.actionMask), TOL);
      expectClose(e.returns as Float32Array, want.ret, TOL);
    });

    it('fails without values', () => {
      const { values: _v, ...noValues } = inputs;
      expect(thrown(() => assembleExperience(noValues, params)).code).toBe('BAD_ARGUMENT');
    });
  });

  it('rloo scores are the sums of the KL-shaped token rewards (β = 0.5, k1)', () => {
    // B = 4, A = 2; groups [0, 0, 0, 1]; row 2 has one action.
    //   row 0: KL = [−1 − (−2), 0] = [1, 0]       r_t = [−0.5, 0 + 1]      s0 = 0.5
    //   row 1: KL = [0, −1 − (−1.5)] = [0, 0.5]   r_t = [0, −0.25 + 1]     s1 = 0.75
    //   row 2: KL = [−1 − (−1.5)] = [0.5]         r_t = [−0.25 + 0]        s2 = −0.25
    //   row 3: KL = [0, 0]                        r_t = [0, 2]             s3 = 2
    // rloo, group 0 (n = 3): Â_i = s_i − mean of the others
    //   Â0 = 0.5 − (0.75 − 0.25)/2 = 0.25
    //   Â1 = 0.75 − (0.5 − 0.25)/2 = 0.625
    //   Â2 = −0.25 − (0.5 + 0.75)/2 = −0.875
    // group 1 has one member: Â3 = s3 = 2.
    const layout = makeLayout(1, 2, [1, 1, 1, 1], [2, 2, 1, 2]);
    const { experience: e, meanKl } = assembleExperience(
      {
        layout,
        oldLogp: Float32Array.of(-1, -1, -1, -1, -1, 7, -0.5, -0.5),
        refLogp: Float32Array.of(-2, -1, -1, -1.5, -1.5, -7, -0.5, -0.5),
        rewards: Float32Array.of(1, 1, 0, 2),
        groups: [0, 0, 0, 1],
      },
      { ...base, estimator: 'rloo', klCoef: 0.5 },
    );
    expectClose(e.info.score, [0.5, 0.75, -0.25, 2], EXACT);
    expectClose(e.advantages as Float32Array, [0.25, 0.25, 0.625, 0.625, -0.875, 0, 2, 2], EXACT);
    // meanKl = ((1 + 0)/2 + (0 + 0.5)/2 + 0.5/1 + 0)/4 = (0.5 + 0.25 + 0.5)/4 = 0.3125
    expect(meanKl).toBeCloseTo(0.3125, 6);
  });

  it('klCoef 0 with a reference still measures the KL, without shaping', () => {
    // Same rows as above with β = 0: scores are the rewards [1, 1, 0, 2], meanKl 0.3125.
    const layout = makeLayout(1, 2, [1, 1, 1, 1], [2, 2, 1, 2]);
    const { experience: e, meanKl } = assembleExperience(
      {
        layout,
        oldLogp: Float32Array.of(-1, -1, -1, -1, -1, 7, -0.5, -0.5),
        refLogp: Float32Array.of(-2, -1, -1, -1.5, -1.5, -7, -0.5, -0.5),
        rewards: Float32Array.of(1, 1, 0, 2),
        groups: [0, 0, 0, 1],
      },
      { ...base, estimator: 'rloo', klCoef: 0 },
    );
    expectClose(e.info.score, [1, 1, 0, 2], EXACT);
    expectClose(e.kl as Float32Array, [1, 0, 0, 0.5, 0.5, 0, 0, 0], EXACT);
    expect(meanKl).toBeCloseTo(0.3125, 6);
  });

  describe('rewardClip and rewardNormalize come before shaping', () => {
    // B = 4, A = 2, every row 2 actions; γ = 1, reinforce_plus_plus: with β = 0 the return at
    // every action is the row's (processed) reward.
    const layout = makeLayout(1, 2, [1, 1, 1, 1], [2, 2, 2, 2]);
    const oldLogp = Float32Array.of(-1, -1, -1, -1, -1, -1, -1, -1);
    const rewards = Float32Array.of(3, -2, 0.5, 1);
    const rpp = { ...base, estimator: 'reinforce_plus_plus', gamma: 1 } as const;

    it('clip, then normalise', () => {
      // clip to [−1, 1]: [1, −1, 0.5, 1]; mean = 1.5/4 = 0.375
      //   deviations [0.625, −1.375, 0.125, 0.625], squares sum
      //   0.390625 + 1.890625 + 0.015625 + 0.390625 = 2.6875; unbiased var 2.6875/3
      //   r' = dev/(sqrt(2.6875/3) + 1e-6)
      const { experience: e } = assembleExperience(
        { layout, oldLogp, rewards, groups: [0, 1, 2, 3] },
        { ...rpp, klCoef: 0, rewardClip: [-1, 1], rewardNormalize: true },
      );
      const std = Math.sqrt(2.6875 / 3) + 1e-6;
      const r = [0.625, -1.375, 0.125, 0.625].map((d) => d / std);
      expectClose(e.info.score, r, EXACT);
      expectClose(
        e.returns as Float32Array,
        r.flatMap((x) => [x, x]),
        EXACT,
      );
      // The rewards field is the raw reward.
      expect(e.rewards).toEqual(Float32Array.of(3, -2, 0.5, 1));
    });

    it('clips the sequence reward, not the KL-shaped sum', () => {
      // β = 1, k1, KL = logp − ref = −1 − 0.5 = −1.5 on every action: −β·KL = +1.5 per token,
      // +3 per row. clip [−1, 1]: [1, −1, 0.5, 1] → scores [4, 2, 3.5, 4] (beyond the clip).
      const refLogp = new Float32Array(8).fill(0.5);
      const { experience: e } = assembleExperience(
        { layout, oldLogp, refLogp, rewards, groups: [0, 1, 2, 3] },
        { ...rpp, klCoef: 1, rewardClip: [-1, 1] },
      );
      expectClose(e.info.score, [4, 2, 3.5, 4], EXACT);
      // G_0 = 1.5 + (1.5 + r), G_1 = 1.5 + r
      expectClose(e.returns as Float32Array, [4, 2.5, 2, 0.5, 3.5, 2, 4, 2.5], EXACT);
    });
  });

  it('a KL penalty without reference log-probs is BAD_ARGUMENT', () => {
    const layout = makeLayout(1, 2, [1], [2]);
    const e = thrown(() =>
      assembleExperience(
        { layout, oldLogp: Float32Array.of(-1, -1), rewards: Float32Array.of(1), groups: [0] },
        { ...base, estimator: 'grpo', klCoef: 0.1 },
      ),
    );
    expect(e.code).toBe('BAD_ARGUMENT');
  });
});

// ---- sliceExperience --------------------------------------------------------------------------

describe('sliceExperience', () => {
  /** Plain loop: row r of a field with rows of `width`. */
  function rowsOf(x: ArrayLike<number>, width: number, rows: number[]): number[] {
    const out: number[] = [];
    for (const r of rows) for (let j = 0; j < width; j++) out.push(x[r * width + j]);
    return out;
  }

  it('takes repeated and reordered rows of every field, info included', () => {
    const e = makeExperience({ batch: 4, promptLength: 3, actions: 5 });
    const rows = [3, 0, 3, 1];
    const out = sliceExperience(e, rows);
    const { length: L, actions: A } = e.shape;
    expect(out.shape).toEqual({ batch: 4, length: L, actions: A });
    expect(out.promptLength).toBe(3);
    for (const key of EXPERIENCE_ARRAY_FIELDS) {
      const x = e[key];
      expect(x).toBeDefined();
      const width = key === 'rewards' ? 1 : key === 'sequences' || key === 'attentionMask' ? L : A;
      const got = out[key] as ArrayLike<number>;
      expect(got.constructor).toBe((x as object).constructor);
      expect(Array.from(got)).toEqual(rowsOf(x as ArrayLike<number>, width, rows));
    }
    expect(Object.keys(out.info).sort()).toEqual(Object.keys(e.info).sort());
    for (const [k, v] of Object.entries(e.info)) {
      expect(Array.from(out.info[k])).toEqual(rowsOf(v, 1, rows));
    }
    checkExperience(out);
    // A copy, not a view.
    (out.actionLogProbs as Float32Array)[0] = 123;
    expect(e.actionLogProbs[3 * A]).not.toBe(123);
  });

  it('leaves absent optional fields absent', () => {
    const e = makeExperience({ batch: 3, optional: false });
    const out = sliceExperience(e, [2, 1]);
    for (const key of ['refLogProbs', 'values', 'returns', 'advantages', 'kl']) {
      expect(key in e).toBe(false);
      expect(key in out).toBe(false);
    }
    expect(out.shape.batch).toBe(2);
    checkExperience(out);
  });
});

// ---- minibatchRows ----------------------------------------------------------------------------

describe('minibatchRows', () => {
  const key: StreamKey = { seed: 5, step: 3, actor: 'trainer', purpose: 'minibatch' };

  it.each([
    [10, 3],
    [10, 10],
    [7, 1],
    [9, 4],
  ])('partitions 0..%i−1 into %i minibatches of near-equal size', (B, count) => {
    const parts = minibatchRows(B, count, key);
    expect(parts).toHaveLength(count);
    const all = parts.flat().sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: B }, (_, i) => i));
    const sizes = parts.map((p) => p.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });

  it('keeps one minibatch in batch order (the groups of a GRPO batch stay together)', () => {
    expect(minibatchRows(6, 1, key)).toEqual([[0, 1, 2, 3, 4, 5]]);
    expect(minibatchRows(6, 2, key).flat()).not.toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('is deterministic for a key and differs across steps', () => {
    expect(minibatchRows(16, 4, key)).toEqual(minibatchRows(16, 4, { ...key }));
    expect(minibatchRows(16, 4, { ...key, step: 4 })).not.toEqual(minibatchRows(16, 4, key));
  });

  it('rejects a count of 0, above B, or not an integer', () => {
    for (const count of [0, 11, 1.5, -1]) {
      expect(thrown(() => minibatchRows(10, count, key)).code).toBe('BAD_ARGUMENT');
    }
  });
});

// ---- experienceMetrics ------------------------------------------------------------------------

describe('experienceMetrics', () => {
  /** Plain masked mean and population variance. */
  function stats(x: ArrayLike<number>, m?: Uint8Array) {
    const kept: number[] = [];
    for (let i = 0; i < x.length; i++) if (!m || m[i]) kept.push(x[i]);
    const mean = kept.reduce((a, b) => a + b, 0) / kept.length;
    const variance = kept.reduce((a, v) => a + (v - mean) ** 2, 0) / kept.length;
    return { mean, variance };
  }

  it('matches hand-computed rewards and plain loops over the tokens', () => {
    const base = makeExperience({ batch: 4, promptLength: 2, actions: 6 });
    const e: Experience = {
      ...base,
      // mean 1.5, population variance (2.25 + 0.25 + 0.25 + 2.25)/4 = 1.25
      rewards: Float32Array.of(0, 1, 2, 3),
      info: {
        ...base.info,
        // mean 0.5, population std 0.5
        'reward/acc': Float32Array.of(1, 0, 1, 0),
        // mean −1, std 0
        'reward/len': Float32Array.of(-1, -1, -1, -1),
        response_length: Float32Array.of(6, 5, 4, 3),
      },
    };
    const m = experienceMetrics(e);
    expect(m['reward/mean']).toBeCloseTo(1.5, 6);
    expect(m['reward/std']).toBeCloseTo(Math.sqrt(1.25), 6);
    expect(m['reward/acc/mean']).toBeCloseTo(0.5, 6);
    expect(m['reward/acc/std']).toBeCloseTo(0.5, 6);
    expect(m['reward/len/mean']).toBeCloseTo(-1, 6);
    expect(m['reward/len/std']).toBeCloseTo(0, 6);
    const fmt = stats(e.info['reward/format']);
    expect(m['reward/format/mean']).toBeCloseTo(fmt.mean, 6);
    // Info keys outside reward/ get no reward metrics.
    expect('responseLength/mean' in m).toBe(false);
    // response_length: mean (6 + 5 + 4 + 3)/4 = 4.5
    expect(m['response_length/mean']).toBeCloseTo(4.5, 6);

    const mask = e.actionMask;
    expect(m.kl).toBeCloseTo(stats(e.kl as Float32Array, mask).mean, 6);
    const adv = stats(e.advantages as Float32Array, mask);
    expect(m['advantages/mean']).toBeCloseTo(adv.mean, 6);
    expect(m['advantages/std']).toBeCloseTo(Math.sqrt(adv.variance), 6);
    expect(m['returns/mean']).toBeCloseTo(stats(e.returns as Float32Array, mask).mean, 6);
    expect(m['values/mean']).toBeCloseTo(stats(e.values as Float32Array, mask).mean, 6);

    // Explained variance 1 − Var(R − V)/Var(R) over the action tokens.
    const R = e.returns as Float32Array;
    const V = e.values as Float32Array;
    let n = 0;
    let sr = 0;
    let sd = 0;
    for (let i = 0; i < R.length; i++) {
      if (!mask[i]) continue;
      n++;
      sr += R[i];
      sd += R[i] - V[i];
    }
    let vr = 0;
    let vd = 0;
    for (let i = 0; i < R.length; i++) {
      if (!mask[i]) continue;
      vr += (R[i] - sr / n) ** 2;
      vd += (R[i] - V[i] - sd / n) ** 2;
    }
    expect(m['critic/explained_variance']).toBeCloseTo(1 - vd / vr, 5);
  });

  it('perfect values explain all the variance; no critic, no critic metrics', () => {
    const base = makeExperience({ batch: 3 });
    const withV = experienceMetrics({ ...base, values: base.returns });
    expect(withV['critic/explained_variance']).toBeCloseTo(1, 6);
    const { values: _v, kl: _k, ...noCritic } = base;
    const m = experienceMetrics(noCritic);
    expect('critic/explained_variance' in m).toBe(false);
    expect('values/mean' in m).toBe(false);
    expect('kl' in m).toBe(false);
  });
});

// ---- rollout frames ---------------------------------------------------------------------------

describe('encodeRollout / decodeRollout', () => {
  const layout = makeLayout(3, 4, [3, 1, 2], [4, 2, 1], [[0, 2]]);

  it('round-trips a layout', () => {
    const out = decodeRollout(encodeRollout(layout));
    expect(out.sequences).toBeInstanceOf(Int32Array);
    expect(out.attentionMask).toBeInstanceOf(Uint8Array);
    expect(out.actionMask).toBeInstanceOf(Uint8Array);
    expect(out.sequences).toEqual(layout.sequences);
    expect(out.attentionMask).toEqual(layout.attentionMask);
    expect(out.actionMask).toEqual(layout.actionMask);
    expect(out.promptLength).toBe(3);
    expect(out.shape).toEqual({ batch: 3, length: 7, actions: 4 });
  });

  it('round-trips a Uint8Array view into the frame', () => {
    const frame = new Uint8Array(encodeRollout(layout));
    expect(decodeRollout(frame).actionMask).toEqual(layout.actionMask);
  });

  it('an experience frame is BAD_FRAME', () => {
    const e = thrown(() => decodeRollout(encodeExperience(makeExperience())));
    expect(e.code).toBe('BAD_FRAME');
  });

  it('a malformed layout fails at encode, and is BAD_FRAME at decode', () => {
    const bad = { ...layout, actionMask: new Uint8Array(3 * 4 - 1) };
    expect(() => encodeRollout(bad)).toThrow(TroupeError);
    const e = thrown(() => decodeRollout(encodeFrame(ROLLOUT_FRAME, bad)));
    expect(e.code).toBe('BAD_FRAME');
    const noShape = { ...layout, shape: undefined };
    expect(thrown(() => decodeRollout(encodeFrame(ROLLOUT_FRAME, noShape))).code).toBe('BAD_FRAME');
    expect(thrown(() => decodeRollout(encodeFrame(ROLLOUT_FRAME, 7))).code).toBe('BAD_FRAME');
  });
});
