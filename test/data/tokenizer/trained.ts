import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Tokenizer,
  trainBpe,
  trainUnigram,
  trainWordPiece,
} from '../../../src/data/tokenizer/index.js';

/**
 * The tokenizers Troupe trains for the golden fixtures, and the text they are trained on: the
 * first 1,500 lines of the shipped Moby-Dick training set and the golden corpus (scripts, emoji,
 * code). The fixture script saves them and records Python `tokenizers`' ids for them; the tests
 * retrain them and check the files are the same.
 */
export function trainingText(): string[] {
  const root = join(import.meta.dirname, '../../..');
  const moby = readFileSync(join(root, 'data/moby-dick/train.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(0, 1500)
    .map((l) => JSON.parse(l).text as string);
  const corpus: string[] = JSON.parse(
    readFileSync(join(root, 'test/fixtures/tokenizers/corpus.json'), 'utf8'),
  );
  return [...moby, ...corpus];
}

export const TROUPE_TRAINED: Readonly<Record<string, () => Tokenizer>> = {
  'troupe-wordpiece': () => trainWordPiece(trainingText(), { vocabSize: 2000 }),
  'troupe-unigram': () => trainUnigram(trainingText(), { vocabSize: 1500 }),
  'troupe-bpe': () =>
    trainBpe(trainingText(), {
      vocabSize: 1000,
      specialTokens: ['<|endoftext|>', '<|pad|>'],
      eosToken: '<|endoftext|>',
      padToken: '<|pad|>',
    }),
};
