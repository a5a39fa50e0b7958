import { TroupeError } from '../../errors.js';
import { type DataLocation, dataError } from '../datasets/location.js';

/** How long a tokenized example may be, and what happens when it is longer. */
export interface LengthOptions {
  /** Longest whole sequence (prompt and reply) in tokens; default unlimited. */
  readonly maxLength?: number;
  /**
   * An example longer than `maxLength`: 'error' (default; the message names the example's file
   * and line), 'drop' (the tokenizing function returns undefined), or 'truncate' (keep its start,
   * cut the end of the reply).
   */
  readonly overlong?: 'error' | 'drop' | 'truncate';
  /** Longest prompt in tokens; a longer prompt is cut (see `promptTruncation`). Default unlimited. */
  readonly maxPromptLength?: number;
  /**
   * Which end of an over-long prompt survives: 'keep-end' (default; the tokens next to the reply,
   * as TRL's DPO does) or 'keep-start'.
   */
  readonly promptTruncation?: 'keep-start' | 'keep-end';
}

export function checkLengthOptions(opts: LengthOptions, fn: string): void {
  for (const key of ['maxLength', 'maxPromptLength'] as const) {
    const v = opts[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) {
      throw new TroupeError('BAD_ARGUMENT', `${fn}: '${key}' must be a positive integer, got ${v}`);
    }
  }
  if (opts.overlong !== undefined && !['error', 'drop', 'truncate'].includes(opts.overlong)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${fn}: 'overlong' must be 'error', 'drop' or 'truncate', got '${opts.overlong}'`,
    );
  }
  const pt = opts.promptTruncation;
  if (pt !== undefined && pt !== 'keep-start' && pt !== 'keep-end') {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${fn}: 'promptTruncation' must be 'keep-start' or 'keep-end', got '${pt}'`,
    );
  }
}

/** Cut a prompt to `maxPromptLength` tokens, keeping the end (default) or the start. */
export function truncatePrompt(ids: readonly number[], opts: LengthOptions): number[] {
  const max = opts.maxPromptLength;
  if (max === undefined || ids.length <= max) return [...ids];
  return opts.promptTruncation === 'keep-start' ? ids.slice(0, max) : ids.slice(ids.length - max);
}

/**
 * The length an example of `length` tokens (`promptLength` of them prompt) keeps under
 * `maxLength`: `length` itself when it fits, else (by policy) a shorter length, undefined
 * (drop), or an error naming the example.
 */
export function fitLength(
  length: number,
  promptLength: number,
  opts: LengthOptions,
  where: DataLocation | undefined,
): number | undefined {
  const max = opts.maxLength;
  if (max === undefined || length <= max) return length;
  const policy = opts.overlong ?? 'error';
  if (policy === 'drop') return undefined;
  if (policy === 'truncate' && promptLength < max) return max;
  const why =
    policy === 'truncate'
      ? `its prompt alone has ${promptLength} tokens, leaving no room for the reply; set maxPromptLength below ${max}`
      : "set overlong: 'truncate' or 'drop', or raise maxLength";
  throw dataError(where, `example has ${length} tokens, more than maxLength ${max}; ${why}`, {
    length,
    maxLength: max,
  });
}
