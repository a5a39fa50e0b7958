import type { RlConfig } from '../../config/schema.js';
import type { DetailedReward, RewardBatch } from '../../reward/types.js';
import { type MakerOptions, rewardBatchOf } from '../../rollout/maker.js';
import { evalRows } from '../step-loop.js';
import type { Prompt, Rollouts } from './rollouts.js';

/*
 * An RL run's evaluation: one greedy completion per held-out prompt (`train.evalBatches`
 * batches of them, 0: all), scored by the run's rewards. Metrics: `reward`, each source's
 * `reward/<name>`, `response_length`, weighted by the rows of each batch; `prompts` counted.
 */

export interface EvaluateInput {
  readonly c: RlConfig;
  readonly prompts: readonly Prompt[];
  readonly rollouts: Pick<Rollouts, 'sample'>;
  readonly score: (batch: RewardBatch) => Promise<DetailedReward>;
  readonly maker: MakerOptions;
}

/** The run's `evaluate(step)`: undefined when it has no eval prompts. */
export function rlEvaluator(
  x: EvaluateInput,
): (step: number) => Promise<Record<string, number> | undefined> {
  const { c, prompts: all } = x;
  return async (step) => {
    if (all.length === 0) return undefined;
    const take = evalRows(c, all.length);
    const records: { rows: number; values: Record<string, number> }[] = [];
    for (let i = 0; i < take; i += c.train.batchSize) {
      const prompts = all.slice(i, Math.min(i + c.train.batchSize, take));
      const g = await x.rollouts.sample(prompts, step, true);
      const r = await x.score(rewardBatchOf(prompts, g, { ...x.maker, samplesPerPrompt: 1 }));
      const values: Record<string, number> = {
        reward: r.total.reduce((a, b) => a + b, 0) / r.total.length,
        response_length: g.responses.reduce((a, y) => a + y.length, 0) / g.responses.length,
      };
      for (const [k, v] of Object.entries(r.parts))
        values[`reward/${k}`] = v.reduce((a, b) => a + b, 0) / v.length;
      records.push({ rows: prompts.length, values });
    }
    const total = records.reduce((a, r) => a + r.rows, 0);
    const out: Record<string, number> = { prompts: total };
    for (const r of records)
      for (const [k, v] of Object.entries(r.values)) out[k] = (out[k] ?? 0) + (v * r.rows) / total;
    return out;
  };
}
