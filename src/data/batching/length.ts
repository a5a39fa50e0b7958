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

/**
 * BAD_DATA for a split whose every example `overlong: 'drop'` dropped: how many there were, the
 * shortest one's length, and the maxLength that would keep it. `origin` names the file.
 */
export function allDroppedError(
  origin: string,
  what: string,
  rows: number,
  maxLength: number,
  shortest: number,
): TroupeError {
  return new TroupeError(
    'BAD_DATA',
    `${origin}: every ${what} is longer than data.maxLength ${maxLength} tokens, so all ${rows} ` +
      `were dropped (the shortest has ${shortest}); raise data.maxLength to at least ${shortest}`,
    { details: { rows, maxLength, shortest } },
  );
}

/**
 * BAD_DATA for a split of RL prompts that keeps none: each was empty (no tokens) or longer than
 * data.maxLength. `lengths` are the prompts' token counts.
 */
export function promptsDroppedError(
  origin: string,
  lengths: readonly number[],
  maxLength: number,
): TroupeError {
  let empty = 0;
  let long = 0;
  let shortest = Number.POSITIVE_INFINITY;
  for (const n of lengths) {
    if (n === 0) empty++;
    else if (n > maxLength) {
      long++;
      shortest = Math.min(shortest, n);
    }
  }
  const parts = [
    long > 0
      ? `${long} longer than data.maxLength ${maxLength} tokens (the shortest has ${shortest})`
      : '',
    empty > 0 ? `${empty} empty (no tokens)` : '',
  ].filter((p) => p !== '');
  const fix =
    long > 0 ? `raise data.maxLength to at least ${shortest}` : 'give the rows a non-empty prompt';
  return new TroupeError(
    'BAD_DATA',
    `${origin}: no prompt was kept: of ${lengths.length}, ${parts.join(' and ')}; ${fix}`,
    { details: { rows: lengths.length, empty, long, maxLength } },
  );
}
