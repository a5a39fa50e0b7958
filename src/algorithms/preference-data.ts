import type { DpoConfig, RmConfig } from '../config/schema.js';
import {
  collatePreferences,
  type PreferenceItem,
  tokenizePreference,
} from '../data/batching/index.js';
import { allDroppedError } from '../data/batching/length.js';
import type { Example, PreferenceExample } from '../data/datasets/index.js';
import { dataError } from '../data/datasets/location.js';
import { splitOrigin } from '../data/split.js';
import type { BpeTokenizer } from '../data/tokenizer/index.js';
import type { PairBatch, RefLogps } from './roles/preference-learner.js';

/*
 * Preference data for the reward model and the DPO family: rows → tokenised pairs (or KTO's
 * unpaired examples), batches of 2B rows with their reference log-probs, and their shards.
 */

type PreferenceConfig = RmConfig | DpoConfig;

/** A tokenised pair, with its reference log-probs once they are known. */
export interface Pair extends PreferenceItem {
  ref?: { chosen: number; rejected: number };
  /** The row's soft label `chosen_prob` = P(chosen ≻ rejected), when it has one. */
  chosenProb?: number;
}

/** The soft-label column a reward model reads (Constitutional AI's feedback probabilities). */
export const SOFT_LABEL_COLUMN = 'chosen_prob';

/** A row's `chosen_prob`, checked: a number in [0, 1], or undefined when the row has none. */
function softLabelOf(e: PreferenceExample): number | undefined {
  const v = e.extra[SOFT_LABEL_COLUMN];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
    throw dataError(
      e.where,
      `column '${SOFT_LABEL_COLUMN}' must be a probability in [0, 1] (P(chosen ≻ rejected)); got ${JSON.stringify(v)}`,
      { column: SOFT_LABEL_COLUMN },
    );
  }
  return v;
}

export interface Batch {
  readonly pairs: PairBatch;
  readonly ref?: RefLogps;
}

export type Item = Pair | Unpaired;

/** One KTO example: a prompt and one completion, labelled desirable or not. */
export interface Unpaired {
  readonly ids: number[];
  readonly mask: Uint8Array;
  readonly promptLength: number;
  readonly desirable: boolean;
}

/** Pairs → unpaired examples (chosen desirable, rejected undesirable), TRL's unpair_preference_dataset. */
export function unpair(pairs: readonly PreferenceItem[]): Unpaired[] {
  return pairs.flatMap((p) => [
    { ids: p.chosen, mask: p.chosenMask, promptLength: p.promptLength, desirable: true },
    { ids: p.rejected, mask: p.rejectedMask, promptLength: p.promptLength, desirable: false },
  ]);
}

/**
 * B unpaired examples → 2B rows: the examples, then each prompt with the next example's
 * completion (the mismatched rows whose log-ratio estimates KTO's KL term), right-padded.
 */
export function collateKto(padId: number) {
  return (items: Unpaired[]): Batch => {
    const B = items.length;
    const rows: number[][] = [];
    const masks: Uint8Array[] = [];
    for (const it of items) {
      rows.push(it.ids);
      masks.push(it.mask);
    }
    for (let i = 0; i < B; i++) {
      const host = items[i];
      const donor = items[(i + 1) % B];
      const completion = donor.ids.slice(donor.promptLength);
      const ids = [...host.ids.slice(0, host.promptLength), ...completion];
      const mask = new Uint8Array(ids.length);
      mask.set(donor.mask.subarray(donor.promptLength), host.promptLength);
      rows.push(ids);
      masks.push(mask);
    }
    const T = Math.max(...rows.map((r) => r.length));
    const ids = new Int32Array(2 * B * T).fill(padId);
    const mask = new Uint8Array(2 * B * T);
    const lossMask = new Uint8Array(2 * B * T);
    rows.forEach((r, b) => {
      ids.set(r, b * T);
      mask.fill(1, b * T, b * T + r.length);
      lossMask.set(masks[b], b * T);
    });
    return {
      pairs: {
        ids,
        mask,
        lossMask,
        batch: 2 * B,
        length: T,
        desirable: Uint8Array.from(items, (it) => (it.desirable ? 1 : 0)),
      },
    };
  };
}

/** How the pairs of a run are batched, for each layout a preference loss's registry entry can have. */
export interface Layout {
  /** The training (or eval) items made from the tokenised pairs. */
  items(pairs: Pair[]): Item[];
  /** B items → a batch of 2B rows. */
  collate(padId: number): (items: Item[]) => Batch;
  /**
   * Whether each row's reference log-probs can be computed once before training: not for the
   * unpaired layout, whose mismatched (KL) rows pair each prompt with another row of its batch.
   */
  readonly precomputable: boolean;
}

export const LAYOUTS: Readonly<Record<'paired' | 'unpaired', Layout>> = {
  paired: {
    items: (pairs) => pairs,
    collate: (padId) => collate(padId) as (items: Item[]) => Batch,
    precomputable: true,
  },
  unpaired: {
    items: unpair,
    collate: (padId) => collateKto(padId) as (items: Item[]) => Batch,
    precomputable: false,
  },
};

/** Preference rows → tokenised pairs; a split that keeps none is refused naming its file. */
export function toPairs(
  c: PreferenceConfig,
  tok: BpeTokenizer,
  examples: readonly Example[],
  split: 'train' | 'eval',
): Pair[] {
  const opts = { maxLength: c.data.maxLength, overlong: 'drop', appendEos: true } as const;
  const out: Pair[] = [];
  for (const e of examples) {
    if (e.kind !== 'preference') {
      throw dataError(
        e.where,
        `${c.algorithm} reads preference rows (prompt, chosen, rejected); this is a '${e.kind}' row`,
        { kind: e.kind },
      );
    }
    const it = tokenizePreference(tok, e, opts);
    const chosenProb = softLabelOf(e);
    if (it) out.push(chosenProb === undefined ? it : { ...it, chosenProb });
  }
  if (out.length === 0) {
    // A pair is dropped when either side is over maxLength: its longer side is what must fit.
    let shortest = Number.POSITIVE_INFINITY;
    for (const e of examples) {
      const it = tokenizePreference(tok, e as PreferenceExample, { appendEos: true })!;
      shortest = Math.min(shortest, Math.max(it.chosen.length, it.rejected.length));
    }
    throw allDroppedError(
      splitOrigin(c.data, split),
      'pair',
      examples.length,
      c.data.maxLength,
      shortest,
    );
  }
  return out;
}

export function collate(padId: number) {
  return (items: Pair[]): Batch => {
    const b = collatePreferences(items, { padId });
    const pairs: PairBatch = { ...b.tokens, lossMask: b.lossMask };
    const withRef = items.every((p) => p.ref);
    // Soft labels travel when any pair has one; a pair without is a hard label (p = 1).
    const soft = items.some((p) => p.chosenProb !== undefined);
    return {
      pairs: soft
        ? { ...pairs, chosenProb: Float32Array.from(items, (p) => p.chosenProb ?? 1) }
        : pairs,
      ref: withRef
        ? {
            chosen: Float32Array.from(items, (p) => p.ref!.chosen),
            rejected: Float32Array.from(items, (p) => p.ref!.rejected),
          }
        : undefined,
    };
  };
}

/** Pairs [lo, hi) of a batch of 2B rows (chosen rows, then rejected rows). */
export function pairSlice(b: Batch, lo: number, hi: number): Batch {
  const { length: T } = b.pairs;
  const B = b.pairs.batch / 2;
  const take = <A extends Uint8Array | Int32Array>(x: A): A => {
    const out = new (x.constructor as new (n: number) => A)(2 * (hi - lo) * T);
    out.set(x.subarray(lo * T, hi * T), 0);
    out.set(x.subarray((B + lo) * T, (B + hi) * T), (hi - lo) * T);
    return out;
  };
  return {
    pairs: {
      ids: take(b.pairs.ids),
      mask: take(b.pairs.mask),
      lossMask: take(b.pairs.lossMask),
      batch: 2 * (hi - lo),
      length: T,
      desirable: b.pairs.desirable?.slice(lo, hi),
      chosenProb: b.pairs.chosenProb?.slice(lo, hi),
    },
    ref: b.ref
      ? { chosen: b.ref.chosen.slice(lo, hi), rejected: b.ref.rejected.slice(lo, hi) }
      : undefined,
  };
}
