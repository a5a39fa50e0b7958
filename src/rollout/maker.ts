import { type AssembleParams, assembleExperience, tokenStats } from './assemble.js';
import { decodeRollout } from './codec.js';
import type { Experience } from './experience.js';
import type { DetailedReward, RewardBatch } from './reward-batch.js';
import { PhaseTimes } from './timing.js';

/*
 * The experience maker: a generated batch → in parallel on their own actors: the policy's
 * log-probs (π_old), the reference's, the critic's values and the rewards → KL shaping and
 * advantages (assembleExperience) → one Experience. After OpenRLHF
 * `openrlhf/trainer/ppo_utils/experience_maker.py`. The actors are reached through the narrow
 * interfaces below, so the maker works with any implementation of them (worker-thread actors in
 * `trainRl`).
 */

/** A prompt row: its ids, its text and the columns its rewards read (`answer`, …). */
export interface PromptRow {
  readonly ids: readonly number[];
  readonly text: string;
  readonly columns: Readonly<Record<string, unknown>>;
}

/** What a generator returns for prompts × n samples (rows grouped by prompt, n at a time). */
export interface Generated {
  /** A `rollout` frame (encodeRollout) of the rows. */
  readonly frame: ArrayBuffer;
  readonly responses: readonly (readonly number[])[];
  /** log π of each sampled token at generation time. */
  readonly logprobs: readonly (readonly number[])[];
  /** True where the row ended on a stop token. */
  readonly stopped: readonly boolean[];
}

/** The scorers a maker calls; they share the rollout frame (read it, do not transfer it). */
export interface Scorers {
  /**
   * log π_old and the entropy of each action. Without it, π_old is the generator's log-prob of
   * each sampled token (the update computes its own, on-policy; entropy and mismatch are its).
   */
  readonly policy?: (frame: ArrayBuffer) => Promise<{ logp: Float32Array; entropy: Float32Array }>;
  readonly reference?: (frame: ArrayBuffer) => Promise<Float32Array>;
  readonly critic?: (frame: ArrayBuffer) => Promise<Float32Array>;
  readonly reward: (batch: RewardBatch) => Promise<DetailedReward>;
}

/** The phases a maker times (seconds, wall clock of each call; they overlap). */
export type ScorePhase = 'logprobs' | 'reference' | 'critic' | 'reward';

export interface MadeExperience {
  readonly experience: Experience;
  /** Batch mean of the per-row mean KL (what a KL controller updates on); 0 without a reference. */
  readonly meanKl: number;
  /** Rollout metrics the Experience does not hold: entropy, generator/policy mismatch, stops. */
  readonly metrics: Readonly<Record<string, number>>;
  readonly seconds: Readonly<Record<ScorePhase, number>>;
}

export interface MakerOptions {
  /** Responses per prompt (rows of one prompt are adjacent). */
  readonly samplesPerPrompt: number;
  /** Token ids → text, for the rewards. */
  readonly decode: (ids: readonly number[]) => string;
  /** A response's trailing stop token is not part of its text. */
  readonly eosTokenId?: number;
}

/**
 * The reward batch of generated rows: row i is prompt ⌊i / n⌋ with response i (its trailing EOS
 * dropped), and every column any prompt has (null where a row lacks it).
 */
export function rewardBatchOf(
  prompts: readonly PromptRow[],
  g: Pick<Generated, 'responses'>,
  o: MakerOptions,
): RewardBatch {
  const n = o.samplesPerPrompt;
  const rows = g.responses.map((_, i) => prompts[Math.floor(i / n)]);
  const names = new Set(rows.flatMap((p) => Object.keys(p.columns)));
  const eos = o.eosTokenId;
  return {
    prompts: rows.map((p) => p.text),
    completions: g.responses.map((r) =>
      o.decode(eos !== undefined && r.length > 0 && r[r.length - 1] === eos ? r.slice(0, -1) : r),
    ),
    columns: Object.fromEntries(
      [...names].map((k) => [k, rows.map((p) => (k in p.columns ? p.columns[k] : null))]),
    ),
  };
}

/** Mean |a − b| over the masked tokens of (B, A) `a` and per-row lists `b`. */
function meanAbsDiff(
  a: Float32Array,
  b: readonly (readonly number[])[],
  mask: Uint8Array,
  A: number,
): number {
  let s = 0;
  let n = 0;
  b.forEach((row, r) => {
    row.forEach((x, t) => {
      if (t < A && mask[r * A + t]) {
        s += Math.abs(a[r * A + t] - x);
        n++;
      }
    });
  });
  return n > 0 ? s / n : 0;
}

/** Per-row log-probs as a (B, A) array over the action mask (0 where masked). */
function sampledLogp(
  rows: readonly (readonly number[])[],
  mask: Uint8Array,
  A: number,
): Float32Array {
  const out = new Float32Array(rows.length * A);
  rows.forEach((row, r) => {
    row.forEach((x, t) => {
      if (t < A && mask[r * A + t]) out[r * A + t] = x;
    });
  });
  return out;
}

/**
 * Scores generated rows on every scorer at once and assembles their Experience. `params` is read
 * per call (a KL controller's β changes between iterations).
 */
export async function makeExperience(
  prompts: readonly PromptRow[],
  g: Generated,
  scorers: Scorers,
  params: AssembleParams,
  o: MakerOptions,
): Promise<MadeExperience> {
  const times = new PhaseTimes<ScorePhase>(['logprobs', 'reference', 'critic', 'reward']);
  const timed = <T>(phase: ScorePhase, f: () => Promise<T>) => times.time(phase, f);
  // Decoding copies every array out of the frame, and a scorer must not transfer the frame it is
  // given (the others read it too): each actor call structured-clones it.
  const layout = decodeRollout(g.frame);
  const { policy, reference, critic } = scorers;
  const [old, ref, values, rewards] = await Promise.all([
    policy ? timed('logprobs', () => policy(g.frame)) : undefined,
    reference ? timed('reference', () => reference(g.frame)) : undefined,
    critic ? timed('critic', () => critic(g.frame)) : undefined,
    timed('reward', () => scorers.reward(rewardBatchOf(prompts, g, o))),
  ]);
  const n = o.samplesPerPrompt;
  const { experience, meanKl } = assembleExperience(
    {
      layout,
      oldLogp: old?.logp ?? sampledLogp(g.logprobs, layout.actionMask, layout.shape.actions),
      refLogp: ref,
      values,
      rewards: rewards.total,
      groups: Array.from({ length: layout.shape.batch }, (_, i) => Math.floor(i / n)),
      info: Object.fromEntries(Object.entries(rewards.parts).map(([k, v]) => [`reward/${k}`, v])),
    },
    params,
  );
  const { actionMask, shape } = layout;
  const metrics = {
    ...(old
      ? {
          'actor/entropy': tokenStats(old.entropy, actionMask).mean,
          'rollout/logprob_diff': meanAbsDiff(old.logp, g.logprobs, actionMask, shape.actions),
        }
      : {}),
    'rollout/stopped': g.stopped.filter(Boolean).length / g.stopped.length,
  };
  return { experience, meanKl, metrics, seconds: times.seconds };
}
