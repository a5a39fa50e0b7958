import type { RewardBatch } from '../rollout/reward-batch.js';

export type { DetailedReward, RewardBatch } from '../rollout/reward-batch.js';

export interface ScoreOptions {
  readonly signal?: AbortSignal;
}

/**
 * Anything that scores completions: a built-in rule, a user's function or module, an HTTP
 * service, or a weighted sum of these. `score` resolves to one finite reward per row, (B,).
 */
export interface RewardSource {
  readonly name: string;
  score(batch: RewardBatch, opts?: ScoreOptions): Promise<Float32Array>;
}

/** The raw scoring function behind a source; its result is checked by `defineSource`. */
export type RawScore = (
  batch: RewardBatch,
  opts: ScoreOptions,
) => Promise<ArrayLike<unknown>> | ArrayLike<unknown>;
