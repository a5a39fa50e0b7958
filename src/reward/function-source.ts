import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TaskPool } from '../actors/pool.js';
import { TroupeError } from '../errors.js';
import { defineSource } from './check.js';
import type { UserRewardTask } from './run-user-reward.js';
import type { RewardBatch, RewardSource } from './types.js';

/** What a user's reward function receives: one array per field, one value per row. */
export type UserRewardInput = {
  readonly prompts: readonly string[];
  readonly completions: readonly string[];
} & Readonly<Record<string, readonly unknown[]>>;

export type UserRewardFn = (
  input: UserRewardInput,
) => Promise<ArrayLike<number>> | ArrayLike<number>;

function toInput(batch: RewardBatch): UserRewardInput {
  return { ...batch.columns, prompts: batch.prompts, completions: batch.completions };
}

/** A reward from a function in this thread (tests, cheap rules). Its output is checked. */
export function functionSource(name: string, fn: UserRewardFn): RewardSource {
  if (typeof fn !== 'function') {
    throw new TroupeError('BAD_ARGUMENT', `functionSource '${name}': 'fn' must be a function`);
  }
  return defineSource(name, (batch) => fn(toInput(batch)));
}

export interface ModuleSourceOptions {
  /** The pool that runs the user's code, off the model actors' threads. */
  readonly pool: TaskPool;
  /** Per-batch timeout in ms (the thread is replaced); default: the pool's. */
  readonly timeoutMs?: number;
}

const ADAPTER = new URL(
  `./run-user-reward.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`,
  import.meta.url,
);

/**
 * A reward from a user's module, run in a TaskPool thread:
 * `export default async function score({ prompts, completions, ...columns }): number[]`.
 * A throw, a timeout (TASK_TIMEOUT) or a bad result fails with the source's name. The module
 * is plain JavaScript (`.mjs`/`.js`); a `.ts` module loads only when Troupe itself runs from its
 * TypeScript sources (the pool's threads then have tsx's loader).
 */
export function moduleSource(
  name: string,
  moduleUrlOrPath: string | URL,
  exportName = 'default',
  options: ModuleSourceOptions,
): RewardSource {
  if (!options?.pool) {
    throw new TroupeError('BAD_ARGUMENT', `moduleSource '${name}': option 'pool' is required`);
  }
  const { pool, timeoutMs } = options;
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs >= 0)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `moduleSource '${name}': option 'timeoutMs' must be a number ≥ 0 (0 = none), got ${timeoutMs}`,
    );
  }
  const module =
    moduleUrlOrPath instanceof URL
      ? moduleUrlOrPath.href
      : moduleUrlOrPath.startsWith('file:')
        ? moduleUrlOrPath
        : pathToFileURL(isAbsolute(moduleUrlOrPath) ? moduleUrlOrPath : resolve(moduleUrlOrPath))
            .href;
  const source = defineSource(name, (batch, opts) => {
    const task: UserRewardTask = { module, exportName, batch };
    return pool.run<unknown[]>(ADAPTER, 'runUserReward', task, {
      task: `reward '${name}'`,
      signal: opts.signal,
      timeoutMs,
    });
  });
  /** Import the module and check its export now: a bad module fails before the first batch. */
  const load = async () => {
    try {
      await pool.run(
        ADAPTER,
        'checkUserReward',
        { module, exportName },
        { task: `reward '${name}'` },
      );
    } catch (e) {
      const inner = (e as Error).cause ?? e;
      throw new TroupeError('BAD_REWARD', `reward '${name}': ${(inner as Error).message}`, {
        cause: e,
        details: { source: name, module },
      });
    }
  };
  return Object.freeze({ ...source, load });
}
