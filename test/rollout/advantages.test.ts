import { describe, expect, it } from 'vitest';
import { hasCode } from '../../src/errors.js';
import { RandomStream } from '../../src/kernels/random.js';
import {
  type AdvantageInputs,
  clipRewards,
  computeAdvantages,
  normalizeRewards,
  whiten,
} from '../../src/rollout/index.js';
import { expectClose } from '../helpers/backends.js';

/*
 * Each estimator against a slow, obvious float64 reference written from verl core_algos.py
 * (dictionaries of group lists, a per-token loop with verl's mask blending), on seeded batches
 * with ragged right-padded masks, an empty row and a group of one.
 */

const B = 13;
const A = 9;
const rand = (purpose: string) => RandomStream.of({ seed: 7, step: 0, actor: 'adv', purpose });

/** Right-padded mask: row b has len[b] tokens; row 3 is empty. */
function raggedMask(): Uint8Array {
  const s = rand('len');
  const m = new Uint8Array(B * A);
  for (let b = 0; b < B; b++) {
    const len = b === 3 ? 0 : 1 + s.nextInt(A);
    for (let t = 0; t < len; t++) m[b * A + t] = 1;
  }
  return m;
}

/** Groups of 4 in shuffled order, and one group of one (id 99). */
function shuffledGroups(): Int32Array {
  const g = Int32Array.from({ length: B }, (_, i) => (i === B - 1 ? 99 : Math.floor(i / 4)));
  const s = rand('perm');
  for (let i = B - 2; i > 0; i--) {
    const j = s.nextInt(i + 1);
    [g[i], g[j]] = [g[j], g[i]];
  }
  return g;
}

const mask = raggedMask();
const groups = shuffledGroups();
const tokenRewards = rand('r').normal(B * A);
const values = rand('v').normal(B * A);
const scores = rand('s').normal(B);
const inputs: AdvantageInputs = {
  shape: { batch: B, actions: A },
  mask,
  tokenRewards,
  values,
  scores,
  groups,
};

// ---- references -------------------------------------------------------------------------------

function refWhiten(x: ArrayLike<number>, m: Uint8Array): number[] {
  const kept: number[] = [];
  for (let i = 0; i < x.length; i++) if (m[i]) kept.push(x[i]);
  const mean = kept.reduce((a, b) => a + b, 0) / kept.length;
  const variance = kept.reduce((a, v) => a + (v - mean) ** 2, 0) / (kept.length - 1);
  return Array.from(x, (v, i) => (m[i] ? (v - mean) / Math.sqrt(variance + 1e-8) : 0));
}

/** verl compute_gae_advantage_return, token loop with mask blending. */
function refGae(gamma: number, lam: number) {
  const adv = new Array<number>(B * A).fill(0);
  const ret = new Array<number>(B * A).fill(0);
  for (let b = 0; b < B; b++) {
    let nextValues = 0;
    let lastGae = 0;
    for (let t = A - 1; t >= 0; t--) {
      const i = b * A + t;
      const delta = tokenRewards[i] + gamma * nextValues - values[i];
      const candidate = delta + gamma * lam * lastGae;
      nextValues = values[i] * mask[i] + (1 - mask[i]) * nextValues;
      lastGae = candidate * mask[i] + (1 - mask[i]) * lastGae;
      adv[i] = lastGae * mask[i];
      ret[i] = (lastGae + values[i]) * mask[i];
    }
  }
  return { adv, ret };
}

/** id → list of scores, as verl builds id2score. */
function byGroup(): Map<number, number[]> {
  const id2score = new Map<number, number[]>();
  for (let i = 0; i < B; i++)
    id2score.set(groups[i], [...(id2score.get(groups[i]) ?? []), scores[i]]);
  return id2score;
}

const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const stdOf = (xs: number[]) => {
  const m = meanOf(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
};

const perToken = (seq: number[]) => Array.from(mask, (m, i) => m * seq[Math.floor(i / A)]);

function refGrpo(normByStd: boolean, eps = 1e-6): number[] {
  const id2score = byGroup();
  const out = Array.from(scores, (s, i) => {
    const g = id2score.get(groups[i])!;
    const mean = g.length === 1 ? 0 : meanOf(g);
    const std = g.length === 1 ? 1 : stdOf(g);
    return normByStd ? (s - mean) / (std + eps) : s - mean;
  });
  return perToken(out);
}

function refRloo(): number[] {
  const out = Array.from(scores, (s, i) => {
    const others = [...Array(B).keys()].filter((j) => j !== i && groups[j] === groups[i]);
    if (others.length === 0) return s;
    return s - meanOf(others.map((j) => scores[j]));
  });
  return perToken(out);
}

function refRpp(gamma: number) {
  const ret = new Array<number>(B * A).fill(0);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < A; t++) {
      if (!mask[b * A + t]) continue;
      // G_t = Σ_{k ≥ t, within the response} γ^{k−t} r_k
      let g = 0;
      for (let k = t; k < A && mask[b * A + k]; k++)
        g += gamma ** (k - t) * tokenRewards[b * A + k];
      ret[b * A + t] = g;
    }
  }
  return { adv: refWhiten(ret, mask), ret };
}

function refRppBaseline(): number[] {
  const id2score = byGroup();
  const centred = Array.from(scores, (s, i) => {
    const g = id2score.get(groups[i])!;
    return s - (g.length === 1 ? 0 : meanOf(g));
  });
  return refWhiten(perToken(centred), mask);
}

const TOL = { atol: 1e-5, rtol: 1e-5 };

// ---- tests ------------------------------------------------------------------------------------

describe('gae', () => {
  it('matches a hand-computed 3-token example', () => {
    // γ = 0.9, λ = 0.8, r = [0, 0, 1], V = [0.5, 0.6, 0.7]:
    //   δ2 = 1 − 0.7 = 0.3                        Â2 = 0.3
    //   δ1 = 0.9·0.7 − 0.6 = 0.03                 Â1 = 0.03 + 0.72·0.3 = 0.246
    //   δ0 = 0.9·0.6 − 0.5 = 0.04                 Â0 = 0.04 + 0.72·0.246 = 0.21712
    //   R = Â + V = [0.71712, 0.846, 1.0]
    const one: AdvantageInputs = {
      shape: { batch: 1, actions: 3 },
      mask: Uint8Array.of(1, 1, 1),
      tokenRewards: Float32Array.of(0, 0, 1),
      values: Float32Array.of(0.5, 0.6, 0.7),
    };
    const out = computeAdvantages('gae', one, { gamma: 0.9, lambda: 0.8, whiten: false });
    expectClose(out.advantages, [0.21712, 0.246, 0.3], { atol: 1e-6, rtol: 1e-6 });
    expectClose(out.returns, [0.71712, 0.846, 1.0], { atol: 1e-6, rtol: 1e-6 });
    // A hole at t = 1 is skipped: δ0 = 0.9·0.7 − 0.5 = 0.13, Â0 = 0.13 + 0.72·0.3 = 0.346.
    const holed = computeAdvantages(
      'gae',
      { ...one, mask: Uint8Array.of(1, 0, 1) },
      { gamma: 0.9, lambda: 0.8, whiten: false },
    );
    expectClose(holed.advantages, [0.346, 0, 0.3], { atol: 1e-6, rtol: 1e-6 });
    expectClose(holed.returns, [0.846, 0, 1.0], { atol: 1e-6, rtol: 1e-6 });
  });

  it.each([
    [1, 1],
    [0.99, 0.95],
    [0.5, 0],
  ])('matches the verl-style reference (γ %s, λ %s), whitened and not', (gamma, lambda) => {
    const want = refGae(gamma, lambda);
    const raw = computeAdvantages('gae', inputs, { gamma, lambda, whiten: false });
    expectClose(raw.advantages, want.adv, TOL);
    expectClose(raw.returns, want.ret, TOL);
    const white = computeAdvantages('gae', inputs, { gamma, lambda });
    expectClose(white.advantages, refWhiten(want.adv, mask), TOL);
    expectClose(white.returns, want.ret, TOL);
  });
});

describe('group outcome estimators', () => {
  it('grpo matches the loop reference, with and without std division (Dr.GRPO)', () => {
    for (const normByStd of [true, false]) {
      const out = computeAdvantages('grpo', inputs, { normByStd });
      expectClose(out.advantages, refGrpo(normByStd), { ...TOL, what: `normByStd ${normByStd}` });
      expect(out.returns).toEqual(out.advantages);
    }
  });

  it('grpo on one group by hand', () => {
    // s = [1, 2, 3]: mean 2, std 1 → [−1, 0, 1]/(1 + 1e-6)
    const out = computeAdvantages('grpo', {
      shape: { batch: 3, actions: 2 },
      mask: Uint8Array.of(1, 1, 1, 0, 0, 0),
      scores: Float32Array.of(1, 2, 3),
      groups: [5, 5, 5],
    });
    const a = 1 / (1 + 1e-6);
    expectClose(out.advantages, [-a, -a, 0, 0, 0, 0], { atol: 1e-7, rtol: 1e-6 });
  });

  it('rloo matches the leave-one-out loop reference', () => {
    expectClose(computeAdvantages('rloo', inputs).advantages, refRloo(), TOL);
  });

  it('reinforce_plus_plus matches discounted returns, whitened', () => {
    for (const gamma of [1, 0.9]) {
      const want = refRpp(gamma);
      const out = computeAdvantages('reinforce_plus_plus', inputs, { gamma });
      expectClose(out.returns, want.ret, TOL);
      expectClose(out.advantages, want.adv, TOL);
    }
  });

  it('reinforce_plus_plus_baseline subtracts the group mean, then whitens', () => {
    const out = computeAdvantages('reinforce_plus_plus_baseline', inputs);
    expectClose(out.advantages, refRppBaseline(), TOL);
  });

  it('outputs are 0 on masked-out tokens', () => {
    for (const name of ['gae', 'grpo', 'rloo', 'reinforce_plus_plus'] as const) {
      const out = computeAdvantages(name, inputs);
      for (let i = 0; i < B * A; i++) {
        if (!mask[i]) expect(out.advantages[i], `${name} [${i}]`).toBe(0);
      }
    }
  });
});

describe('helpers', () => {
  it('whiten gives mean 0 and unbiased variance 1 over the mask', () => {
    const w = whiten(values, mask);
    const kept = [...w].filter((_, i) => mask[i]);
    expect(Math.abs(meanOf(kept))).toBeLessThan(1e-6);
    expect(stdOf(kept)).toBeCloseTo(1, 5);
  });

  it('clipRewards and normalizeRewards', () => {
    expect([...clipRewards([-3, 0.5, 7], -1, 2)]).toEqual([-1, 0.5, 2]);
    // [1, 2, 3]: mean 2, std 1
    expectClose(normalizeRewards([1, 2, 3], 0), [-1, 0, 1], { atol: 1e-7, rtol: 1e-7 });
  });
});

describe('errors', () => {
  const expectCode = (fn: () => unknown, code: string, part: string) => {
    try {
      fn();
    } catch (e) {
      expect(hasCode(e, code as never), String(e)).toBe(true);
      expect((e as Error).message).toContain(part);
      return;
    }
    throw new Error('expected a TroupeError');
  };

  it('an unknown estimator lists the known ones', () => {
    expectCode(
      () => computeAdvantages('ppo' as never, inputs),
      'UNKNOWN_NAME',
      'gae, grpo, rloo, reinforce_plus_plus, reinforce_plus_plus_baseline',
    );
  });

  it('a missing field is named', () => {
    expectCode(
      () => computeAdvantages('gae', { ...inputs, values: undefined }),
      'BAD_ARGUMENT',
      "'gae' needs 'inputs.values'",
    );
  });

  it('a wrong length is named', () => {
    expectCode(
      () => computeAdvantages('grpo', { ...inputs, scores: new Float32Array(B - 1) }),
      'SHAPE_MISMATCH',
      "'inputs.scores'",
    );
  });

  it('a bad param is named', () => {
    expectCode(() => computeAdvantages('gae', inputs, { gamma: 1.5 }), 'BAD_ARGUMENT', "'gamma'");
  });
});
