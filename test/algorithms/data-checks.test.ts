import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainLm } from '../../src/algorithms/lm.js';
import { trainPreference } from '../../src/algorithms/preference.js';
import { trainRl } from '../../src/algorithms/rl.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig, PretrainConfig, RlConfig, SftConfig } from '../../src/config/schema.js';
import { tokenizeSft } from '../../src/data/batching/index.js';
import { loadExamples } from '../../src/data/datasets/index.js';
import { loadTokenizer } from '../../src/data/tokenizer/index.js';
import { rejected } from '../helpers/thrown.js';

/**
 * What a trainer says when its data gives it nothing to train on: the file, and what is wrong
 * with it (empty, too short, every row dropped and why), before any actor starts.
 */
const dir = mkdtempSync(join(tmpdir(), 'troupe-data-checks-'));
let files = 0;
function file(rows: readonly unknown[] | string): string {
  const path = join(dir, `data-${files++}.jsonl`);
  writeFileSync(
    path,
    typeof rows === 'string' ? rows : rows.map((r) => JSON.stringify(r)).join('\n'),
  );
  return path;
}

const TEXT = Array.from({ length: 12 }, (_, i) => ({
  text: `Call me Ishmael, said the ${i}th sailor, and the sea was grey.`,
}));
const tiny = { family: 'gpt2', hidden: 16, layers: 1, heads: 2, maxPositions: 64 };

function config<T>(algorithm: string, data: Record<string, unknown>, extra = {}): Promise<T> {
  return loadConfig<T>(algorithm, {
    object: {
      output: mkdtempSync(join(dir, 'run-')),
      model: { init: tiny, tokenizer: { train: { vocabSize: 280 } } },
      data: { blockSize: 24, maxLength: 48, ...data },
      train: { steps: 1, batchSize: 2, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
      runtime: { backend: 'wasm' },
      ...extra,
    },
  });
}

/** No actor was started: the policy never logged that it was ready. */
const noActors = (output: string) =>
  expect(readFileSync(join(output, 'log.txt'), 'utf8')).not.toMatch(/ready/);

describe('empty input', () => {
  it('an empty train file is named as empty, with or without an eval file', async () => {
    const empty = file('');
    const blank = file('\n  \n\n');
    for (const data of [
      { train: empty, evalFraction: 0.2 },
      { train: blank, eval: file(TEXT) },
    ]) {
      const c = await config<PretrainConfig>('pretrain', data);
      const e = await rejected(trainLm(c));
      expect(e.code).toBe('BAD_DATA');
      expect(e.message).toBe(
        `${data.train}: the training file has no rows (it is empty, or holds only blank lines); data.train needs at least one`,
      );
      expect(e.details).toMatchObject({ file: data.train, rows: 0 });
      noActors(c.output);
    }
  });

  it('an empty eval file is named as such', async () => {
    const evalFile = file('');
    const e = await rejected(
      trainLm(await config<PretrainConfig>('pretrain', { train: file(TEXT), eval: evalFile })),
    );
    expect(e.message).toBe(
      `${evalFile}: the eval file has no rows (it is empty, or holds only blank lines); data.eval needs at least one`,
    );
  });

  it('an evalFraction that holds out no row names the file, its rows and a fraction that works', async () => {
    const train = file(TEXT.slice(0, 3));
    const e = await rejected(
      trainLm(await config<PretrainConfig>('pretrain', { train, evalFraction: 0.05 })),
    );
    expect(e.message).toBe(
      `${train}: evalFraction 0.05 of its 3 rows holds out 0 for eval, leaving no eval rows. ` +
        'Raise evalFraction to at least 0.167, give an eval file (data.eval), or set evalFraction to 0 (no eval).',
    );
    // The advice holds: 0.167 of 3 rows is one eval row (a one-row file cannot be split at all).
    const one = file(TEXT.slice(0, 1));
    expect(
      (
        await rejected(
          trainLm(await config<PretrainConfig>('pretrain', { train: one, evalFraction: 0.5 })),
        )
      ).message,
    ).toMatch(
      /holds out 1 for eval, leaving no training rows\. A split needs at least 2 rows: add rows/,
    );
    // evalFraction 0 means no eval split, as the config schema allows.
    const c = await config<PretrainConfig>(
      'pretrain',
      { train, evalFraction: 0, blockSize: 200 },
      { model: { init: { ...tiny, maxPositions: 256 }, tokenizer: { train: { vocabSize: 280 } } } },
    );
    expect((await rejected(trainLm(c))).message).toMatch(/fewer than the 201 of one block/);
  });
});

describe('every row dropped', () => {
  it('pretrain: too few tokens for one block names the file, the count, and a blockSize that fits', async () => {
    const train = file([{ text: 'Call me Ishmael.' }, { text: 'Some years ago.' }]);
    const c = await config<PretrainConfig>('pretrain', { train, evalFraction: 0, blockSize: 63 });
    const e = await rejected(trainLm(c));
    const m =
      /^(.*): (\d+) tokens \(2 rows, an EOS after each\), fewer than the 64 of one block \(data\.blockSize 63 \+ 1\): lower data\.blockSize to (\d+) or less, or add text$/.exec(
        e.message,
      );
    expect(m, e.message).not.toBeNull();
    expect(m![1]).toBe(train);
    expect(Number(m![3])).toBe(Number(m![2]) - 1);
    noActors(c.output);
    // A short eval file: the fix is in the eval file first (the training data was fine).
    const evalFile = file([{ text: 'Call me' }]);
    const e2 = await rejected(
      trainLm(
        await config<PretrainConfig>('pretrain', {
          train: file(TEXT),
          eval: evalFile,
          blockSize: 24,
        }),
      ),
    );
    expect(e2.message).toMatch(
      new RegExp(
        `^${evalFile}: \\d+ tokens \\(1 row, an EOS after each\\), fewer than the 25 of one block \\(data.blockSize 24 \\+ 1\\): add text to it, or lower data.blockSize to \\d+ or less$`,
      ),
    );
  });

  it('pretrain on a non-text row names its file and line', async () => {
    const train = file([...TEXT.slice(0, 3), { prompt: 'p', completion: 'c' }]);
    const e = await rejected(
      trainLm(await config<PretrainConfig>('pretrain', { train, evalFraction: 0, format: 'text' })),
    );
    // format text: line 4 lacks 'text' (the reader says so); detected formats give the row kind.
    expect(e.message).toMatch(new RegExp(`^${train}:4: missing column 'text'`));
    const completions = file([{ prompt: 'p', completion: 'c' }]);
    const e2 = await rejected(
      trainLm(await config<PretrainConfig>('pretrain', { train: completions, evalFraction: 0 })),
    );
    expect(e2.message).toBe(
      `${completions}:1: pretrain reads rows with a 'text' column; this is a 'completion' row (train those with sft)`,
    );
  });

  it('SFT: a row without a completion names its file:line; all rows over maxLength name the shortest', async () => {
    const promptOnly = file([{ prompt: 'What is 2 + 2?', answer: '4' }]);
    const e = await rejected(
      trainLm(await config<SftConfig>('sft', { train: promptOnly, evalFraction: 0 })),
    );
    expect(e.code).toBe('BAD_DATA');
    expect(e.message).toMatch(
      new RegExp(
        `^${promptOnly}:1: SFT trains on rows with a 'completion'.*data.columns: \\{ answer: completion \\}$`,
      ),
    );

    const rows = [
      { prompt: 'What is two plus two, my friend?', completion: ' Four, as everyone knows.' },
      { prompt: 'And three plus three?', completion: ' Six.' },
    ];
    const train = file(rows);
    const c = await config<SftConfig>('sft', { train, evalFraction: 0, maxLength: 4 });
    const e2 = await rejected(trainLm(c));
    const m =
      /^(.*): every example is longer than data\.maxLength 4 tokens, so all 2 were dropped \(the shortest has (\d+)\); raise data\.maxLength to at least (\d+)$/.exec(
        e2.message,
      );
    expect(m, e2.message).not.toBeNull();
    expect(m![1]).toBe(train);
    // The shortest, tokenised again with the run's saved tokenizer, as the trainer does.
    const tok = await loadTokenizer(join(c.output, 'tokenizer'));
    const lengths = (await loadExamples(train)).map(
      (x) => tokenizeSft(tok, x, { appendEos: true })!.ids.length,
    );
    expect(Number(m![2])).toBe(Math.min(...lengths));
    noActors(c.output);
  });

  it('DPO: every pair over maxLength (the longer side counts), named with its file', async () => {
    const rows = Array.from({ length: 10 }, (_, i) => ({
      prompt: `Review ${i}:`,
      chosen: ' a fine and moving film',
      rejected: ' a dull, tired and very long film',
    }));
    rows[3] = { prompt: 'A very very very long prompt here:', chosen: ' good', rejected: ' bad' };
    const train = file(rows);
    const e = await rejected(
      trainPreference(await config<DpoConfig>('dpo', { train, evalFraction: 0.1, maxLength: 3 })),
    );
    expect(e.message).toMatch(
      new RegExp(
        `^${train}: every pair is longer than data.maxLength 3 tokens, so all 9 were dropped`,
      ),
    );
  });

  it('RL: prompts all over maxLength or empty, counted and named', async () => {
    const train = file([{ prompt: '' }, { prompt: 'a long prompt of many words indeed' }]);
    const c = await config<RlConfig>(
      'grpo',
      { train, evalFraction: 0, maxLength: 2 },
      { reward: { sources: [{ type: 'length', target: 3 }] } },
    );
    const e = await rejected(trainRl(c));
    expect(e.message).toMatch(
      new RegExp(
        `^${train}: no prompt was kept: of 2, 1 longer than data.maxLength 2 tokens \\(the shortest has \\d+\\) and 1 empty \\(no tokens\\); raise data.maxLength to at least \\d+$`,
      ),
    );
    noActors(c.output);
  });
});

describe('sequence length against the model positions', () => {
  it('model.init: blockSize == maxPositions is refused at config load, naming both fields', async () => {
    const data = { train: 'data/moby-dick/eval.jsonl', blockSize: 64 };
    await expect(config<PretrainConfig>('pretrain', data)).rejects.toThrow(
      "data.blockSize: blockSize 64 makes blocks of 65 tokens (each input's next token is its target), more than the 64 positions of model.init: lower data.blockSize to 63, or raise model.init.maxPositions to 65",
    );
    await expect(
      config<PretrainConfig>('pretrain', { ...data, blockSize: 63 }),
    ).resolves.toBeTruthy();
    await expect(config<SftConfig>('sft', { train: 'x.jsonl', maxLength: 65 })).rejects.toThrow(
      'data.maxLength: maxLength 65 lets rows of up to 65 tokens through, more than the 64 positions of model.init: lower data.maxLength to 64, or raise model.init.maxPositions to 65',
    );
    await expect(
      config<SftConfig>('sft', { train: 'x.jsonl', maxLength: 64 }),
    ).resolves.toBeTruthy();
  });

  it('model.path: refused once its config.json is read, before any actor starts', async () => {
    const fixture = (name: string) => join('test/fixtures/models', name);
    const start = (path: string, data: Record<string, unknown>) =>
      config<PretrainConfig>('pretrain', data, {
        model: { path, tokenizer: 'test/fixtures/tokenizers/files/bert-cased.json' },
      });
    const c = await start(fixture('gpt2'), { train: file(TEXT), evalFraction: 0, blockSize: 64 });
    const e = await rejected(trainLm(c));
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toBe(
      `data.blockSize: blockSize 64 makes blocks of 65 tokens (each input's next token is its target), more than the 64 positions of the model at model.path (${resolve(fixture('gpt2'))}): lower data.blockSize to 63, or start from a model with at least 65 positions`,
    );
    expect(e.details).toMatchObject({ field: 'data.blockSize', positions: 64 });
    noActors(c.output);
    // Dynamic RoPE extends the 16 positions of this Llama by its factor 2: 32 fit, 33 do not.
    const d = await start(fixture('llama-dynamic'), {
      train: file(TEXT),
      evalFraction: 0,
      blockSize: 32,
    });
    expect((await rejected(trainLm(d))).message).toMatch(/more than the 32 positions of the model/);
  });
});
