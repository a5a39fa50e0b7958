import { describe, expect, it } from 'vitest';
import { type Tokenizer, tokenizerFromJson } from '../../../src/data/tokenizer/index.js';
import { TroupeError } from '../../../src/errors.js';

/** Small tokenizer.json files whose outputs are worked out by hand in each test. */
function tok(model: Record<string, unknown>, sections: Record<string, unknown> = {}): Tokenizer {
  return tokenizerFromJson({
    version: '1.0',
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    ...sections,
    model,
  });
}

const ids = (t: Tokenizer, s: string) => t.encode(s, { addSpecialTokens: false });

describe('Unigram: Viterbi over the lattice of pieces', () => {
  // Scores: a −1, b −2, ab −2.5, c −3, <0x78> −5 (min −5: an unknown character scores −15).
  const pieces = [
    ['<unk>', 0],
    ['a', -1],
    ['b', -2],
    ['ab', -2.5],
    ['c', -3],
    ['<0x78>', -5],
  ];
  const uni = (options: Record<string, unknown> = {}) =>
    tok({ type: 'Unigram', unk_id: 0, vocab: pieces, byte_fallback: false, ...options });

  it('takes the best-scoring segmentation', () => {
    const t = uni();
    // "abab": ab+ab = −5 beats a+b+a+b = −6 and ab+a+b = −5.5.
    expect(ids(t, 'abab')).toEqual([3, 3]);
    // "abc": ab+c = −5.5 beats a+b+c = −6.
    expect(ids(t, 'abc')).toEqual([3, 4]);
    // "ba": b+a is the only path.
    expect(ids(t, 'ba')).toEqual([2, 1]);
  });

  it('gives an unknown character the unk piece at min score − 10, and fuses a run of them', () => {
    const t = uni();
    // "azb": a (−1) + unk (−15) + b (−2).
    expect(ids(t, 'azb')).toEqual([1, 0, 2]);
    expect(ids(t, 'zzz')).toEqual([0]);
    expect(ids(t, 'azzb')).toEqual([1, 0, 2]);
  });

  it('breaks ties toward the piece found first: the longer one from the earlier start', () => {
    const t = tok({
      type: 'Unigram',
      unk_id: 0,
      vocab: [
        ['<unk>', 0],
        ['a', -1],
        ['b', -1],
        ['ab', -2],
      ],
    });
    expect(ids(t, 'ab')).toEqual([3]);
  });

  it('spells an unknown run in <0x..> byte pieces with byte_fallback, when they all exist', () => {
    const t = uni({ byte_fallback: true });
    // 'x' is 0x78: its byte piece exists. 'é' is C3 A9: no byte pieces, so it is unk.
    expect(ids(t, 'axb')).toEqual([1, 5, 2]);
    expect(ids(t, 'aéb')).toEqual([1, 0, 2]);
  });

  it('refuses an unknown character when the model has no unk_id', () => {
    const t = tok({ type: 'Unigram', unk_id: null, vocab: pieces.slice(1) });
    expect(ids(t, 'ab')).toEqual([2]);
    expect(() => ids(t, 'az')).toThrow('matches no Unigram piece and the model has no unk_id');
  });
});

describe('WordPiece: greedy longest match first', () => {
  const vocab = {
    '[UNK]': 0,
    un: 1,
    '##aff': 2,
    '##able': 3,
    '##a': 4,
    '##ff': 5,
    '##abl': 6,
    '##e': 7,
    a: 8,
    u: 9,
    '##n': 10,
  };
  const wp = (max = 100) =>
    tok(
      {
        type: 'WordPiece',
        unk_token: '[UNK]',
        continuing_subword_prefix: '##',
        max_input_chars_per_word: max,
        vocab,
      },
      {
        pre_tokenizer: { type: 'WhitespaceSplit' },
        decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      },
    );

  it('takes the longest prefix in the vocab, then the longest ##-piece from where it ended', () => {
    // "un" (not "u"), then "##aff" (not "##a"), then "##able" (not "##abl" + "##e").
    expect(ids(wp(), 'unaffable')).toEqual([1, 2, 3]);
    expect(ids(wp(), 'a unaff')).toEqual([8, 1, 2]);
  });

  it('makes the whole word [UNK] when a rest has no piece, or the word is too long', () => {
    expect(ids(wp(), 'unaffablex a')).toEqual([0, 8]);
    expect(ids(wp(5), 'unaffable a')).toEqual([0, 8]);
  });

  it('decodes ##-pieces onto the word before them', () => {
    expect(wp().decode([1, 2, 3, 8, 1])).toBe('unaffable a un');
  });
});

describe('BPE with byte_fallback, unk_token and fuse_unk', () => {
  const vocab = {
    '<unk>': 0,
    '▁': 1,
    a: 2,
    '▁a': 3,
    '<0xC3>': 4,
    '<0xA9>': 5,
    '<0xE2>': 6,
    '<0x82>': 7,
    b: 8,
  };
  const sp = (options: Record<string, unknown>) =>
    tok(
      {
        type: 'BPE',
        unk_token: '<unk>',
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges: ['▁ a'],
        ...options,
      },
      {
        normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
        decoder: {
          type: 'Sequence',
          decoders: [
            { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
            { type: 'ByteFallback' },
            { type: 'Fuse' },
          ],
        },
      },
    );

  it("spells a character outside the vocab in its UTF-8 bytes' <0x..> tokens", () => {
    const t = sp({ byte_fallback: true });
    // " a é": ▁a merges; é is C3 A9.
    expect(ids(t, ' aé')).toEqual([3, 4, 5]);
    expect(t.decode([3, 4, 5])).toBe(' aé');
  });

  it('decodes byte tokens that are not valid UTF-8 to one U+FFFD per byte, as HF does', () => {
    const t = sp({ byte_fallback: true });
    // E2 82 is the start of '€' (E2 82 AC): TextDecoder would give one U+FFFD, HF gives two.
    expect(t.decode([6, 7, 2])).toBe('\ufffd\ufffda');
    expect(t.decode([4])).toBe('\ufffd');
  });

  it('uses unk_token for a character with no token, one per character or fused into one', () => {
    // 'x' and 'y' have neither a token nor byte tokens.
    expect(ids(sp({}), 'xya')).toEqual([0, 0, 2]);
    expect(ids(sp({ fuse_unk: true }), 'xyaxb')).toEqual([0, 2, 0, 8]);
    // As HF: byte tokens do not flush a pending unk, which lands after them.
    expect(ids(sp({ byte_fallback: true, fuse_unk: true }), 'xyé')).toEqual([4, 5, 0]);
  });
});

describe('SentencePiece BPE: long stretches cut before ▁ where no token spans the cut', () => {
  // '>▁' is a token, so a cut between '>' and '▁' would change the result; 'a▁' is none.
  const t = tok({
    type: 'BPE',
    vocab: { '▁': 0, a: 1, b: 2, '>': 3, '>▁': 4, '▁b': 5, '▁a': 6 },
    merges: ['> ▁', '▁ b', '▁ a'],
  });

  it('gives a long stretch the ids of the whole, also where a token glues a character to ▁', () => {
    const text = `${'a▁b'.repeat(30)}>▁b▁a`;
    expect(text.length).toBeGreaterThan(64);
    // 'a▁b' → a, ▁b; '>▁b' → '>▁' (rank 0) then b; '▁a' → ▁a.
    expect(ids(t, text)).toEqual([...Array(30).fill([1, 5]).flat(), 4, 2, 6]);
  });
});

describe('Metaspace prepend_scheme and added tokens', () => {
  const vocab = { '<s>': 0, '▁': 1, h: 2, i: 3, '▁hi': 4, hi: 5, '▁h': 6 };
  const ms = (scheme: string) =>
    tokenizerFromJson({
      added_tokens: [
        {
          id: 0,
          content: '<s>',
          special: true,
          normalized: false,
          lstrip: false,
          rstrip: false,
          single_word: false,
        },
      ],
      normalizer: null,
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: scheme, split: false },
      post_processor: null,
      decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: scheme, split: false },
      model: { type: 'BPE', vocab, merges: ['▁ h', '▁h i', 'h i'] },
    });

  it("prepends ▁ only at the start of the input with 'first', to every stretch with 'always'", () => {
    expect(ids(ms('first'), 'hi<s>hi')).toEqual([4, 0, 5]);
    expect(ids(ms('always'), 'hi<s>hi')).toEqual([4, 0, 4]);
    expect(ids(ms('never'), 'hi<s>hi')).toEqual([5, 0, 5]);
    // An input that starts with the added token: the text after it is not at the start.
    expect(ids(ms('first'), '<s>hi')).toEqual([0, 5]);
  });

  it("does not prepend with 'first' where the normalizer dropped the input's first character", () => {
    // HF 0.23: Strip(left) on "  hi" → "hi" at offset 2, and BertNormalizer drops a leading NUL.
    const first = (normalizer: unknown) =>
      tokenizerFromJson({
        normalizer,
        pre_tokenizer: {
          type: 'Metaspace',
          replacement: '▁',
          prepend_scheme: 'first',
          split: true,
        },
        model: { type: 'WordPiece', vocab: { '[UNK]': 0 } },
      });
    const strip = first({ type: 'Strip', strip_left: true, strip_right: false });
    expect(strip.preTokenize('  hi')).toEqual(['hi']);
    expect(strip.preTokenize('hi there')).toEqual(['▁hi', '▁there']);
    const bert = first({ type: 'BertNormalizer', lowercase: false });
    expect(bert.preTokenize('\u0000hi')).toEqual(['hi']);
    expect(bert.preTokenize('hi')).toEqual(['▁hi']);
  });

  it('drops ▁ in the first token when decoding unless the scheme is never', () => {
    expect(ms('first').decode([4, 4])).toBe('hi hi');
    expect(ms('never').decode([4, 4])).toBe(' hi hi');
  });
});

describe('pipeline pieces against hand-worked strings', () => {
  it('BertNormalizer cleans, spaces CJK, strips accents and lowercases; BertPreTokenizer cuts', () => {
    const t = tokenizerFromJson({
      normalizer: { type: 'BertNormalizer', lowercase: true },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      model: { type: 'WordPiece', vocab: { '[UNK]': 0 } },
    });
    // NUL and the ZWJ (a format character) go, tabs become spaces, 中 gets spaces around it,
    // É loses its accent, '!' and '$' are cut off on their own.
    expect(t.preTokenize('Ça\u0000\u200d va\tÉTÉ!中文$5')).toEqual([
      'ca',
      'va',
      'ete',
      '!',
      '中',
      '文',
      '$',
      '5',
    ]);
  });

  it('Split behaviours: removed, isolated, merged with previous / next, contiguous', () => {
    const cut = (behavior: string) =>
      tokenizerFromJson({
        pre_tokenizer: { type: 'Split', pattern: { String: '-' }, behavior, invert: false },
        model: { type: 'WordPiece', vocab: { '[UNK]': 0 } },
      }).preTokenize('a--b-c');
    expect(cut('Removed')).toEqual(['a', 'b', 'c']);
    expect(cut('Isolated')).toEqual(['a', '-', '-', 'b', '-', 'c']);
    expect(cut('MergedWithPrevious')).toEqual(['a-', '-', 'b-', 'c']);
    expect(cut('MergedWithNext')).toEqual(['a', '-', '-b', '-c']);
    expect(cut('Contiguous')).toEqual(['a', '--', 'b', '-', 'c']);
  });

  it('fails with BAD_CHECKPOINT on a malformed section, naming the file and field', () => {
    let err: unknown;
    try {
      tokenizerFromJson(
        {
          pre_tokenizer: { type: 'Metaspace', replacement: '▁▁' },
          model: { type: 'WordPiece', vocab: {} },
        },
        undefined,
        'my/tokenizer.json',
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TroupeError);
    expect((err as TroupeError).code).toBe('BAD_CHECKPOINT');
    expect((err as Error).message).toBe(
      'my/tokenizer.json: pre_tokenizer: Metaspace replacement must be one character, got "▁▁"',
    );
  });
});
