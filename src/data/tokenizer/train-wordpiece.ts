import { Tokenizer } from './tokenizer.js';
import { mergeSymbols } from './train.js';
import { checkInt, countWords, requireSpecial, specialAddedTokens } from './train-common.js';

export interface TrainWordPieceOptions {
  /** Final vocabulary size, special tokens included. */
  readonly vocabSize: number;
  /** A pair seen fewer times than this is never merged; training stops there. Default 2. */
  readonly minFrequency?: number;
  /** Given the first ids in this order. Default BERT's: [PAD] [UNK] [CLS] [SEP] [MASK]. */
  readonly specialTokens?: readonly string[];
  /** What an unknown word becomes; one of specialTokens. Default '[UNK]'. */
  readonly unkToken?: string;
  /** BertNormalizer's lowercase (default true) and strip_accents (default: as lowercase). */
  readonly lowercase?: boolean;
  readonly stripAccents?: boolean;
  /** Keep only the this many most frequent characters (HF's limit_alphabet). Default all. */
  readonly limitAlphabet?: number;
  /** The continuing-subword prefix. Default '##'. */
  readonly continuingSubwordPrefix?: string;
  /** Longer words are one unk token. Default 100. */
  readonly maxInputCharsPerWord?: number;
  /** The template's tokens ([CLS] A [SEP]); no template unless both are special tokens. */
  readonly clsToken?: string;
  readonly sepToken?: string;
  readonly padToken?: string;
}

const BERT_SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

/**
 * Trains a BERT-style WordPiece tokenizer as HF's WordPieceTrainer does: a BPE merge training
 * over the words the BertNormalizer and BertPreTokenizer produce, where every character after a
 * word's first is spelt with the `##` prefix and a merged pair drops the right side's prefix
 * ("h" + "##e" → "he", "##l" + "##l" → "##ll"); the tokens it ends with are the WordPiece
 * vocabulary (special tokens, the alphabet, the `##` alphabet, then the merges in order). It is
 * saved with BertNormalizer, BertPreTokenizer, a [CLS] A [SEP] template and the WordPiece decoder.
 */
export function trainWordPiece(texts: Iterable<string>, opts: TrainWordPieceOptions): Tokenizer {
  const who = 'trainWordPiece';
  const specials = opts.specialTokens ?? BERT_SPECIALS;
  const unk = opts.unkToken ?? '[UNK]';
  const prefix = opts.continuingSubwordPrefix ?? '##';
  const cls = opts.clsToken ?? (specials.includes('[CLS]') ? '[CLS]' : undefined);
  const sep = opts.sepToken ?? (specials.includes('[SEP]') ? '[SEP]' : undefined);
  const pad = opts.padToken ?? (specials.includes('[PAD]') ? '[PAD]' : undefined);
  const addedTokens = specialAddedTokens(specials, who);
  requireSpecial(specials, unk, 'unkToken', who);
  for (const [name, t] of [
    ['clsToken', cls],
    ['sepToken', sep],
    ['padToken', pad],
  ] as const) {
    requireSpecial(specials, t, name, who);
  }
  checkInt(opts.vocabSize, specials.length + 1, 2 ** 21 - 1, 'vocabSize', who);
  const minFrequency = opts.minFrequency ?? 2;
  const lowercase = opts.lowercase ?? true;
  const id = (t: string) => specials.indexOf(t);
  const sections = {
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: opts.stripAccents ?? null,
      lowercase,
    },
    preTokenizer: { type: 'BertPreTokenizer' },
    postProcessor:
      cls === undefined || sep === undefined
        ? null
        : {
            type: 'TemplateProcessing',
            single: [
              { SpecialToken: { id: cls, type_id: 0 } },
              { Sequence: { id: 'A', type_id: 0 } },
              { SpecialToken: { id: sep, type_id: 0 } },
            ],
            pair: [
              { SpecialToken: { id: cls, type_id: 0 } },
              { Sequence: { id: 'A', type_id: 0 } },
              { SpecialToken: { id: sep, type_id: 0 } },
              { Sequence: { id: 'B', type_id: 1 } },
              { SpecialToken: { id: sep, type_id: 1 } },
            ],
            special_tokens: Object.fromEntries(
              [cls, sep].map((t) => [t, { id: t, ids: [id(t)], tokens: [t] }]),
            ),
          },
    decoder: { type: 'WordPiece', prefix, cleanup: true },
  };
  const options = {
    unk_token: unk,
    continuing_subword_prefix: prefix,
    max_input_chars_per_word: opts.maxInputCharsPerWord ?? 100,
  };
  const make = (vocab: Map<string, number>) =>
    new Tokenizer({
      model: { type: 'WordPiece', vocab, options },
      addedTokens,
      ...sections,
      special: { padToken: pad, addBosToken: false, addEosToken: false },
      extra: {},
      config: {
        cls_token: cls,
        sep_token: sep,
        unk_token: unk,
        mask_token: specials.includes('[MASK]') ? '[MASK]' : undefined,
        do_lower_case: lowercase,
      },
    });
  const counts = countWords(make(new Map(specials.map((t, i) => [t, i]))), texts);

  // The alphabet: every character, or the limitAlphabet most frequent, in code point order.
  const charCount = new Map<string, number>();
  for (const [w, n] of counts) for (const c of w) charCount.set(c, (charCount.get(c) ?? 0) + n);
  let alphabet = [...charCount.keys()];
  if (opts.limitAlphabet !== undefined && alphabet.length > opts.limitAlphabet) {
    alphabet = alphabet
      .sort((a, b) => charCount.get(b)! - charCount.get(a)! || cmp(a, b))
      .slice(0, opts.limitAlphabet);
  }
  alphabet.sort(cmp);
  const kept = new Set(alphabet);
  const continuing = new Set<string>();
  for (const w of counts.keys()) {
    for (const c of [...w].slice(1)) if (kept.has(c)) continuing.add(c);
  }
  const tokens = [...alphabet, ...[...continuing].sort(cmp).map((c) => prefix + c)];
  const symbol = new Map(tokens.map((t, i) => [t, i]));
  const words = [...counts.keys()].map((w) =>
    [...w].flatMap((c, i) => (kept.has(c) ? [symbol.get(i === 0 ? c : prefix + c)!] : [])),
  );
  const learned = mergeSymbols({
    tokens,
    words,
    keys: [...counts.keys()],
    freq: [...counts.values()],
    maxMerges: Number.POSITIVE_INFINITY,
    maxTokens: opts.vocabSize - specials.length,
    minFrequency,
    join: (a, b) => a + (b.startsWith(prefix) ? b.slice(prefix.length) : b),
  });
  const vocab = new Map(specials.map((t, i) => [t, i]));
  for (const t of learned.tokens) if (!vocab.has(t)) vocab.set(t, vocab.size);
  return make(vocab);
}

/** Code point order (JS `<` on strings compares UTF-16 units, which differs above U+FFFF). */
function cmp(a: string, b: string): number {
  return a.codePointAt(0)! - b.codePointAt(0)!;
}
