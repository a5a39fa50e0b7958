import { describe, expect, it } from 'vitest';
import { compilePattern, PATTERNS, translatePattern } from '../../../src/data/tokenizer/index.js';
import { forEachPiece } from '../../../src/data/tokenizer/tokenizer.js';
import { hasCode } from '../../../src/errors.js';
import { thrown } from '../../helpers/thrown.js';

function pieces(pattern: string, text: string): string[] {
  const out: string[] = [];
  forEachPiece(text, compilePattern(pattern), (p) => out.push(p));
  return out;
}

describe('pre-tokeniser patterns', () => {
  it('splits as GPT-2 does: contractions, letters, digits, punctuation, spaces before words', () => {
    expect(pieces(PATTERNS.gpt2, "I'm here  12345 ok!!\n\n  x")).toEqual([
      'I',
      "'m",
      ' here',
      ' ',
      ' 12345',
      ' ok',
      '!!',
      '\n\n ',
      ' x',
    ]);
    // GPT-2's contractions are case-sensitive.
    expect(pieces(PATTERNS.gpt2, "I'M")).toEqual(['I', "'", 'M']);
  });

  it("rewrites Llama 3's (?i:…) group, which Node 20 rejects, into case classes", () => {
    const js = translatePattern(PATTERNS.llama3);
    expect(js).not.toContain('(?i:');
    expect(js).toContain("'[sS]|'[tT]|'[rR][eE]");
    expect(pieces(PATTERNS.llama3, "I'M WE'LL don'T")).toEqual([
      'I',
      "'M",
      ' WE',
      "'LL",
      ' don',
      "'T",
    ]);
  });

  it('groups digits by three (Llama 3) or one (Qwen2)', () => {
    expect(pieces(PATTERNS.llama3, '1234567')).toEqual(['123', '456', '7']);
    expect(pieces(PATTERNS.qwen2, '1234')).toEqual(['1', '2', '3', '4']);
    expect(pieces(PATTERNS.llama3, 'x\n\n\ty.\n')).toEqual(['x', '\n\n', '\ty', '.\n']);
  });

  it('gives \\s its Unicode White_Space meaning: U+0085 is whitespace, U+FEFF is not', () => {
    // JS's own \s says the opposite for both; HF (Oniguruma) and tiktoken (Rust) agree with this.
    expect(pieces(PATTERNS.gpt2, 'a\u0085\u0085b')).toEqual(['a', '\u0085', '\u0085', 'b']);
    expect(pieces(PATTERNS.gpt2, 'a \ufeffb')).toEqual(['a', ' \ufeff', 'b']);
  });

  it('translates escapes whose JS meaning differs or that JS rejects with the u flag', () => {
    expect(translatePattern('\\d+')).toBe('\\p{Nd}+');
    expect(translatePattern('\\#\\&\\~')).toBe('#&~');
    expect(translatePattern('\\x{1F600}')).toBe('\\u{1F600}');
    expect(translatePattern('[^\\p{^L}]')).toBe('[^\\P{L}]');
    expect(pieces('\\d+', 'a٣٤b')).toEqual(['a', '٣٤', 'b']);
  });

  it('fails with UNSUPPORTED naming the construct it cannot translate', () => {
    const cases: [string, string][] = [
      ['\\p{L}++', 'possessive quantifier'],
      ['(?>ab)', 'atomic group'],
      ['(?x)a b', "'(?x'"],
      ['[[:alpha:]]', 'nested class or POSIX bracket'],
      ['\\Ga', "'\\G'"],
      ['[a-z&&[^c]]', 'class intersection'],
      ['(?i:[a-z]+)', 'inside (?i:...)'],
      ['[^\\S]', "'\\S' inside [...]"],
      ['\\p{Han}', 'not valid as a JS RegExp'],
    ];
    for (const [pattern, named] of cases) {
      const e = thrown(() => compilePattern(pattern));
      expect(hasCode(e, 'UNSUPPORTED')).toBe(true);
      expect(e.message).toContain(named);
      expect(e.details['pattern']).toBe(pattern);
    }
  });
});
