/** One batch to score: row i is `prompts[i]`, `completions[i]` and `columns[c][i]` for each column. */
export interface RewardBatch {
  readonly prompts: readonly string[];
  readonly completions: readonly string[];
  /** Extra dataset columns (`answer`, `keywords`, …), one value per row. */
  readonly columns: Readonly<Record<string, readonly unknown[]>>;
}

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

/** A reward and its parts, so the trainer can log each source (`reward/exact-match`). */
export interface DetailedReward {
  /** (B,) */
  readonly total: Float32Array;
  /** Source name → (B,) unweighted rewards. */
  readonly parts: Readonly<Record<string, Float32Array>>;
}

/** The raw scoring function behind a source; its result is checked by `defineSource`. */
export type RawScore = (
  batch: RewardBatch,
  opts: ScoreOptions,
) => Promise<ArrayLike<unknown>> | ArrayLike<unknown>;
