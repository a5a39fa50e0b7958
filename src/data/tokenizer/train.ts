import { TroupeError } from '../../errors.js';
import type { AddedToken } from './added-tokens.js';
import { AddedTokenSplitter } from './added-tokens.js';
import { BYTE_TO_CHAR } from './bytes.js';
import { bpeOptions } from './models/bpe.js';
import { compilePattern, PATTERNS } from './pattern.js';
import { byteLevelJson } from './spec.js';
import { forEachPiece, Tokenizer } from './tokenizer.js';
import { specialAddedTokens } from './train-common.js';

export interface TrainBpeOptions {
  /** Final vocabulary size: special tokens + 256 byte tokens + merges. */
  readonly vocabSize: number;
  /** A pair seen fewer times than this is never merged; training stops there. Default 2. */
  readonly minFrequency?: number;
  /** Special tokens, given the first ids in this order and split out of the training text. */
  readonly specialTokens?: readonly string[];
  /** Pre-tokeniser regex (tokenizer.json syntax); default GPT-2's. */
  readonly pattern?: string;
  /** Which special tokens are BOS / EOS / PAD (written to tokenizer_config.json). */
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly padToken?: string;
}

/** What training learns, over internal symbol ids (0–255 are the bytes in table order). */
export interface LearnedBpe {
  /** Byte-level string of each symbol id. */
  readonly tokens: readonly string[];
  /** Merges in order: symbols a and b became symbol ab. */
  readonly merges: readonly (readonly [number, number, number])[];
  /** Each distinct pre-token's final segmentation into symbol ids. */
  readonly words: ReadonlyMap<string, readonly number[]>;
}

/** Pair keys pack two symbol ids below 2²¹ into one exact number. */
const SHIFT = 2 ** 21;

interface Candidate {
  count: number;
  a: number;
  b: number;
}

/** Max-heap order: higher count first; ties go to the smaller (a, b), as in HF's BpeTrainer. */
const before = (x: Candidate, y: Candidate) =>
  x.count !== y.count ? x.count > y.count : x.a !== y.a ? x.a < y.a : x.b < y.b;

class CandidateHeap {
  private readonly items: Candidate[] = [];
  get size() {
    return this.items.length;
  }
  push(c: Candidate): void {
    const h = this.items;
    let i = h.push(c) - 1;
    while (i > 0 && before(h[i], h[(i - 1) >> 1])) {
      [h[i], h[(i - 1) >> 1]] = [h[(i - 1) >> 1], h[i]];
      i = (i - 1) >> 1;
    }
  }
  pop(): Candidate {
    const h = this.items;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        let best = i;
        if (l < h.length && before(h[l], h[best])) best = l;
        if (l + 1 < h.length && before(h[l + 1], h[best])) best = l + 1;
        if (best === i) break;
        [h[i], h[best]] = [h[best], h[i]];
        i = best;
      }
    }
    return top;
  }
}

/**
 * Byte-level BPE training over pre-token counts: repeatedly merge the most frequent adjacent
 * pair (see `mergeSymbols`), starting from the 256 byte symbols in table order.
 */
export function learnMerges(
  counts: ReadonlyMap<string, number>,
  maxMerges: number,
  minFrequency: number,
): LearnedBpe {
  const order = BYTE_TO_CHAR.map((c, b) => ({ c, b })).sort((x, y) => (x.c < y.c ? -1 : 1));
  const symOfByte = new Int32Array(256);
  order.forEach((o, i) => {
    symOfByte[o.b] = i;
  });
  const enc = new TextEncoder();
  const words = [...counts.keys()].map((w) => Array.from(enc.encode(w), (b) => symOfByte[b]));
  return mergeSymbols({
    tokens: order.map((o) => o.c),
    words,
    keys: [...counts.keys()],
    freq: [...counts.values()],
    maxMerges,
    maxTokens: Number.POSITIVE_INFINITY,
    minFrequency,
    join: (a, b) => a + b,
  });
}

/** What `mergeSymbols` starts from and when it stops. */
export interface MergeInput {
  /** The initial symbols' strings (symbol id = index). Grown in place as merges add tokens. */
  readonly tokens: string[];
  /** Each distinct word as symbol ids, and its key and count. */
  readonly words: number[][];
  readonly keys: readonly string[];
  readonly freq: readonly number[];
  readonly maxMerges: number;
  /** Stop once this many symbols exist (HF's BpeTrainer stops at the vocab size). */
  readonly maxTokens: number;
  /** A pair seen fewer times than this is never merged; training stops there. */
  readonly minFrequency: number;
  /** The string of a merged pair (WordPiece drops the right side's `##`). */
  readonly join: (a: string, b: string) => string;
}

/**
 * BPE's merge loop (HF's BpeTrainer): repeatedly merge the most frequent adjacent pair, ties to
 * the smaller (a, b). Pair counts are updated incrementally from the words that contain the
 * merged pair (an index pair → words), and a lazy max-heap holds candidates: a popped count that
 * no longer matches is pushed back with the current one (counts of existing pairs only fall).
 */
export function mergeSymbols(input: MergeInput): LearnedBpe {
  const { tokens, words, freq, maxMerges, maxTokens, minFrequency, join } = input;
  const idOf = new Map(tokens.map((t, i) => [t, i]));
  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: number) => {
    const s = words[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] * SHIFT + s[i + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + sign * freq[w]);
      if (sign > 0) {
        const set = where.get(key);
        if (set === undefined) where.set(key, new Set([w]));
        else set.add(w);
      }
    }
  };
  for (let w = 0; w < words.length; w++) addPairs(w, 1);
  const heap = new CandidateHeap();
  for (const [key, count] of pairCount)
    heap.push({ count, a: Math.floor(key / SHIFT), b: key % SHIFT });
  const merges: [number, number, number][] = [];
  while (merges.length < maxMerges && tokens.length < maxTokens && heap.size > 0) {
    const top = heap.pop();
    const key = top.a * SHIFT + top.b;
    const current = pairCount.get(key) ?? 0;
    if (current !== top.count) {
      if (current > 0) heap.push({ ...top, count: current });
      continue;
    }
    if (current < Math.max(1, minFrequency)) break;
    const str = join(tokens[top.a], tokens[top.b]);
    let ab = idOf.get(str);
    if (ab === undefined) {
      ab = tokens.push(str) - 1;
      idOf.set(str, ab);
    }
    merges.push([top.a, top.b, ab]);
    const touched = new Set<number>();
    for (const w of where.get(key) ?? []) {
      const s = words[w];
      const merged: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === top.a && s[i + 1] === top.b) {
          merged.push(ab);
          i++;
        } else merged.push(s[i]);
      }
      if (merged.length === s.length) continue;
      addPairs(w, -1);
      words[w] = merged;
      addPairs(w, 1);
      for (let i = 0; i + 1 < merged.length; i++) {
        if (merged[i] === ab || merged[i + 1] === ab)
          touched.add(merged[i] * SHIFT + merged[i + 1]);
      }
    }
    pairCount.delete(key);
    where.delete(key);
    for (const k of touched) {
      const count = pairCount.get(k) ?? 0;
      if (count > 0) heap.push({ count, a: Math.floor(k / SHIFT), b: k % SHIFT });
    }
  }
  return { tokens, merges, words: new Map(input.keys.map((k, i) => [k, words[i]])) };
}

/** Counts the pre-tokens of the texts, with special tokens cut out first. */
export function countPreTokens(
  texts: Iterable<string>,
  pattern: string,
  specials: readonly AddedToken[],
): Map<string, number> {
  const re = compilePattern(pattern);
  const splitter = new AddedTokenSplitter(specials);
  const counts = new Map<string, number>();
  const count = (piece: string) => counts.set(piece, (counts.get(piece) ?? 0) + 1);
  for (const text of texts) {
    splitter.split(
      text,
      (s) => forEachPiece(s, re, count),
      () => undefined,
    );
  }
  return counts;
}

/** Trains a byte-level BPE tokenizer; special tokens get ids 0…, the 256 bytes come next. */
export function trainBpe(texts: Iterable<string>, opts: TrainBpeOptions): Tokenizer {
  const specialTokens = opts.specialTokens ?? [];
  const minFrequency = opts.minFrequency ?? 2;
  const base = specialTokens.length + 256;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < base || opts.vocabSize >= SHIFT) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `trainBpe: vocabSize must be an integer in [${base}, ${SHIFT}) (the ${specialTokens.length} special tokens plus 256 bytes need ${base}), got ${opts.vocabSize}`,
    );
  }
  const addedTokens = specialAddedTokens(specialTokens, 'trainBpe');
  for (const k of ['bosToken', 'eosToken', 'padToken'] as const) {
    const t = opts[k];
    if (t !== undefined && !specialTokens.includes(t)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `trainBpe: ${k} ${JSON.stringify(t)} is not one of specialTokens`,
      );
    }
  }
  const pattern = opts.pattern ?? PATTERNS.gpt2;
  const counts = countPreTokens(texts, pattern, addedTokens);
  const learned = learnMerges(counts, opts.vocabSize - base, minFrequency);
  const S = specialTokens.length;
  const vocab = new Map<string, number>(specialTokens.map((t, i) => [t, i]));
  learned.tokens.forEach((t, i) => {
    vocab.set(t, S + i);
  });
  return new Tokenizer({
    model: {
      type: 'BPE',
      vocab,
      merges: learned.merges.map(([a, b]) => [learned.tokens[a], learned.tokens[b]] as const),
      mergesForm: 'string',
      options: bpeOptions(),
    },
    addedTokens,
    ...byteLevelJson(pattern === PATTERNS.gpt2 ? undefined : pattern),
    special: {
      bosToken: opts.bosToken,
      eosToken: opts.eosToken,
      padToken: opts.padToken,
      addBosToken: false,
      addEosToken: false,
    },
    extra: {},
    config: {},
  });
}
