import { describe, expect, it } from 'vitest';
import {
  BYTE_TO_CHAR,
  bytesToSymbols,
  symbolsToBytes,
  utf8Encode,
} from '../../../src/data/tokenizer/bytes.js';
import { BpeTokenizer } from '../../../src/data/tokenizer/index.js';
import { applyMerges, PairTable } from '../../../src/data/tokenizer/merges.js';
import { bpeOptions } from '../../../src/data/tokenizer/models/bpe.js';
import { byteLevelJson } from '../../../src/data/tokenizer/spec.js';
import { hasCode } from '../../../src/errors.js';
import { gpt2 } from './fixtures.js';

/** The slow, obvious merge loop: find the lowest-ranked pair (leftmost on ties), merge, repeat. */
function referenceMerges(word: number[], merges: readonly (readonly [number, number, number])[]) {
  const rank = new Map(merges.map(([a, b], r) => [`${a},${b}`, r] as const));
  const w = [...word];
  for (;;) {
    let best = -1;
    let at = -1;
    for (let i = 0; i + 1 < w.length; i++) {
      const r = rank.get(`${w[i]},${w[i + 1]}`);
      if (r !== undefined && (best < 0 || r < best)) [best, at] = [r, i];
    }
    if (best < 0) return w;
    w.splice(at, 2, merges[best][2]);
  }
}

function seeded(seed: number) {
  let s = seed;
  return (n: number) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % n;
  };
}

describe('byte table and UTF-8', () => {
  it("is GPT-2's: printable bytes stand for themselves, space is 'Ġ', newline 'Ċ'", () => {
    expect(new Set(BYTE_TO_CHAR).size).toBe(256);
    expect(BYTE_TO_CHAR[0x41]).toBe('A');
    expect(BYTE_TO_CHAR[0x20]).toBe('Ġ');
    expect(BYTE_TO_CHAR[0x0a]).toBe('Ċ');
    expect(BYTE_TO_CHAR[0x00]).toBe('Ā');
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(symbolsToBytes(bytesToSymbols(all))).toEqual(all);
    expect(symbolsToBytes('a b')).toBeUndefined();
  });

  it('encodes UTF-8 as TextEncoder does, lone surrogates included', () => {
    const rand = seeded(5);
    const enc = new TextEncoder();
    const out = new Uint8Array(3 * 64);
    for (let t = 0; t < 2000; t++) {
      const units = Array.from(
        { length: 1 + rand(64) },
        () => [rand(0x80), rand(0x800), rand(0x10000), 0xd800 + rand(0x800)][rand(4)],
      );
      const s = String.fromCharCode(...units);
      const n = utf8Encode(s, 0, s.length, out);
      expect(out.subarray(0, n)).toEqual(enc.encode(s));
    }
  });
});

describe('applyMerges (linked list + heap)', () => {
  it('matches the slow reference on seeded random merge tables and words', () => {
    const rand = seeded(11);
    for (let t = 0; t < 300; t++) {
      const alphabet = 2 + rand(5);
      const merges: [number, number, number][] = [];
      const seen = new Set<string>();
      for (let id = alphabet; id < alphabet + 1 + rand(20); id++) {
        const a = rand(id);
        const b = rand(id);
        if (seen.has(`${a},${b}`)) continue;
        seen.add(`${a},${b}`);
        merges.push([a, b, id]);
      }
      const table = new PairTable(merges);
      const word = Array.from({ length: 1 + rand(t < 290 ? 40 : 3000) }, () => rand(alphabet));
      const out: number[] = [];
      applyMerges(Int32Array.from(word), word.length, table, out);
      expect(out).toEqual(referenceMerges(word, merges));
    }
  });

  it('gives a repeated merge its last rank, as HF and transformers.js do', () => {
    // (0,1)→2 at rank 0 and again at rank 2; (1,3)→4 at rank 1 now wins for [0, 1, 3].
    const table = new PairTable([
      [0, 1, 2],
      [1, 3, 4],
      [0, 1, 2],
    ]);
    expect(table.rank(0, 1)).toBe(2);
    const out: number[] = [];
    applyMerges(Int32Array.from([0, 1, 3]), 3, table, out);
    expect(out).toEqual([0, 4]);
  });

  it('merges equal-ranked pairs leftmost first ("aaa" with a+a → [aa, a])', () => {
    const out: number[] = [];
    applyMerges(Int32Array.from([0, 0, 0]), 3, new PairTable([[0, 0, 1]]), out);
    expect(out).toEqual([1, 0]);
  });
});

/** A four-byte-symbol tokenizer: vocab a b c ab abc, merges a+b; `abc` only via ignore_merges. */
function tiny(ignoreMerges: boolean): BpeTokenizer {
  const vocab = new Map(BYTE_TO_CHAR.map((c, i) => [c, i]));
  vocab.set('ab', 256);
  vocab.set('abc', 257);
  return new BpeTokenizer({
    model: {
      type: 'BPE',
      vocab,
      merges: [['a', 'b']],
      mergesForm: 'string',
      options: bpeOptions({ ignore_merges: ignoreMerges }),
    },
    addedTokens: [],
    ...byteLevelJson(undefined),
    special: { addBosToken: false, addEosToken: false },
    extra: {},
    config: {},
  });
}

describe('BpeTokenizer encode/decode', () => {
  const tok = gpt2();

  it('round-trips emoji, ZWJ sequences, combining marks, CJK, BOM, controls and the empty string', () => {
    for (const s of [
      '',
      'hello world',
      '👨‍👩‍👧‍👦 👍🏽 🏳️‍🌈 🇯🇵',
      'cafe\u0301 Z\u0351\u0307a\u0300',
      '日本語のテキスト 한국어 𠜎𠜱',
      '\ufeffstarts with a BOM',
      '\u0000\u0001\u007f\u0085\u2028 \t\r\n',
      "  I'M   here\n\n\tdon'T  ",
    ]) {
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
  });

  it('encodes a lone surrogate as U+FFFD (its UTF-8 does not exist), so it decodes as U+FFFD', () => {
    expect(tok.encode('a\ud800b')).toEqual(tok.encode('a\ufffdb'));
    expect(tok.decode(tok.encode('x\udc00'))).toBe('x\ufffd');
    expect(tok.decode(tok.encode('😀'.slice(0, 1)))).toBe('\ufffd');
  });

  it('decodes invalid UTF-8 (a token sequence cut inside a character) to U+FFFD', () => {
    // 0xE2 opens a three-byte character ('€' is E2 82 AC); alone it is invalid UTF-8.
    const e2 = tok.tokenToId(BYTE_TO_CHAR[0xe2])!;
    expect(tok.decode([e2])).toBe('\ufffd');
    expect(tok.decode([e2, ...tok.encode('x')])).toBe('\ufffdx');
    expect(tok.decode([...tok.encode('a'), e2, e2])).toBe('a\ufffd\ufffd');
  });

  it('refuses to decode an id outside the vocabulary, naming it', () => {
    const err = (() => {
      try {
        tok.decode([1, 999_999]);
      } catch (e) {
        return e;
      }
    })();
    expect(hasCode(err, 'BAD_ARGUMENT')).toBe(true);
    expect((err as Error).message).toContain('999999');
  });

  it('keeps encode linear on a pathological 200,000-character pre-token', () => {
    const t0 = performance.now();
    const ids = tok.encode(' '.repeat(200_000));
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(tok.decode(ids)).toBe(' '.repeat(200_000));
    expect(tok.decode(tok.encode('a'.repeat(50_000)))).toBe('a'.repeat(50_000));
  });

  it('maps a pre-token that is a vocab entry straight to its id with ignore_merges', () => {
    expect(tiny(false).encode('abc')).toEqual([256, 99]);
    expect(tiny(true).encode('abc')).toEqual([257]);
    // Only a whole pre-token is looked up: 'abcabd' and ' abc' still go through the merges.
    expect(tiny(true).encode('abcabd')).toEqual([256, 99, 256, 100]);
    expect(tiny(true).encode(' abc')).toEqual([32, 256, 99]);
  });

  it('exposes token ↔ id lookups and the special tokens', () => {
    expect(tok.vocabSize).toBe(50257);
    expect(tok.tokenToId('Ġthe')).toBe(262);
    expect(tok.idToToken(262)).toBe('Ġthe');
    expect(tok.eosTokenId).toBe(50256);
    expect(tok.encode('a<|endoftext|>b')).toEqual([64, 50256, 65]);
    expect(tok.decode([64, 50256, 65], { skipSpecialTokens: true })).toBe('ab');
  });
});
