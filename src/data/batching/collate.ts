import { TroupeError } from '../../errors.js';
import type { PreferenceItem, PromptItem, SftItem } from './examples.js';
import type { PackedBlock } from './pack.js';

/**
 * A batch of token rows as plain arrays: what the model needs to build positions and masks
 * without reading tensors back. Rows are padded to one length; padding may be on either side.
 *
 *   ids:  [B·T] int32, row-major
 *   mask: [B·T] 1 = real token, 0 = padding
 */
export interface TokenBatch {
  readonly ids: Int32Array;
  readonly mask: Uint8Array;
  readonly batch: number;
  readonly length: number;
}

/** Left-pad rows of different lengths into a batch (what generation wants: the last column is live). */
export function leftPad(rows: readonly (readonly number[])[], padId: number): TokenBatch {
  return pad(rows, padId, 'left');
}

/** Right-pad rows (what training wants: the prompt starts at column 0). */
export function rightPad(rows: readonly (readonly number[])[], padId: number): TokenBatch {
  return pad(rows, padId, 'right');
}

function pad(
  rows: readonly (readonly number[])[],
  padId: number,
  side: 'left' | 'right',
): TokenBatch {
  if (rows.length === 0)
    throw new TroupeError('BAD_ARGUMENT', 'A token batch needs at least one row');
  const T = Math.max(...rows.map((r) => r.length));
  if (T === 0) throw new TroupeError('BAD_ARGUMENT', 'Every row of the token batch is empty');
  const B = rows.length;
  const ids = new Int32Array(B * T).fill(padId);
  const mask = new Uint8Array(B * T);
  rows.forEach((r, b) => {
    const start = side === 'left' ? T - r.length : 0;
    for (let t = 0; t < r.length; t++) {
      ids[b * T + start + t] = r[t];
      mask[b * T + start + t] = 1;
    }
  });
  return { ids, mask, batch: B, length: T };
}

/** A training batch: right-padded rows and the targets that count (what `lmLoss` takes). */
export interface TrainBatch {
  /** B rows of T tokens, right-padded (real tokens from column 0). */
  readonly tokens: TokenBatch;
  /** [B·T] 1 where the token counts as a target; 0 on padding. */
  readonly lossMask: Uint8Array;
}

/** A preference batch: chosen rows then rejected rows, one forward pass for both. */
export interface PreferenceBatch {
  /** 2B rows of T tokens: rows 0…B-1 chosen, rows B…2B-1 the rejected of the same pairs. */
  readonly tokens: TokenBatch;
  /** [2B·T] 1 on the reply tokens that count. */
  readonly lossMask: Uint8Array;
  /** [B] prompt tokens at the start of pair b (both rows b and B+b). */
  readonly promptLengths: Int32Array;
}

/** A generation batch: prompts left-padded so that the last column is live. */
export interface PromptBatch {
  /** B rows of P tokens, left-padded. */
  readonly tokens: TokenBatch;
  /** [B] each prompt's extra columns, for the reward functions. */
  readonly extra: readonly Readonly<Record<string, unknown>>[];
}

export interface CollateOptions {
  /** Id written into padding (masked out, so any id works); the tokenizer's pad or EOS id. */
  readonly padId: number;
  /** Round T up to a multiple of this (fewer distinct shapes to compile). Default 1. */
  readonly padToMultipleOf?: number;
}

/** SFT items → right-padded batch (as `rightPad` lays it out) and loss mask. */
export function collateSft(items: readonly SftItem[], opts: CollateOptions): TrainBatch {
  nonEmpty(items, 'collateSft');
  return padRows(
    items.map((it) => it.ids),
    items.map((it) => it.lossMask),
    opts,
  );
}

/** Packed blocks → batch (every block has the same length). */
export function collateBlocks(blocks: readonly PackedBlock[]): TrainBatch {
  nonEmpty(blocks, 'collateBlocks');
  const T = blocks[0].ids.length;
  const B = blocks.length;
  const ids = new Int32Array(B * T);
  const mask = new Uint8Array(B * T);
  const lossMask = new Uint8Array(B * T);
  blocks.forEach((blk, b) => {
    if (blk.ids.length !== T) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `collateBlocks: block ${b} has ${blk.ids.length} tokens, block 0 has ${T}`,
      );
    }
    ids.set(blk.ids, b * T);
    mask.set(blk.mask, b * T);
    lossMask.set(blk.lossMask, b * T);
  });
  return { tokens: { ids, mask, batch: B, length: T }, lossMask };
}

/** Preference items → one batch of 2B rows (chosen, then rejected) padded to one length. */
export function collatePreferences(
  items: readonly PreferenceItem[],
  opts: CollateOptions,
): PreferenceBatch {
  nonEmpty(items, 'collatePreferences');
  const { tokens, lossMask } = padRows(
    [...items.map((it) => it.chosen), ...items.map((it) => it.rejected)],
    [...items.map((it) => it.chosenMask), ...items.map((it) => it.rejectedMask)],
    opts,
  );
  return { tokens, lossMask, promptLengths: Int32Array.from(items, (it) => it.promptLength) };
}

/** Prompt items → left-padded generation batch, with their extra columns. */
export function collatePrompts(items: readonly PromptItem[], opts: CollateOptions): PromptBatch {
  nonEmpty(items, 'collatePrompts');
  return {
    tokens: leftPad(
      items.map((it) => it.ids),
      opts.padId,
    ),
    extra: items.map((it) => it.extra),
  };
}

function padRows(
  rows: readonly (readonly number[])[],
  masks: readonly Uint8Array[],
  opts: CollateOptions,
): TrainBatch {
  const multiple = opts.padToMultipleOf ?? 1;
  if (!Number.isInteger(multiple) || multiple < 1) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `padToMultipleOf must be a positive integer, got ${opts.padToMultipleOf}`,
    );
  }
  const longest = Math.max(...rows.map((r) => r.length));
  if (longest === 0) throw new TroupeError('BAD_ARGUMENT', 'Every row of the batch is empty');
  const T = Math.ceil(longest / multiple) * multiple;
  const B = rows.length;
  const ids = new Int32Array(B * T).fill(opts.padId); // (B, T) row-major
  const mask = new Uint8Array(B * T);
  const lossMask = new Uint8Array(B * T);
  for (let b = 0; b < B; b++) {
    if (masks[b].length !== rows[b].length) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `row ${b} has ${rows[b].length} ids but a loss mask of ${masks[b].length}`,
      );
    }
    ids.set(rows[b], b * T);
    mask.fill(1, b * T, b * T + rows[b].length);
    lossMask.set(masks[b], b * T);
  }
  return { tokens: { ids, mask, batch: B, length: T }, lossMask };
}

function nonEmpty(items: readonly unknown[], fn: string): void {
  if (items.length === 0)
    throw new TroupeError('BAD_ARGUMENT', `${fn}: a batch needs at least one item`);
}
