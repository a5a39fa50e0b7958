import { describe, expect, it } from 'vitest';
import { lastNumber } from '../../src/reward/answer.js';
import {
  exactMatch,
  lengthPenalty,
  lexiconSentiment,
  regexReward,
} from '../../src/reward/index.js';
import { batchOf } from './helpers.js';

const scores = async (p: Promise<Float32Array>) => [...(await p)];

describe('lastNumber (final-answer extraction)', () => {
  it.each([
    ['The answer is -3.', -3],
    ['We pay 1,234 dollars', 1234],
    ['costs $2.50 in total', 2.5],
    ['so 7 + 5 = \\boxed{42}. Check: 12 apples', 42],
    ['\\boxed{\\frac{1}{2}} then \\boxed{1,000}', 1000],
    ['Natalia sold 48/2 = 24 clips.\n#### 72', 72],
    ['3 steps, then #### -1,250.75 ok', -1250.75],
    ['no digits here', undefined],
  ])('%j → %s', (text, expected) => {
    expect(lastNumber(text)).toBe(expected);
  });
});

describe('exactMatch', () => {
  it('numeric: compares the last number with the answer column numerically', async () => {
    const s = exactMatch({ column: 'answer', normalize: 'numeric' });
    expect(s.name).toBe('exact-match');
    const batch = batchOf(
      ['so it is 2.50', 'total: 1,234', '#### 72', 'I think 5 or \\boxed{6}', 'no idea'],
      { answer: ['2.5', 1234, '72', 5, '1'] },
    );
    expect(await scores(s.score(batch))).toEqual([1, 1, 1, 0, 0]);
  });

  it('auto (default): a numeric reference matches numerically, so " 7." scores 1 against "7"', async () => {
    const s = exactMatch();
    const batch = batchOf(
      [' 7.', '7', '= 7', '\\boxed{7.0}', '#### 1,234', ' 8.', '-3', 'seven', '7 8'],
      { answer: ['7', 7, ' 7 ', '7', '1234', '7', '-3', '7', '7'] },
    );
    // '7 8': the final answer's last number is 8.
    expect(await scores(s.score(batch))).toEqual([1, 1, 1, 1, 1, 0, 1, 0, 0]);
    // A reference that is not a number alone is compared as text (trimmed, lowercased).
    const text = batchOf([' Paris ', '7 apples', '7'], { answer: ['paris', '7 apples', 'v7'] });
    expect(await scores(s.score(text))).toEqual([1, 1, 0]);
    // trim-lower, asked for by name, keeps the old behaviour: ' 7.' is not '7'.
    const strict = exactMatch({ normalize: 'trim-lower' });
    expect(await scores(strict.score(batchOf([' 7.', ' 7 '], { answer: ['7', '7'] })))).toEqual([
      0, 1,
    ]);
  });

  it('trim-lower and none compare the final answer text', async () => {
    const batch = batchOf(['  Paris ', 'paris', '#### PARIS'], {
      answer: ['paris', 'Paris', 'paris'],
    });
    expect(await scores(exactMatch().score(batch))).toEqual([1, 1, 1]);
    const exact = exactMatch({ normalize: 'none' });
    expect(await scores(exact.score(batch))).toEqual([0, 0, 0]);
    const same = batchOf(['Paris', '\\boxed{Rome}'], { answer: ['Paris', 'Rome'] });
    expect(await scores(exact.score(same))).toEqual([1, 1]);
  });

  it('names a missing column, and a bad option', async () => {
    await expect(
      exactMatch({ column: 'gold' }).score(batchOf(['x'], { answer: ['x'] })),
    ).rejects.toThrow(
      "reward 'exact-match': batch has no column 'gold' (columns: answer); set exactMatch option 'column'",
    );
    expect(() => exactMatch({ normalize: 'lower' as never })).toThrow(
      /exactMatch option 'normalize'/,
    );
    expect(() => exactMatch({ colum: 'answer' } as never)).toThrow(
      "exactMatch: unknown option 'colum'. Known: name, column, normalize.",
    );
  });
});

describe('regexReward', () => {
  it('gives reward on a match and penalty otherwise, the same on every row', async () => {
    const s = regexReward({ pattern: '^<think>.*</think>', flags: 'sg', reward: 1, penalty: -0.5 });
    const batch = batchOf([
      '<think>a\nb</think> 4',
      'plain 4',
      '<think>x</think>',
      '<think></think>',
    ]);
    expect(await scores(s.score(batch))).toEqual([1, -0.5, 1, 1]);
  });

  it('defaults to 1 and 0', async () => {
    const s = regexReward({ pattern: '\\d' });
    expect(await scores(s.score(batchOf(['a1', 'b'])))).toEqual([1, 0]);
  });

  it('refuses an invalid regex, naming the option', () => {
    expect(() => regexReward({ pattern: '(unclosed' })).toThrow(
      /^regexReward option 'pattern': invalid regular expression \/\(unclosed\/: /,
    );
    expect(() => regexReward({ pattern: 'a', flags: 'q' })).toThrow(/option 'pattern'.*flags/);
    expect(() => regexReward({} as never)).toThrow(/regexReward option 'pattern'/);
  });
});

describe('lengthPenalty', () => {
  it('is −scale·|len − target| / target in characters', async () => {
    const s = lengthPenalty({ target: 4, scale: 2 });
    expect(s.name).toBe('length');
    // lengths 4, 2, 10, 0 → 0, −2·2/4, −2·6/4, −2·4/4
    expect(await scores(s.score(batchOf(['abcd', 'ab', 'abcdefghij', ''])))).toEqual([
      -0, -1, -3, -2,
    ]);
  });

  it('counts with a given function (e.g. tokens)', async () => {
    const s = lengthPenalty({ target: 2, scale: 1, count: (t) => t.split(' ').length });
    expect(await scores(s.score(batchOf(['a b', 'a b c d'])))).toEqual([-0, -1]);
  });

  it('names bad options', () => {
    expect(() => lengthPenalty({ target: 0, scale: 1 })).toThrow(
      "lengthPenalty option 'target': must be > 0",
    );
    expect(() => lengthPenalty({ target: 10, scale: -1 })).toThrow(
      "lengthPenalty option 'scale': must be ≥ 0",
    );
    expect(() => lengthPenalty({ target: 10, count: 3 as never })).toThrow(
      "lengthPenalty option 'count': must be a function",
    );
  });
});

describe('lexiconSentiment (AFINN-165)', () => {
  // AFINN-165: good +3, great +3, love +3, awesome +4, hate −3, terrible −3, sad −2.
  it('sums valences over lowercase words, normalised by √(#words)', async () => {
    const s = lexiconSentiment();
    const batch = batchOf([
      'Good movie', // 3 / √2
      'I HATE this, it is terrible!', // (−3 − 3) / √6
      'love love awesome', // (3 + 3 + 4) / √3
      'the table', // 0
      '', // no words → 0
    ]);
    const out = await scores(s.score(batch));
    const want = [3 / Math.sqrt(2), -6 / Math.sqrt(6), 10 / Math.sqrt(3), 0, 0];
    out.forEach((v, i) => {
      expect(v).toBeCloseTo(want[i], 5);
    });
  });

  it('flips a word after a negator, and can normalise by word count or not at all', async () => {
    const batch = batchOf(["not good, and it isn't sad", 'great great sad day']);
    // not good → −3; isn't sad → +2 ; 6 words
    const byCount = await scores(lexiconSentiment({ normalize: 'count' }).score(batch));
    expect(byCount[0]).toBeCloseTo(-1 / 6, 6);
    expect(byCount[1]).toBeCloseTo(4 / 4, 6);
    const raw = lexiconSentiment({ normalize: 'none', negation: false });
    expect(await scores(raw.score(batch))).toEqual([1, 4]);
  });

  it('refuses unknown options', () => {
    expect(() => lexiconSentiment({ normalise: 'sqrt' } as never)).toThrow(
      /unknown option 'normalise'/,
    );
  });
});
