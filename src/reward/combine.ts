import { TroupeError } from '../errors.js';
import { checkRewards } from './check.js';
import type { DetailedReward, RewardBatch, RewardSource, ScoreOptions } from './types.js';

export interface WeightedPart {
  readonly source: RewardSource;
  readonly weight: number;
}

/** A source that also reports each of its parts, for logging (`reward/<name>`). */
export interface DetailedRewardSource extends RewardSource {
  scoreDetailed(batch: RewardBatch, opts?: ScoreOptions): Promise<DetailedReward>;
}

/**
 * r = Σ_k w_k · r_k over the parts, scored concurrently. `parts` in the detailed result are
 * the unweighted rewards of each source, by name (names must be unique).
 */
export function weightedSum(
  parts: readonly WeightedPart[],
  name = 'weighted-sum',
): DetailedRewardSource {
  if (!Array.isArray(parts) || parts.length === 0) {
    throw new TroupeError('BAD_ARGUMENT', `weightedSum '${name}': needs at least one part`);
  }
  const seen = new Set<string>();
  parts.forEach((p, i) => {
    if (!p?.source || typeof p.source.score !== 'function') {
      throw new TroupeError('BAD_ARGUMENT', `weightedSum '${name}': part ${i} has no 'source'`);
    }
    if (typeof p.weight !== 'number' || !Number.isFinite(p.weight)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `weightedSum '${name}': part ${i} ('${p.source.name}') 'weight' must be a finite number, got ${p.weight}`,
      );
    }
    if (seen.has(p.source.name)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `weightedSum '${name}': two parts are named '${p.source.name}'; give each source a distinct 'name'`,
      );
    }
    seen.add(p.source.name);
  });

  const scoreDetailed = async (batch: RewardBatch, opts?: ScoreOptions) => {
    const scored = await Promise.all(
      parts.map(async (p) => checkRewards(p.source, batch, await p.source.score(batch, opts))),
    );
    const total = new Float32Array(batch.completions.length); // (B,)
    const byName: Record<string, Float32Array> = {};
    scored.forEach((r, k) => {
      byName[parts[k].source.name] = r;
      for (let i = 0; i < total.length; i++) total[i] += parts[k].weight * r[i];
    });
    return { total, parts: byName };
  };

  return Object.freeze({
    name,
    scoreDetailed,
    score: async (batch: RewardBatch, opts?: ScoreOptions) =>
      checkRewards({ name }, batch, (await scoreDetailed(batch, opts)).total),
  });
}
