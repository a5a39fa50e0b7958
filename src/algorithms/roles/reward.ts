import { TaskPool } from '../../actors/pool.js';
import { type RoleFactory, roleRef, transfer } from '../../actors/role.js';
import { type DetailedRewardSource, weightedSum } from '../../reward/combine.js';
import { planRewardSources, type RewardArgs } from '../../reward/plan.js';
import { rewardFromSpec } from '../../reward/registry.js';
import { withTimeout } from '../../reward/timeout.js';
import type { DetailedReward, RewardBatch, RewardSource } from '../../reward/types.js';

/*
 * The reward actor: hosts the configured reward sources (built-ins, modules in a task pool,
 * HTTP scorers, trained reward models) and scores rollouts with their weighted sum.
 */

export type { RewardArgs };

export interface RewardRole {
  /** Names of the sources, in order. */
  names(): Promise<string[]>;
  /**
   * Total (weighted sum) and the unweighted part of each source, by name. Errors name the
   * source (`reward 'exact-match': row 3 is NaN`).
   */
  score(batch: RewardBatch): Promise<DetailedReward>;
}

class Reward implements RewardRole {
  constructor(
    private readonly sourceNames: readonly string[],
    private readonly combined: DetailedRewardSource,
  ) {}

  async names(): Promise<string[]> {
    return [...this.sourceNames];
  }

  async score(batch: RewardBatch): Promise<DetailedReward> {
    const out = await this.combined.scoreDetailed(batch);
    // Every array is freshly made here: move them to the caller instead of copying.
    return transfer(out, [out.total, ...Object.values(out.parts)]);
  }
}

/**
 * Builds the sources in the actor's thread: `module` sources run in a TaskPool started here
 * (its threads are nested in this one and end with it), `model` sources load their reward
 * model now, so a bad checkpoint fails the spawn rather than the first score.
 */
export const createReward: RoleFactory<RewardRole, RewardArgs> = async (args, ctx) => {
  const planned = planRewardSources(args);
  const needsPool = planned.some((p) => p.spec.type === 'module');
  const pool = needsPool
    ? new TaskPool({ name: `${ctx.name}/pool`, maxThreads: args.poolThreads ?? 1 })
    : undefined;
  try {
    const log = (message: string, data?: Record<string, unknown>) => ctx.log('warn', message, data);
    const parts = planned.map((p) => {
      const source = rewardFromSpec(p.spec, { pool, log });
      return {
        source: args.timeoutMs ? withTimeout(source, args.timeoutMs, 'reward.timeoutMs') : source,
        weight: p.weight,
        load: (source as RewardSource & { load?: () => Promise<void> }).load,
      };
    });
    await Promise.all(parts.map((p) => p.load?.()));
    ctx.log(
      'info',
      `reward ready: ${planned.map((p) => `${p.weight} × ${p.name}`).join(' + ')}`,
      pool ? { poolThreads: args.poolThreads ?? 1 } : undefined,
    );
    return new Reward(
      planned.map((p) => p.name),
      weightedSum(
        parts.map(({ source, weight }) => ({ source, weight })),
        ctx.name,
      ),
    );
  } catch (e) {
    await pool?.destroy().catch(() => {});
    throw e;
  }
};

export const REWARD = roleRef<RewardRole, RewardArgs>(import.meta.url, 'createReward');
