import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BYTE_TO_CHAR } from '../../../src/data/tokenizer/bytes.js';
import {
  loadTokenizer,
  saveTokenizer,
  tokenizerFromJson,
} from '../../../src/data/tokenizer/index.js';
import { hasCode } from '../../../src/errors.js';
import { thrown } from '../../helpers/thrown.js';

const BOS = '<|begin_of_text|>';
const EOT = '<|eot_id|>';

function added(id: number, content: string, extra: Record<string, unknown> = {}) {
  return {
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
    ...extra,
  };
}

/**
 * A small Llama-3-shaped tokenizer.json: the 256 byte tokens (ids 0–255 in byte order), merges
 * 'Ġ t' → 256 and 'Ġt h' → 257, 'h e' → 258, 'Ġth e' → 259, and added tokens from 300.
 */
function mini(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  BYTE_TO_CHAR.forEach((c, i) => {
    vocab[c] = i;
  });
  Object.assign(vocab, { Ġt: 256, Ġth: 257, he: 258, Ġthe: 259 });
  const { model: modelOverrides, ...rest } = overrides as { model?: Record<string, unknown> };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      added(300, BOS),
      added(301, EOT),
      added(302, '<tool>', { special: false }),
      added(303, '<tool><call>', { special: false }),
      added(304, '<mask>', { lstrip: true, rstrip: true }),
      added(305, 'word', { single_word: true, special: false }),
      added(306, '<fim-mid.dle|$1>', { special: false }),
    ],
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: {
            Regex:
              "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
          },
          behavior: 'Isolated',
          invert: false,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [
            { SpecialToken: { id: BOS, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
          ],
          pair: [
            { SpecialToken: { id: BOS, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: BOS, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [BOS]: { id: BOS, ids: [300], tokens: [BOS] } },
        },
      ],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab,
      merges: ['Ġ t', 'Ġt h', 'h e', 'Ġth e'],
      ...modelOverrides,
    },
    ...rest,
  };
}

const CONFIG = {
  bos_token: { __type: 'AddedToken', content: BOS },
  eos_token: EOT,
  pad_token: null,
  chat_template: [
    { name: 'default', template: '{{ messages }}' },
    { name: 'tool_use', template: '{{ tools }}' },
  ],
  tokenizer_class: 'PreTrainedTokenizerFast',
};

describe('tokenizer.json loading', () => {
  const tok = tokenizerFromJson(mini(), CONFIG);

  it('merges by rank and applies the TemplateProcessing template (BOS) unless told not to', () => {
    // ' the' → Ġthe by the merges; 'the' has no 'th' merge: t + he.
    expect(tok.encode(' the the', { addSpecialTokens: false })).toEqual([259, 259]);
    expect(tok.encode('the', { addSpecialTokens: false })).toEqual([116, 258]);
    expect(tok.encode(' the')).toEqual([300, 259]);
    expect(tok.encodePair(' the', 'the')).toEqual([300, 259, 300, 116, 258]);
    expect(tok.encodePair(' the', 'the', { addSpecialTokens: false })).toEqual([259, 116, 258]);
  });

  it('puts the template around a text of 300,000 tokens (no spread of the ids: it overflowed the stack)', () => {
    const ids = tok.encode(' the'.repeat(300_000));
    expect(ids).toHaveLength(300_001);
    expect(ids[0]).toBe(300);
    expect(ids[300_000]).toBe(259);
    expect(tok.encodePair(' the'.repeat(150_000), ' the'.repeat(150_000))).toHaveLength(300_002);
  });

  it('reads the same merges from the "a b" and the ["a", "b"] forms', () => {
    const pairs = mini({
      model: {
        merges: [
          ['Ġ', 't'],
          ['Ġt', 'h'],
          ['h', 'e'],
          ['Ġth', 'e'],
        ],
      },
    });
    const other = tokenizerFromJson(pairs);
    for (const s of [' the', 'the other theme', 'x'])
      expect(other.encode(s)).toEqual(tok.encode(s));
  });

  it('takes special token names and the default chat template from tokenizer_config.json', () => {
    expect(tok.bosTokenId).toBe(300);
    expect(tok.eosTokenId).toBe(301);
    expect(tok.padTokenId).toBeUndefined();
    expect(tok.chatTemplate).toBe('{{ messages }}');
    expect(tok.vocabSize).toBe(307);
  });

  it('honours add_bos_token / add_eos_token when tokenizer.json has no template', () => {
    const plain = tokenizerFromJson(mini({ post_processor: null }), {
      ...CONFIG,
      add_bos_token: true,
      add_eos_token: true,
    });
    expect(plain.encode(' the')).toEqual([300, 259, 301]);
    expect(plain.encode(' the', { addSpecialTokens: false })).toEqual([259]);
  });

  it('splits added tokens out first: longest match, strip options, single words', () => {
    const ids = (s: string) => tok.encode(s, { addSpecialTokens: false });
    expect(ids(`${BOS}the${EOT}`)).toEqual([300, 116, 258, 301]);
    expect(ids('<tool><call>x<tool>')).toEqual([303, 120, 302]);
    // Regex syntax in a token's text is matched literally.
    expect(ids('a<fim-mid.dle|$1>')).toEqual([97, 306]);
    // lstrip/rstrip swallow the whitespace around <mask>.
    expect(ids('a  <mask>  b')).toEqual([97, 304, 98]);
    // single_word: 'word' alone is the token, inside 'swordfish' it is not.
    expect(ids('a word.')).toEqual([97, 32, 305, 46]);
    expect(ids('swordfish')).not.toContain(305);
  });

  it('decodes added tokens as their text, dropping only special ones when asked', () => {
    const ids = tok.encode(`${EOT} the<tool>`);
    expect(tok.decode(ids)).toBe(`${BOS}${EOT} the<tool>`);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(' the<tool>');
  });

  it('adds a prefix space to each text stretch with ByteLevel add_prefix_space (RoBERTa style)', () => {
    const roberta = tokenizerFromJson(
      mini({ pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, use_regex: true } }),
    );
    const ids = (s: string) => roberta.encode(s, { addSpecialTokens: false });
    expect(ids('the')).toEqual(ids(' the'));
    expect(ids(`the${EOT}the`)).toEqual([259, 301, 259]);
  });

  it('applies an NFC normalizer before pre-tokenising', () => {
    const nfc = tokenizerFromJson(mini({ normalizer: { type: 'NFC' } }));
    expect(nfc.encode('e\u0301', { addSpecialTokens: false })).toEqual(
      nfc.encode('\u00e9', { addSpecialTokens: false }),
    );
  });

  it('fails with UNSUPPORTED naming the file, the section and the type, listing the supported types', () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [
        { normalizer: { type: 'NFX' } },
        'normalizer: normalizer of type "NFX"',
        'BertNormalizer, ByteLevel, Lowercase, NFC, NFD, NFKC, NFKD, Nmt, Precompiled, Prepend, Replace, Sequence, Strip, StripAccents',
      ],
      [
        { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Casefold' }] } },
        'normalizer.normalizers[1]: normalizer of type "Casefold"',
        'Supported normalizer types: BertNormalizer',
      ],
      [
        { pre_tokenizer: { type: 'UnicodeScripts' } },
        'pre_tokenizer: pre_tokenizer of type "UnicodeScripts"',
        'BertPreTokenizer, ByteLevel, CharDelimiterSplit, Digits, Metaspace, Punctuation, Sequence, Split, Whitespace, WhitespaceSplit',
      ],
      [
        { decoder: { type: 'Wordpiece' } },
        'decoder: decoder of type "Wordpiece"',
        'BPEDecoder, ByteFallback, ByteLevel, CTC, Fuse, Metaspace, Replace, Sequence, Strip, WordPiece',
      ],
      [
        { post_processor: { type: 'Bert' } },
        'post_processor: post_processor of type "Bert"',
        'BertProcessing, ByteLevel, RobertaProcessing, Sequence, TemplateProcessing',
      ],
      [
        { model: { type: 'WordLevel' } },
        'model: model of type "WordLevel"',
        'BPE, Unigram, WordPiece',
      ],
      [
        { pre_tokenizer: { type: 'Split', pattern: { Regex: 'a' }, behavior: 'Dropped' } },
        'pre_tokenizer: behavior "Dropped" is not supported',
        'Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous',
      ],
      [
        { pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'sometimes' } },
        'pre_tokenizer: prepend_scheme "sometimes"',
        'first, always, never',
      ],
      [{ model: { dropout: 0.1 } }, 'model: BPE dropout 0.1', 'deterministically'],
    ];
    for (const [overrides, named, listed] of cases) {
      const e = thrown(() => tokenizerFromJson(mini(overrides), undefined, 'x/tokenizer.json'));
      expect(e.code).toBe('UNSUPPORTED');
      expect(e.message).toContain(`x/tokenizer.json: ${named}`);
      expect(e.message).toContain(listed);
    }
  });

  it('fails with BAD_CHECKPOINT on a merge whose tokens are not in the vocab', () => {
    const e = thrown(() => tokenizerFromJson(mini({ model: { merges: ['Ġ t', 'q z'] } })));
    expect(e.code).toBe('BAD_CHECKPOINT');
    expect(e.message).toContain('Merge 1');
    expect(e.message).toContain('"qz"');
  });
});

describe('loadTokenizer / saveTokenizer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-tok-'));

  it('reads tokenizer.json with the tokenizer_config.json beside it, from a file or a directory', async () => {
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(mini()));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(CONFIG));
    for (const path of [dir, join(dir, 'tokenizer.json')]) {
      const tok = await loadTokenizer(path);
      expect(tok.encode(' the')).toEqual([300, 259]);
      expect(tok.eosTokenId).toBe(301);
    }
  });

  it('writes back what it read: tokenizer.json and tokenizer_config.json equal as JSON', async () => {
    const out = join(dir, 'saved');
    await saveTokenizer(out, tokenizerFromJson(mini(), CONFIG));
    expect(JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8'))).toEqual(mini());
    const config = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'));
    expect(config).toMatchObject(CONFIG);
    const back = await loadTokenizer(out);
    expect(back.encode('the <mask> word')).toEqual(
      tokenizerFromJson(mini(), CONFIG).encode('the <mask> word'),
    );
    expect(back.chatTemplate).toBe('{{ messages }}');
  });

  it('names the file when it is missing or not JSON', async () => {
    await expect(loadTokenizer(join(dir, 'nope'))).rejects.toSatisfy((e) =>
      hasCode(e, 'BAD_ARGUMENT'),
    );
    const empty = mkdtempSync(join(tmpdir(), 'troupe-tok-empty-'));
    await expect(loadTokenizer(empty)).rejects.toThrow('holds no tokenizer.json');
    writeFileSync(join(empty, 'tokenizer.json'), '{ not json');
    await expect(loadTokenizer(empty)).rejects.toThrow(
      `${join(empty, 'tokenizer.json')} is not valid JSON`,
    );
  });
});
