import { BYTE_TO_CHAR, utf8Encode } from '../bytes.js';
import {
  arr,
  at,
  type Builder,
  bad,
  bool,
  build,
  type Obj,
  oneOf,
  pattern,
  str,
  unsupported,
  type Where,
} from '../json.js';
import { compilePattern, escapeRegExp, PATTERNS } from '../pattern.js';
import { bertPreTokenizer, isBertPunctuation } from './bert.js';
import { charFlags, NUMERIC, WHITESPACE } from './chars.js';
import {
  BEHAVIORS,
  type Behavior,
  charRuns,
  invertRuns,
  type Runs,
  regexRuns,
  splitText,
} from './split.js';

/**
 * Pre-tokenizers cut normalized text into the pieces the model sees, each a pure function built
 * from its tokenizer.json section. `atStart` says whether a piece begins at offset 0 of the
 * input (Metaspace's prepend_scheme 'first' asks); a piece cut from inside another does not.
 */
export type Emit = (piece: string, atStart: boolean) => void;
export type PreTokenizer = (piece: string, atStart: boolean, emit: Emit) => void;

/**
 * One step of the (flattened) pre-tokenizer. A final ByteLevel step also offers `raw`, the same
 * cut without the byte → symbol mapping, so that byte-level BPE can go straight from UTF-8.
 */
export interface PreTokenizerStep {
  readonly type: string;
  readonly run: PreTokenizer;
  readonly raw?: PreTokenizer;
  /** Whether it reads `atStart` (Metaspace with prepend_scheme 'first'). */
  readonly usesStart?: boolean;
}

/** A piece cut by the runs; a sub-piece keeps `atStart` only if it begins the piece. */
const cut =
  (runs: Runs, behavior: Behavior): PreTokenizer =>
  (piece, atStart, emit) =>
    splitText(piece, runs, behavior, (s, e) => emit(piece.slice(s, e), atStart && s === 0));

function byteSymbols(piece: string): string {
  const bytes = new Uint8Array(3 * piece.length);
  const n = utf8Encode(piece, 0, piece.length, bytes);
  let s = '';
  for (let i = 0; i < n; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}

function byteLevel(v: Obj, w: Where): PreTokenizerStep {
  const prefix = bool(v, 'add_prefix_space', w, true);
  const useRegex = bool(v, 'use_regex', w, true);
  const gpt2 = useRegex ? cut(regexRuns(compilePattern(PATTERNS.gpt2)), 'Isolated') : undefined;
  const raw: PreTokenizer = (piece, atStart, emit) => {
    const p = prefix && !piece.startsWith(' ') ? ` ${piece}` : piece;
    if (gpt2 === undefined) emit(p, atStart);
    else gpt2(p, atStart, emit);
  };
  return {
    type: 'ByteLevel',
    raw,
    run: (piece, atStart, emit) => raw(piece, atStart, (p, first) => emit(byteSymbols(p), first)),
  };
}

function split(v: Obj, w: Where): PreTokenizer {
  const p = pattern(v, 'pattern', w);
  const re = 'string' in p ? new RegExp(escapeRegExp(p.string), 'gu') : compilePattern(p.regex);
  const behavior = oneOf(v, 'behavior', w, BEHAVIORS, 'Isolated');
  const runs = regexRuns(re);
  return cut(bool(v, 'invert', w, false) ? invertRuns(runs) : runs, behavior);
}

const PREPEND_SCHEMES = ['first', 'always', 'never'] as const;

/**
 * Metaspace: spaces become the replacement character (▁), which is prepended per
 * `prepend_scheme` (`first`: only to a piece at the start of the input), and with `split` each
 * ▁ starts a new piece. Older files say `add_prefix_space` instead of `prepend_scheme`.
 */
function metaspace(v: Obj, w: Where): PreTokenizer {
  const replacement = str(v, 'replacement', w);
  if ([...replacement].length !== 1) {
    throw bad(w, `Metaspace replacement must be one character, got ${JSON.stringify(replacement)}`);
  }
  const legacy = v['add_prefix_space'];
  const scheme =
    v['prepend_scheme'] === undefined && legacy === false
      ? 'never'
      : oneOf(v, 'prepend_scheme', w, PREPEND_SCHEMES, 'always');
  const splitOn = bool(v, 'split', w, true);
  const cp = replacement.codePointAt(0)!;
  const splitter = cut(
    charRuns((c) => c === cp),
    'MergedWithNext',
  );
  return (piece, atStart, emit) => {
    let p = piece.includes(' ') ? piece.replaceAll(' ', replacement) : piece;
    const prepend = scheme === 'always' || (scheme === 'first' && atStart);
    if (prepend && !p.startsWith(replacement)) p = replacement + p;
    if (!splitOn) emit(p, atStart);
    else splitter(p, atStart, emit);
  };
}

/** Rust regex's `\w` (the Whitespace pre-tokenizer's pattern is a Rust `regex`, not Oniguruma). */
const RUST_WORD = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}';
const WHITESPACE_RE = new RegExp(`[${RUST_WORD}]+|[^${RUST_WORD}\\p{White_Space}]+`, 'gu');

const isWs = (cp: number) => (charFlags(cp) & WHITESPACE) !== 0;
const isNumeric = (cp: number) => (charFlags(cp) & NUMERIC) !== 0;

const single =
  (f: PreTokenizer): Builder<PreTokenizerStep> =>
  (v) => ({ type: v['type'] as string, run: f });

export const PRE_TOKENIZERS: Readonly<
  Record<string, Builder<PreTokenizerStep | PreTokenizerStep[]>>
> = {
  ByteLevel: byteLevel,
  Split: (v, w) => ({ type: 'Split', run: split(v, w) }),
  Metaspace: (v, w) => ({
    type: 'Metaspace',
    run: metaspace(v, w),
    usesStart: v['prepend_scheme'] === 'first',
  }),
  BertPreTokenizer: single(bertPreTokenizer),
  Whitespace: single(cut(invertRuns(regexRuns(WHITESPACE_RE)), 'Removed')),
  WhitespaceSplit: single(cut(charRuns(isWs), 'Removed')),
  Punctuation: (v, w) => ({
    type: 'Punctuation',
    run: cut(charRuns(isBertPunctuation), oneOf(v, 'behavior', w, BEHAVIORS, 'Isolated')),
  }),
  Digits: (v, w) => ({
    type: 'Digits',
    run: cut(
      charRuns(isNumeric),
      bool(v, 'individual_digits', w, false) ? 'Isolated' : 'Contiguous',
    ),
  }),
  CharDelimiterSplit: (v, w) => {
    const d = str(v, 'delimiter', w);
    const cp = d.codePointAt(0);
    if (cp === undefined || [...d].length !== 1) {
      throw unsupported(w, 'delimiter must be one character');
    }
    return {
      type: 'CharDelimiterSplit',
      run: cut(
        charRuns((c) => c === cp),
        'Removed',
      ),
    };
  },
  Sequence: (v, w) =>
    arr(v, 'pretokenizers', w).flatMap((p, i) =>
      buildPreTokenizer(p, at(w, `pretokenizers[${i}]`)),
    ),
};

/** tokenizer.json's `pre_tokenizer` section → its steps in order (a Sequence flattened). */
export function buildPreTokenizer(v: unknown, w: Where): PreTokenizerStep[] {
  if (v === null || v === undefined) return [];
  const built = build(PRE_TOKENIZERS, 'pre_tokenizer', v, w);
  return Array.isArray(built) ? built : [built];
}

/**
 * The steps chained into one emit function that ends in `sink`: each step's output feeds the
 * next. The chain is built once, so cutting a text allocates no closures per piece.
 */
export function chain(steps: readonly PreTokenizer[], sink: Emit): Emit {
  let next = sink;
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i];
    const after = next;
    next = (piece, atStart) => step(piece, atStart, after);
  }
  return next;
}
