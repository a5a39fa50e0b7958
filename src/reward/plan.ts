import { TroupeError } from '../errors.js';
import type { RewardSpec } from './registry.js';

/*
 * The reward actor's arguments, checked before anything is built (so a controller can fail
 * before it spawns): the sources, their weights and names, the pool and the time limit.
 */

export interface RewardArgs {
  /** The sources, each a spec as rewardFromSpec takes, plus an optional weight (default 1) and name. */
  readonly sources: readonly (RewardSpec & { readonly weight?: number })[];
  /** Threads of the task pool for `module` sources (default 1); no pool is started when there are none. */
  readonly poolThreads?: number;
  /**
   * A limit on each source's call, ms (`reward.timeoutMs`): past it the call is aborted and
   * fails with TASK_TIMEOUT naming the source. 0 or absent: none.
   */
  readonly timeoutMs?: number;
}

/** One source of the actor, checked: its distinct name, its weight and its spec for the registry. */
export interface PlannedSource {
  readonly name: string;
  readonly weight: number;
  readonly spec: RewardSpec;
}

function bad(message: string, details: Record<string, unknown> = {}): TroupeError {
  return new TroupeError('BAD_ARGUMENT', `reward actor: ${message}`, { details });
}

/**
 * Check the actor's arguments without building anything (so a controller can fail before it
 * spawns): at least one source, each with a `type`, a finite `weight` and a distinct name (its
 * `name`, else its type; two unnamed sources of one type must be given names).
 */
export function planRewardSources(args: RewardArgs): PlannedSource[] {
  if (args === null || typeof args !== 'object') throw bad('arguments must be an object');
  const { sources, poolThreads, timeoutMs } = args;
  if (!Array.isArray(sources) || sources.length === 0) {
    throw bad("'sources' must list at least one reward source ({ type: 'exact-match', … })");
  }
  if (poolThreads !== undefined && !(Number.isInteger(poolThreads) && poolThreads > 0)) {
    throw bad(`'poolThreads' must be an integer > 0, got ${poolThreads}`);
  }
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs >= 0)) {
    throw bad(`'timeoutMs' must be a number ≥ 0 (0: no limit), got ${timeoutMs}`);
  }
  const planned: PlannedSource[] = [];
  const seen = new Map<string, number>();
  sources.forEach((s, i) => {
    if (s === null || typeof s !== 'object' || typeof s.type !== 'string' || s.type === '') {
      throw bad(`sources[${i}] needs a 'type' (a reward type such as 'exact-match' or 'model')`, {
        index: i,
      });
    }
    const { weight = 1, ...spec } = s;
    if (typeof weight !== 'number' || !Number.isFinite(weight)) {
      throw bad(`sources[${i}] ('${s.type}') 'weight' must be a finite number, got ${weight}`, {
        index: i,
      });
    }
    if (spec.name !== undefined && (typeof spec.name !== 'string' || spec.name === '')) {
      throw bad(`sources[${i}] ('${s.type}') 'name' must be a non-empty string`, { index: i });
    }
    const name = (spec.name as string | undefined) ?? spec.type;
    const first = seen.get(name);
    if (first !== undefined) {
      const unnamed = spec.name === undefined && sources[first].name === undefined;
      throw bad(
        unnamed
          ? `sources[${first}] and sources[${i}] are both '${name}' sources without a 'name'; give each a distinct 'name'`
          : `sources[${first}] and sources[${i}] are both named '${name}'; give each a distinct 'name'`,
        { index: i, name },
      );
    }
    seen.set(name, i);
    planned.push({ name, weight, spec: { ...spec, name } });
  });
  return planned;
}
