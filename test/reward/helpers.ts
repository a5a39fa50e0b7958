import type { RewardBatch } from '../../src/reward/index.js';

/** A batch from completions alone (prompts empty strings), with optional columns. */
export function batchOf(
  completions: string[],
  columns: Record<string, unknown[]> = {},
  prompts: string[] = completions.map(() => ''),
): RewardBatch {
  return { prompts, completions, columns };
}
