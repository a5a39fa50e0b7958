import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runTokenizer, TRAIN_OPTIONS, trainHelp } from '../../../src/cli/tokenizer.js';
import { tokenizerJsonText } from '../../../src/data/tokenizer/hf-write.js';
import {
  loadTokenizer,
  type Tokenizer,
  trainUnigram,
  trainWordPiece,
} from '../../../src/data/tokenizer/index.js';
import { suffixIntervals } from '../../../src/data/tokenizer/suffix-array.js';
import { digamma } from '../../../src/data/tokenizer/train-unigram.js';
import { Model, marginals, viterbi } from '../../../src/data/tokenizer/train-unigram-lattice.js';
import { hasCode } from '../../../src/errors.js';
import { GOLDEN_DIR } from './golden.js';
import { TROUPE_TRAINED } from './trained.js';

const tokens = (t: Tokenizer, s: string) =>
  t.encode(s, { addSpecialTokens: false }).map((id) => t.idToToken(id));

describe('trainWordPiece', () => {
  // Words: hug ×10, pug ×5, pun ×12, bun ×4, hugs ×5, spelt h ##u ##g etc. By hand, the pair
  // counts pick ##u+##g (20), ##u+##n (16), h+##ug (15), p+##un (12), then p+##ug and hug+##s
  // tie at 5 and the smaller ids win: p+##ug.
  const texts = [
    'hug '.repeat(10),
    'pug '.repeat(5),
    'pun '.repeat(12),
    'bun '.repeat(4),
    'hugs '.repeat(5),
  ];

  it('learns the hand-worked merges, with ## dropped from the right side, into a WordPiece vocab', () => {
    const tok = trainWordPiece(texts, { vocabSize: 5 + 11 + 5 });
    const vocab = [...Array(tok.vocabSize).keys()].map((id) => tok.idToToken(id));
    expect(vocab).toEqual([
      ...['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'],
      ...['b', 'g', 'h', 'n', 'p', 's', 'u', '##g', '##n', '##s', '##u'],
      ...['##ug', '##un', 'hug', 'pun', 'pug'],
    ]);
    expect(tokens(tok, 'hugs bun pug')).toEqual(['hug', '##s', 'b', '##un', 'pug']);
    expect(tok.encode('hugs')).toEqual([2, 18, 14, 3]);
    expect(tok.decode(tok.encode('Hugs bun', { addSpecialTokens: false }))).toBe('hugs bun');
  });

  it('keeps case with lowercase: false, and refuses an unk token that is not special', () => {
    const cased = trainWordPiece(['Hug hug'], { vocabSize: 40, lowercase: false, minFrequency: 1 });
    expect(cased.tokenToId('H')).toBeDefined();
    expect(() => trainWordPiece(texts, { vocabSize: 100, unkToken: '<unk>' })).toThrow(
      'trainWordPiece: unkToken "<unk>" is not one of specialTokens ([PAD], [UNK], [CLS], [SEP], [MASK])',
    );
    expect(() => trainWordPiece(texts, { vocabSize: 5 })).toThrow(
      'trainWordPiece: vocabSize must be an integer in [6,',
    );
  });
});

describe('trainUnigram', () => {
  it('computes ψ as SentencePiece does', () => {
    // ψ(1) = −γ, ψ(1/2) = −γ − 2 ln 2, ψ(10) = H₉ − γ.
    const gamma = 0.5772156649015329;
    expect(digamma(1)).toBeCloseTo(-gamma, 9);
    expect(digamma(0.5)).toBeCloseTo(-gamma - 2 * Math.LN2, 9);
    const h9 = [...Array(9).keys()].reduce((s, k) => s + 1 / (k + 1), 0);
    expect(digamma(10)).toBeCloseTo(h9 - gamma, 9);
  });

  it('counts pieces by forward-backward over a hand-worked lattice, and finds best and second-best paths', () => {
    // "ab" with a −1, b −2, ab −2.5: paths [a, b] (−3) and [ab] (−2.5), so
    // P(ab) = e^−2.5 / (e^−3 + e^−2.5) = 1 / (1 + e^−0.5) and P(a) = P(b) = 1 − P(ab).
    const model = new Model([
      ['<UNK>', Number.NaN],
      ['a', -1],
      ['b', -2],
      ['ab', -2.5],
    ]);
    const lattice = model.lattice('ab');
    const expected = new Float64Array(4);
    const logZ = marginals(lattice, 2, expected);
    const pAb = 1 / (1 + Math.exp(-0.5));
    expect(logZ).toBeCloseTo(2 * Math.log(Math.exp(-3) + Math.exp(-2.5)), 12);
    expect([...expected]).toEqual(
      [0, 2 * (1 - pAb), 2 * (1 - pAb), 2 * pAb].map((x) => expect.closeTo(x, 12)),
    );
    const best = viterbi(lattice)!;
    expect(best.map((n) => lattice.id[n])).toEqual([3]);
    expect(viterbi(lattice, best[0])!.map((n) => lattice.id[n])).toEqual([1, 2]);
    // 'c' has no piece: the unknown piece at min score − 10 = −12.5 covers it.
    const unk = model.lattice('ac');
    expect(viterbi(unk)!.map((n) => [unk.id[n], unk.score[n]])).toEqual([
      [1, -1],
      [0, -12.5],
    ]);
  });

  it('seeds from exactly the suffix tree’s internal nodes (checked against brute force)', () => {
    let seed = 5;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let trial = 0; trial < 30; trial++) {
      const text = Int32Array.from(
        { length: 5 + Math.floor(rand() * 40) },
        () => 97 + Math.floor(rand() * 3),
      );
      const got = new Map<string, number>();
      suffixIntervals(text, (start, len, count) => {
        got.set(String.fromCharCode(...text.subarray(start, start + len)), count);
      });
      const s = String.fromCharCode(...text);
      const want = new Map<string, number>();
      for (let len = 1; len <= s.length; len++) {
        for (let i = 0; i + len <= s.length; i++) {
          const sub = s.slice(i, i + len);
          if (want.has(sub)) continue;
          const next = new Set<string>();
          let count = 0;
          for (let j = s.indexOf(sub); j >= 0; j = s.indexOf(sub, j + 1)) {
            count++;
            next.add(s[j + len] ?? 'END');
          }
          if (count >= 2 && next.size >= 2) want.set(sub, count);
        }
      }
      expect(got).toEqual(want);
    }
  });

  it('gives the pieces and scores HF’s UnigramTrainer gives (tokenizers 0.23, recorded)', () => {
    const texts = [
      ...Array(60).fill('the whale and the sea'),
      ...Array(20).fill('a white whale'),
      'queer quahog',
      'the theme then',
      'whales where white',
    ];
    // SentencePieceUnigramTokenizer().train_from_iterator(texts, vocab_size=26, special_tokens=
    // ['<unk>', '<s>', '</s>']): 23 pieces after seeding, EM and one pruning ('er' and '▁a' go).
    // Characters missing from the pieces score min + k·0.0001 in an order HF takes from a hash
    // set, hence the 2-decimal comparison.
    const hf: [string, number][] = [
      ['</s>', 0],
      ['<s>', 0],
      ['<unk>', 0],
      ['a', -1.8647],
      ['d', -2.6166],
      ['e', -2.2777],
      ['g', -7.2798],
      ['h', -7.2489],
      ['i', -3.6821],
      ['l', -7.2796],
      ['m', -7.2798],
      ['n', -2.6],
      ['o', -7.2798],
      ['q', -7.2795],
      ['r', -7.2794],
      ['s', -2.6],
      ['t', -3.6815],
      ['the', -5.5516],
      ['u', -7.2797],
      ['w', -7.2798],
      ['whale', -5.9331],
      ['▁', -1.8198],
      ['▁qu', -6.2798],
      ['▁the', -1.9248],
      ['▁wh', -3.6581],
      ['▁whale', -2.3477],
    ];
    const tok = trainUnigram(texts, { vocabSize: 26 });
    const pieces = tok.spec.model.type === 'Unigram' ? tok.spec.model.pieces : [];
    const sorted = [...pieces].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    expect(sorted.map(([p]) => p)).toEqual(hf.map(([p]) => p));
    for (const [i, [, score]] of sorted.entries()) expect(score).toBeCloseTo(hf[i][1], 2);
    // Special tokens first, then pieces by score.
    expect(pieces.slice(0, 3).map(([p]) => p)).toEqual(['<unk>', '<s>', '</s>']);
    const scores = pieces.slice(3).map(([, s]) => s);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(tokens(tok, 'the whale')).toEqual(['▁the', '▁whale']);
    expect(tok.decode(tok.encode('the queer whale'))).toBe('the queer whale');
  });

  it('refuses a vocabulary too small for the characters of the text', () => {
    expect(() => trainUnigram(['abcdefgh'], { vocabSize: 6 })).toThrow(
      'trainUnigram: vocabSize 6 cannot hold the 9 distinct characters of the text and 3 special tokens',
    );
  });
});

describe('the trained fixtures', () => {
  it('are what the trainers write today, so Python’s ids in the goldens are ids for this code', () => {
    for (const [name, train] of Object.entries(TROUPE_TRAINED)) {
      const committed = readFileSync(
        join(GOLDEN_DIR, 'files/troupe', name, 'tokenizer.json'),
        'utf8',
      );
      expect(tokenizerJsonText(train().spec), name).toBe(committed);
    }
  });
});

describe('troupe tokenizer train --kind', () => {
  const out = mkdtempSync(join(tmpdir(), 'troupe-train-kinds-'));
  const run = (...args: string[]) => {
    const logs: string[] = [];
    return runTokenizer(['train', ...args], (l) => logs.push(l)).then(() => logs);
  };

  it('trains WordPiece and Unigram tokenizers that load back, with the kind’s defaults', async () => {
    const input = 'data/sentiment/labelled.jsonl';
    const logs = await run(
      '--kind',
      'wordpiece',
      '--input',
      input,
      '--output',
      join(out, 'wp'),
      '--vocab-size',
      '600',
    );
    expect(logs.at(-1)).toMatch(/^trained 600 tokens on 2982 texts in .* \(wordpiece\)$/);
    const wp = await loadTokenizer(join(out, 'wp'));
    expect(wp.kind).toBe('WordPiece');
    expect(wp.encode('A great movie').slice(0, 1)).toEqual([wp.tokenToId('[CLS]')]);
    await run(
      '--kind',
      'unigram',
      '--input',
      input,
      '--output',
      join(out, 'uni'),
      '--vocab-size',
      '400',
    );
    const uni = await loadTokenizer(join(out, 'uni'));
    expect(uni.kind).toBe('Unigram');
    expect(uni.decode(uni.encode('A great movie'))).toBe('A great movie');
    expect(uni.tokenToId('<unk>')).toBe(0);
  });

  it('prints --help from the option table and refuses options of another kind', async () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    await run('--help');
    const printed = String(write.mock.calls[0]?.[0]);
    write.mockRestore();
    expect(printed).toBe(trainHelp());
    for (const o of TRAIN_OPTIONS) expect(printed).toContain(`--${o.name}`);
    expect(printed).toContain('--limit-alphabet N');
    expect(printed).toContain('(--kind wordpiece only)');
    const fail = (args: string[]) => run(...args, '--input', 'x.jsonl', '--output', join(out, 'x'));
    await expect(fail(['--kind', 'bpe', '--limit-alphabet', '50'])).rejects.toThrow(
      '--limit-alphabet applies to --kind wordpiece, not bpe',
    );
    await expect(fail(['--kind', 'sentencepiece'])).rejects.toSatisfy(
      (e) => hasCode(e, 'BAD_ARGUMENT') && (e as Error).message.includes('bpe, wordpiece, unigram'),
    );
  });
});
