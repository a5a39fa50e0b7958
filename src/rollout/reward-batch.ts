/*
 * What the experience maker hands a reward source and gets back. They live here, in the rollout
 * layer, because the maker (./maker.ts) is written against them and rollout sits above reward in
 * the layer order (docs/layers.md); src/reward/types.ts re-exports them beside `RewardSource`.
 */

/** One batch to score: row i is `prompts[i]`, `completions[i]` and `columns[c][i]` for each column. */
export interface RewardBatch {
  readonly prompts: readonly string[];
  readonly completions: readonly string[];
  /** Extra dataset columns (`answer`, `keywords`, …), one value per row. */
  readonly columns: Readonly<Record<string, readonly unknown[]>>;
}

/** A reward and its parts, so the trainer can log each source (`reward/exact-match`). */
export interface DetailedReward {
  /** (B,) */
  readonly total: Float32Array;
  /** Source name → (B,) unweighted rewards. */
  readonly parts: Readonly<Record<string, Float32Array>>;
}
