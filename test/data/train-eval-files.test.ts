import { describe, expect, it } from 'vitest';
import { trainEvalFiles } from '../../src/data/split.js';

describe('trainEvalFiles: what a run config’s data section asks loadTrainEval for', () => {
  it('an eval file is read as it is; without one, evalFraction splits the training file', () => {
    const data = { train: 't.jsonl', evalFraction: 0.1, columns: { q: 'prompt' } };
    expect(trainEvalFiles(data, 7)).toEqual({
      train: 't.jsonl',
      evalFraction: 0.1,
      seed: 7,
      columns: { q: 'prompt' },
      format: undefined,
    });
    expect(trainEvalFiles({ ...data, eval: 'e.jsonl', format: 'text' }, 3)).toEqual({
      train: 't.jsonl',
      eval: 'e.jsonl',
      seed: 3,
      columns: { q: 'prompt' },
      format: 'text',
    });
  });

  it('a trainer can name the format its data must have', () => {
    const files = trainEvalFiles(
      { train: 't.jsonl', evalFraction: 0, format: 'text' },
      0,
      'prompt',
    );
    expect(files.format).toBe('prompt');
  });
});
