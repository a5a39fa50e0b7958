import { describe, expect, it } from 'vitest';
import { BYTE_TO_CHAR } from '../../../src/data/tokenizer/bytes.js';
import { PATTERNS, type Tokenizer, trainBpe } from '../../../src/data/tokenizer/index.js';
import { countPreTokens, learnMerges } from '../../../src/data/tokenizer/train.js';
import { hasCode } from '../../../src/errors.js';
import { mobyDick, report } from './fixtures.js';

const SPECIALS = ['<|endoftext|>', '<pad>'];

/** A BPE tokenizer's merge rules. */
function merges(tok: Tokenizer): readonly (readonly [string, string])[] {
  const m = tok.spec.model;
  if (m.type !== 'BPE') throw new Error(`expected a BPE model, got ${m.type}`);
  return m.merges;
}

describe('trainBpe', () => {
  it('learns the hand-checked merges of "aaabdaaabac"', () => {
    // Pairs: aa ×4, ab ×2, the rest ×1 → merge a+a. Then "aa a b d aa a b a c": aa+a and a+b
    // tie at 2; the smaller ids win (a < aa), so a+b. Then "aa ab d aa ab a c": aa+ab ×2.
    // Everything left occurs once, below minFrequency 2.
    const tok = trainBpe(['aaabdaaabac'], {
      vocabSize: 1000,
      minFrequency: 2,
      specialTokens: SPECIALS,
    });
    expect(merges(tok)).toEqual([
      ['a', 'a'],
      ['a', 'b'],
      ['aa', 'ab'],
    ]);
    expect(tok.vocabSize).toBe(2 + 256 + 3);
    const aaab = tok.tokenToId('aaab')!;
    expect(aaab).toBe(2 + 256 + 2);
    expect(tok.encode('aaabdaaabac')).toEqual([
      aaab,
      tok.tokenToId('d'),
      aaab,
      tok.tokenToId('a'),
      tok.tokenToId('c'),
    ]);
  });

  it('gives special tokens the first ids and the 256 bytes the next, in GPT-2 table order', () => {
    const tok = trainBpe(['hello'], {
      vocabSize: 300,
      specialTokens: SPECIALS,
      eosToken: '<|endoftext|>',
    });
    expect(tok.tokenToId('<|endoftext|>')).toBe(0);
    expect(tok.tokenToId('<pad>')).toBe(1);
    expect(tok.tokenToId('!')).toBe(2); // GPT-2's byte order starts at '!' (0x21)
    const byteIds = BYTE_TO_CHAR.map((c) => tok.tokenToId(c)!);
    expect(new Set(byteIds).size).toBe(256);
    expect(Math.min(...byteIds)).toBe(2);
    expect(Math.max(...byteIds)).toBe(257);
    expect(tok.eosTokenId).toBe(0);
    // Special tokens are split out of the text, in training and in encode.
    expect(tok.encode('hi<pad>')).toEqual([...tok.encode('hi'), 1]);
  });

  it('trains on 1.2 MB of Moby-Dick in seconds, and encode reproduces every training word', () => {
    const text = mobyDick();
    const t0 = performance.now();
    const tok = trainBpe([text], { vocabSize: 2_000, minFrequency: 2, specialTokens: SPECIALS });
    const secs = (performance.now() - t0) / 1000;
    report(
      `trainBpe: ${(text.length / 1e6).toFixed(2)} MB, ${merges(tok).length} merges in ${secs.toFixed(2)} s`,
    );
    expect(secs).toBeLessThan(30);
    expect(merges(tok)).toHaveLength(2_000 - 258);
    expect(merges(tok).slice(0, 2)).toEqual([
      ['Ġ', 't'],
      ['h', 'e'],
    ]);
    expect(tok.decode(tok.encode(text))).toBe(text);
    // The trainer's own final segmentation of each word is what encode gives.
    const learned = learnMerges(countPreTokens([text], PATTERNS.gpt2, []), 2_000 - 258, 2);
    let checked = 0;
    for (const [word, syms] of learned.words) {
      const want = syms.map((s) => tok.tokenToId(learned.tokens[s]));
      expect(tok.encode(word)).toEqual(want);
      checked++;
    }
    expect(checked).toBeGreaterThan(10_000);
  });

  it('is deterministic and honours a custom pattern', () => {
    const texts = ['the theme of the thesis', '12345 67890 12345'];
    const a = trainBpe(texts, { vocabSize: 280, minFrequency: 1, pattern: PATTERNS.llama3 });
    const b = trainBpe(texts, { vocabSize: 280, minFrequency: 1, pattern: PATTERNS.llama3 });
    expect(merges(a)).toEqual(merges(b));
    expect(JSON.stringify(a.spec.preTokenizer)).toContain(JSON.stringify(PATTERNS.llama3));
    // Llama 3's pattern cuts digits in threes, so no merge crosses '123|45'.
    expect(merges(a).some(([x, y]) => /^\d+$/.test(x + y) && (x + y).length > 3)).toBe(false);
  });

  it('refuses a vocabSize too small for the special tokens and bytes, or an unknown bosToken', () => {
    expect(() => trainBpe(['x'], { vocabSize: 257, specialTokens: SPECIALS })).toThrow(
      /vocabSize must be an integer in \[258, .*the 2 special tokens plus 256 bytes need 258/,
    );
    let err: unknown;
    try {
      trainBpe(['x'], { vocabSize: 300, specialTokens: ['<a>'], bosToken: '<b>' });
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'BAD_ARGUMENT')).toBe(true);
    expect((err as Error).message).toContain('bosToken "<b>" is not one of specialTokens');
  });
});
