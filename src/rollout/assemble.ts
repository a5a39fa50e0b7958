import { TroupeError } from '../errors.js';
import type { KlEstimatorName } from '../kernels/numerics/index.js';
import { RandomStream, type StreamKey } from '../kernels/random.js';
import { type AdvantageEstimatorName, computeAdvantages } from './advantages.js';
import { checkExperience, type Experience, type ExperienceShape } from './experience.js';
import { shapeRewards, tokenKl } from './kl.js';
import { clipRewards, maskedMoments, normalizeRewards } from './normalize.js';

/*
 * From a generation to an Experience batch, as plain typed arrays: the pure middle of the
 * experience maker (src/rollout/maker.ts runs the actors around it). After OpenRLHF
 * `openrlhf/trainer/ppo_utils/experience_maker.py` (make_experience → compute_reward →
 * advantages) and verl `verl/trainer/ppo/ray_trainer.py` (apply_kl_penalty → compute_advantage).
 */

/** The token layout of a rollout: what every scorer (reference, critic, policy) reads. */
export interface RolloutLayout {
  /** (B, L) |pad…|prompt|response|…pad|. */
  readonly sequences: Int32Array;
  /** (B, L) 1 on real tokens. */
  readonly attentionMask: Uint8Array;
  /** (B, A) 1 on response tokens. */
  readonly actionMask: Uint8Array;
  /** P */
  readonly promptLength: number;
  readonly shape: ExperienceShape;
}

/** What `generate` returns, as far as a layout needs it. */
export interface GeneratedRows {
  readonly sequences: {
    readonly ids: Int32Array;
    readonly mask: Uint8Array;
    readonly batch: number;
    readonly length: number;
  };
  /** (B·L) 1 on response tokens. */
  readonly actionMask: Uint8Array;
  readonly promptLength: number;
}

/** A generation's rows as a rollout layout: the response part of its action mask, (B, A). */
export function layoutOf(g: GeneratedRows): RolloutLayout {
  const { batch: B, length: L } = g.sequences;
  const P = g.promptLength;
  const A = L - P;
  if (A < 1) {
    throw new TroupeError('BAD_ARGUMENT', `layoutOf: no response positions (L ${L}, P ${P})`);
  }
  const actionMask = new Uint8Array(B * A);
  for (let b = 0; b < B; b++) actionMask.set(g.actionMask.subarray(b * L + P, (b + 1) * L), b * A);
  return {
    sequences: g.sequences.ids,
    attentionMask: g.sequences.mask,
    actionMask,
    promptLength: P,
    shape: { batch: B, length: L, actions: A },
  };
}

/**
 * Rows [lo, hi) of a layout: the same columns (L, P, A), so a scorer of the slice gives each row
 * what it gives that row in the whole.
 */
export function sliceRollout(r: RolloutLayout, lo: number, hi: number): RolloutLayout {
  const { batch: B, length: L, actions: A } = r.shape;
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && 0 <= lo && lo < hi && hi <= B)) {
    throw new TroupeError('BAD_ARGUMENT', `sliceRollout: rows [${lo}, ${hi}) of a batch of ${B}`);
  }
  return {
    sequences: r.sequences.slice(lo * L, hi * L),
    attentionMask: r.attentionMask.slice(lo * L, hi * L),
    actionMask: r.actionMask.slice(lo * A, hi * A),
    promptLength: r.promptLength,
    shape: { batch: hi - lo, length: L, actions: A },
  };
}

export interface AssembleInputs {
  readonly layout: RolloutLayout;
  /** (B, A) log π_old(a|s). */
  readonly oldLogp: Float32Array;
  /** (B, A) log π_ref(a|s), when there is a reference. */
  readonly refLogp?: Float32Array;
  /** (B, A) V(s_t), when there is a critic. */
  readonly values?: Float32Array;
  /** (B) the sequence reward from the reward sources. */
  readonly rewards: Float32Array;
  /** (B) group of each row (the samples of one prompt share one). */
  readonly groups: ArrayLike<number>;
  /** (B) per-row values to carry for metrics (per-source rewards, …). */
  readonly info?: Readonly<Record<string, Float32Array>>;
}

export interface AssembleParams {
  readonly estimator: AdvantageEstimatorName;
  readonly gamma?: number;
  readonly lambda?: number;
  /** gae: whiten the advantages (default true). */
  readonly whiten?: boolean;
  /** grpo: divide by the group std (false: Dr.GRPO). */
  readonly normByStd?: boolean;
  /** β of the KL penalty in the reward (0: none; the KL is still measured when there is a reference). */
  readonly klCoef: number;
  readonly klEstimator: KlEstimatorName;
  /** Clamp each row's reward to [low, high] before anything else (OpenRLHF reward_clip_range). */
  readonly rewardClip?: readonly [number, number];
  /** Normalise the rewards over the batch, (r − mean)/std. */
  readonly rewardNormalize?: boolean;
}

const OUTCOME = new Set<AdvantageEstimatorName>(['grpo', 'rloo', 'reinforce_plus_plus_baseline']);

/**
 * The Experience of a scored rollout:
 *   r ← clip(r), normalise(r)                         (when asked)
 *   KL_t = estimator(log π_old, log π_ref)            (with a reference)
 *   r_t = −β·KL_t + [t = last action]·r               (shapeRewards; β = 0 without a KL in reward)
 *   gae, reinforce_plus_plus: Â from r_t (and V);  grpo, rloo, reinforce_plus_plus_baseline: Â
 *   from the scores s = Σ_t r_t (verl sums token_level_rewards), grouped by prompt.
 * `info` gains response_length and score. Checked (checkExperience) before it is returned.
 */
export function assembleExperience(
  inputs: AssembleInputs,
  params: AssembleParams,
): { experience: Experience; meanKl: number } {
  const { layout, groups } = inputs;
  const { batch: B, actions: A } = layout.shape;
  const mask = layout.actionMask;
  if (params.klCoef !== 0 && !inputs.refLogp) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `assembleExperience: a KL penalty in the reward (klCoef ${params.klCoef}) needs reference log-probs`,
    );
  }
  let rewards = inputs.rewards;
  if (params.rewardClip) rewards = clipRewards(rewards, params.rewardClip[0], params.rewardClip[1]);
  if (params.rewardNormalize) rewards = normalizeRewards(rewards);
  const shaped = shapeRewards(
    {
      shape: layout.shape,
      rewards,
      logp: inputs.oldLogp,
      refLogp: inputs.refLogp ?? inputs.oldLogp,
      mask,
    },
    { beta: params.klCoef, estimator: params.klEstimator },
  );
  const kl = inputs.refLogp
    ? tokenKl(inputs.oldLogp, inputs.refLogp, mask, params.klEstimator)
    : undefined;
  const scores = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let t = 0; t < A; t++) s += shaped.tokenRewards[b * A + t];
    scores[b] = s;
  }
  const { advantages, returns } = computeAdvantages(
    params.estimator,
    {
      shape: layout.shape,
      mask,
      ...(OUTCOME.has(params.estimator) ? { scores, groups } : {}),
      ...(params.estimator === 'gae' || params.estimator === 'reinforce_plus_plus'
        ? { tokenRewards: shaped.tokenRewards }
        : {}),
      ...(params.estimator === 'gae' ? { values: inputs.values } : {}),
    },
    {
      gamma: params.gamma,
      lambda: params.lambda,
      whiten: params.whiten,
      normByStd: params.normByStd,
    },
  );
  const responseLength = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < A; t++) responseLength[b] += mask[b * A + t];
  }
  const experience: Experience = {
    sequences: layout.sequences,
    attentionMask: layout.attentionMask,
    actionMask: mask,
    actionLogProbs: inputs.oldLogp,
    ...(inputs.refLogp ? { refLogProbs: inputs.refLogp } : {}),
    ...(inputs.values ? { values: inputs.values } : {}),
    returns,
    advantages,
    ...(kl ? { kl } : {}),
    rewards: inputs.rewards,
    promptLength: layout.promptLength,
    shape: layout.shape,
    info: { ...inputs.info, response_length: responseLength, score: scores },
  };
  checkExperience(experience);
  return { experience, meanKl: kl ? shaped.meanKl : 0 };
}

/**
 * The rows of a batch of B in `count` minibatches, shuffled by a seeded draw (OpenRLHF shuffles
 * its replay buffer each epoch). Sizes differ by at most one. One minibatch is every row in
 * batch order: a shuffle would change nothing of its mean but the order of its sums, and in
 * order GRPO's groups of samples stay together when the rows are split over replicas or
 * micro-batches (each replica then runs fewer distinct prompts: targetLogProbs' sharePrefix).
 */
export function minibatchRows(B: number, count: number, key: StreamKey): number[][] {
  if (!Number.isSafeInteger(count) || count < 1 || count > B) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `minibatchRows: count must be an integer in [1, ${B}] (the batch), got ${count}`,
    );
  }
  if (count === 1) return [Array.from({ length: B }, (_, i) => i)];
  const order = Array.from(RandomStream.of(key).permutation(B));
  const out: number[][] = [];
  for (let k = 0; k < count; k++) {
    out.push(order.slice(Math.floor((k * B) / count), Math.floor(((k + 1) * B) / count)));
  }
  return out;
}

/** Masked mean and (population) std of (B, A) values over the action tokens. */
export function tokenStats(x: Float32Array, mask: Uint8Array): { mean: number; std: number } {
  const { n, mean, ss } = maskedMoments(x, mask);
  return { mean, std: n > 0 ? Math.sqrt(ss / n) : 0 };
}

function rowStats(x: Float32Array): { mean: number; std: number } {
  return tokenStats(x, new Uint8Array(x.length).fill(1));
}

/**
 * What a rollout says about itself: reward mean/std (total and per `reward/<source>` info column),
 * response length, KL, advantages, returns, values and their explained variance
 * 1 − Var(R − V)/Var(R) over the action tokens.
 */
export function experienceMetrics(e: Experience): Record<string, number> {
  const m: Record<string, number> = {};
  const put = (name: string, s: { mean: number; std: number }, std = true) => {
    m[`${name}/mean`] = s.mean;
    if (std) m[`${name}/std`] = s.std;
  };
  put('reward', rowStats(e.rewards));
  for (const [k, v] of Object.entries(e.info)) if (k.startsWith('reward/')) put(k, rowStats(v));
  put('response_length', rowStats(e.info.response_length ?? new Float32Array(1)));
  const mask = e.actionMask;
  if (e.kl) m.kl = tokenStats(e.kl, mask).mean;
  if (e.advantages) put('advantages', tokenStats(e.advantages, mask));
  if (e.returns) put('returns', tokenStats(e.returns, mask), false);
  if (e.values && e.returns) {
    put('values', tokenStats(e.values, mask), false);
    const residual = Float32Array.from(e.returns, (r, i) => r - (e.values as Float32Array)[i]);
    const vr = tokenStats(e.returns, mask).std ** 2;
    m['critic/explained_variance'] = vr > 0 ? 1 - tokenStats(residual, mask).std ** 2 / vr : 0;
  }
  return m;
}
