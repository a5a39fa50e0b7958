import { TroupeError } from '../../errors.js';
import { suffixIntervals } from './suffix-array.js';
import { Tokenizer } from './tokenizer.js';
import { checkInt, countWords, requireSpecial, specialAddedTokens } from './train-common.js';
import { Model, marginals, type Piece, viterbi } from './train-unigram-lattice.js';

export interface TrainUnigramOptions {
  /** Final vocabulary size, special tokens included. */
  readonly vocabSize: number;
  /** Given the first ids in this order. Default ['<unk>', '<s>', '</s>']. */
  readonly specialTokens?: readonly string[];
  /** The unknown piece; one of specialTokens. Default '<unk>'. */
  readonly unkToken?: string;
  /** Longest piece, in characters. Default 16. */
  readonly maxPieceLength?: number;
  /** Each pruning round keeps this fraction of the pieces. Default 0.75. */
  readonly shrinkingFactor?: number;
  /** EM iterations between prunings. Default 2. */
  readonly subIterations?: number;
  /** Seed pieces taken from the suffix array. Default 1,000,000. */
  readonly seedSize?: number;
  readonly bosToken?: string;
  readonly eosToken?: string;
}

/** ψ(x), by recurrence up to 7 and the asymptotic series (SentencePiece's and HF's). */
export function digamma(x: number): number {
  let result = 0;
  let v = x;
  for (; v < 7; v++) result -= 1 / v;
  v -= 1 / 2;
  const xx = 1 / v;
  const xx2 = xx * xx;
  const xx4 = xx2 * xx2;
  return (
    result +
    Math.log(v) +
    (1 / 24) * xx2 -
    (7 / 960) * xx4 +
    (31 / 8064) * xx4 * xx2 -
    (127 / 30720) * xx4 * xx4
  );
}

/**
 * Trains a Unigram tokenizer as SentencePiece and HF's UnigramTrainer do. Words are counted
 * through the tokenizer's own normalizer (Nmt, NFKC, runs of spaces to one) and Metaspace
 * pre-tokenizer. Seeds: every character, then the most frequent substrings (the suffix array's
 * repeated substrings, scored by frequency × length, up to `seedSize`), as log-probabilities.
 * Then, until at most 1.1 × vocabSize pieces remain: `subIterations` rounds of EM (E: expected
 * piece counts by forward-backward over each word's lattice; M: pieces expected less than 0.5
 * times dropped, scores ψ(count) − ψ(total)), then pruning: each piece whose removal costs the
 * corpus least likelihood (its count times the log-probability lost by splitting it into its
 * second-best segmentation) goes, keeping `shrinkingFactor` of them. Finally every character is
 * kept and the best-scoring pieces fill the vocabulary, special tokens first.
 */
export function trainUnigram(texts: Iterable<string>, opts: TrainUnigramOptions): Tokenizer {
  const who = 'trainUnigram';
  const specials = opts.specialTokens ?? ['<unk>', '<s>', '</s>'];
  const unk = opts.unkToken ?? '<unk>';
  const addedTokens = specialAddedTokens(specials, who);
  requireSpecial(specials, unk, 'unkToken', who);
  requireSpecial(specials, opts.bosToken, 'bosToken', who);
  requireSpecial(specials, opts.eosToken, 'eosToken', who);
  checkInt(opts.vocabSize, specials.length + 1, 10_000_000, 'vocabSize', who);
  const maxPieceLength = checkInt(opts.maxPieceLength ?? 16, 1, 1000, 'maxPieceLength', who);
  const shrinking = opts.shrinkingFactor ?? 0.75;
  if (!(shrinking > 0 && shrinking < 1)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${who}: shrinkingFactor must be in (0, 1), got ${shrinking}`,
    );
  }
  const subIterations = checkInt(opts.subIterations ?? 2, 1, 100, 'subIterations', who);
  const seedSize = checkInt(opts.seedSize ?? 1_000_000, 1, 1e8, 'seedSize', who);
  const metaspace = {
    type: 'Metaspace',
    replacement: '\u2581',
    prepend_scheme: 'always',
    split: true,
  };
  const make = (pieces: readonly Piece[]) =>
    new Tokenizer({
      model: {
        type: 'Unigram',
        pieces,
        options: { unk_id: specials.indexOf(unk), byte_fallback: false },
      },
      addedTokens,
      normalizer: {
        type: 'Sequence',
        normalizers: [
          { type: 'Nmt' },
          { type: 'NFKC' },
          { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' },
        ],
      },
      preTokenizer: metaspace,
      postProcessor: null,
      decoder: metaspace,
      special: {
        bosToken: opts.bosToken,
        eosToken: opts.eosToken,
        addBosToken: false,
        addEosToken: false,
      },
      extra: {},
      config: { unk_token: unk },
    });
  const counts = countWords(make(specials.map((t) => [t, 0])), texts);
  const words = [...counts.keys()];
  const freqs = [...counts.values()];

  let pieces: Piece[] = [['<UNK>', Number.NaN], ...seedPieces(counts, maxPieceLength, seedSize)];
  const required = new Set<string>();
  for (const w of words) for (const c of w) required.add(c);
  if (required.size + specials.length > opts.vocabSize) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${who}: vocabSize ${opts.vocabSize} cannot hold the ${required.size} distinct characters of the text and ${specials.length} special tokens`,
    );
  }
  const desired = Math.floor((opts.vocabSize * 11) / 10);
  let model = new Model(pieces);
  for (;;) {
    for (let it = 0; it < subIterations; it++) {
      const expected = new Float64Array(pieces.length);
      for (let i = 0; i < words.length; i++) marginals(model.lattice(words[i]), freqs[i], expected);
      pieces = mStep(pieces, expected);
      model = new Model(pieces);
    }
    if (pieces.length <= desired) break;
    pieces = prune(model, words, freqs, opts.vocabSize, shrinking);
    model = new Model(pieces);
  }
  return make(finalPieces(pieces, required, specials, opts.vocabSize));
}

/** Characters (by count) then repeated substrings (by count × length), as log-probabilities. */
function seedPieces(
  counts: ReadonlyMap<string, number>,
  maxLen: number,
  seedSize: number,
): Piece[] {
  const chars = new Map<string, number>();
  const cps: number[] = [];
  for (const [w, n] of counts) {
    for (const c of w) {
      chars.set(c, (chars.get(c) ?? 0) + n);
      cps.push(c.codePointAt(0)!);
    }
    cps.push(0); // the sentence boundary no piece crosses
  }
  const text = Int32Array.from(cps);
  const seeds: Piece[] = [...chars]
    .sort((a, b) => b[1] - a[1] || cmpCodePoints(b[0], a[0]))
    .map(([c, n]) => [c, n]);
  const substrings: { score: number; start: number; len: number }[] = [];
  suffixIntervals(text, (start, len, freq) => {
    if (len <= 1 || len > maxLen) return;
    for (let i = start; i < start + len; i++) if (text[i] === 0) return;
    substrings.push({ score: freq * len, start, len });
  });
  const str = (s: { start: number; len: number }) =>
    String.fromCodePoint(...text.subarray(s.start, s.start + s.len));
  substrings.sort((a, b) => b.score - a.score || cmpCodePoints(str(b), str(a)));
  for (const s of substrings) {
    if (seeds.length >= seedSize) break;
    seeds.push([str(s), s.score]);
  }
  const logSum = Math.log(seeds.reduce((t, [, n]) => t + n, 0));
  return seeds.map(([p, n]) => [p, Math.log(n) - logSum]);
}

/** Drops pieces expected under 0.5 times; the rest score ψ(count) − ψ(total). */
function mStep(pieces: readonly Piece[], expected: Float64Array): Piece[] {
  const kept: Piece[] = [[pieces[0][0], Number.NaN]];
  let sum = 0;
  for (let i = 1; i < pieces.length; i++) {
    if (expected[i] < 0.5) continue;
    kept.push([pieces[i][0], expected[i]]);
    sum += expected[i];
  }
  const logSum = digamma(sum);
  return kept.map(([p, f], i) => [p, i === 0 ? Number.NaN : digamma(f) - logSum]);
}

/** One pruning round (SentencePiece's PruneSentencePieces). */
function prune(
  model: Model,
  words: readonly string[],
  freqs: readonly number[],
  vocabSize: number,
  shrinking: number,
): Piece[] {
  const { pieces } = model;
  const alwaysKeep = new Array<boolean>(pieces.length).fill(true);
  const alternatives: number[][] = pieces.map(() => []);
  for (let id = 1; id < pieces.length; id++) {
    const l = model.lattice(pieces[id][0]);
    const best = viterbi(l);
    if (best === undefined) continue;
    if (best.length >= 2) {
      alwaysKeep[id] = false;
      continue;
    }
    const second = viterbi(l, best[0]);
    if (second !== undefined) alternatives[id] = second.map((n) => l.id[n]);
  }
  // Viterbi counts over the corpus, and which words use each piece.
  const freq = new Float64Array(pieces.length);
  const inverted: number[][] = pieces.map(() => []);
  let vsum = 0;
  words.forEach((w, i) => {
    const l = model.lattice(w);
    vsum += freqs[i];
    for (const n of viterbi(l) ?? []) {
      freq[l.id[n]] += freqs[i];
      inverted[l.id[n]].push(i);
    }
  });
  const sum = freq.reduce((a, b) => a + b, 0);
  const logSum = Math.log(sum);
  const kept: Piece[] = [pieces[0]];
  const candidates: [number, number][] = [];
  for (let id = 1; id < pieces.length; id++) {
    if (freq[id] === 0 && !alwaysKeep[id]) continue;
    if (alternatives[id].length === 0) {
      kept.push(pieces[id]);
      continue;
    }
    let f = 0;
    for (const i of inverted[id]) f += freqs[i];
    if (f === 0 || Number.isNaN(f)) continue;
    f /= vsum;
    // The likelihood lost if this piece were split into its alternative (the SentencePiece form).
    const logProb = Math.log(freq[id]) - logSum;
    const logSumAlt = Math.log(sum + freq[id] * (alternatives.length - 1));
    let logProbAlt = 0;
    for (const n of alternatives[id]) logProbAlt += Math.log(freq[n] + freq[id]) - logSumAlt;
    candidates.push([id, f * (logProb - logProbAlt)]);
  }
  const size = Math.max(Math.floor((vocabSize * 11) / 10), Math.floor(pieces.length * shrinking));
  candidates.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  for (const [id] of candidates) {
    if (kept.length >= size) break;
    kept.push(pieces[id]);
  }
  return kept;
}

/** Required characters first, then the model's pieces, sorted by score; special tokens lead. */
function finalPieces(
  pieces: readonly Piece[],
  required: ReadonlySet<string>,
  specials: readonly string[],
  vocabSize: number,
): Piece[] {
  const scoreOf = new Map(pieces.slice(1));
  let min = Number.POSITIVE_INFINITY;
  for (let i = 1; i < pieces.length; i++) min = Math.min(min, pieces[i][1]);
  const out: Piece[] = [];
  const inserted = new Set<string>(['<UNK>', ...specials]);
  let penalty = 0;
  for (const c of [...required].sort(cmpCodePoints)) {
    inserted.add(c);
    const s = scoreOf.get(c);
    if (s !== undefined) out.push([c, s]);
    else {
      out.push([c, min + penalty]);
      penalty += 0.0001;
    }
  }
  const room = vocabSize - specials.length;
  for (const [p, s] of pieces.slice(1)) {
    if (out.length >= room) break;
    if (inserted.has(p)) continue;
    inserted.add(p);
    out.push([p, Number.isNaN(s) ? 0 : s]);
  }
  out.sort((a, b) => b[1] - a[1]);
  return [...specials.map((t): Piece => [t, 0]), ...out];
}

function cmpCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}
