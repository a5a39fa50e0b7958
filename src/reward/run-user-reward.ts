import type { RewardBatch } from './types.js';

/** What `moduleSource` sends the pool: the user's module, its export and the batch. */
export interface UserRewardTask {
  /** File URL of the user's module. */
  readonly module: string;
  readonly exportName: string;
  readonly batch: RewardBatch;
}

/**
 * Runs in a pool thread: import the user's reward module and call its export with
 * `{ prompts, completions, ...columns }`. The result is checked on the caller's side.
 */
export async function runUserReward(task: UserRewardTask): Promise<unknown> {
  const mod = (await import(task.module)) as Record<string, unknown>;
  const fn = mod[task.exportName];
  if (typeof fn !== 'function') {
    const exports = Object.keys(mod).join(', ') || 'none';
    throw new TypeError(
      `module ${task.module} has no function export '${task.exportName}' (exports: ${exports})`,
    );
  }
  const { prompts, completions, columns } = task.batch;
  return fn({ ...columns, prompts, completions });
}
