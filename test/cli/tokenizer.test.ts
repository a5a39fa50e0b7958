import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runTokenizer } from '../../src/cli/tokenizer.js';
import { saveTokenizer, trainBpe } from '../../src/data/tokenizer/index.js';

const dir = mkdtempSync(join(tmpdir(), 'troupe-cli-tok-'));
const TEXTS = ['the cat sat on the mat', 'the dog sat on the log', 'émoji 🐋 and\ttabs\n'];

const readLines = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

async function run(...args: string[]) {
  const logs: string[] = [];
  const code = await runTokenizer(args, (l) => logs.push(l));
  return { code, logs };
}

describe('troupe tokenizer', () => {
  const tok = trainBpe(TEXTS, {
    vocabSize: 300,
    minFrequency: 1,
    specialTokens: ['<|endoftext|>'],
    eosToken: '<|endoftext|>',
  });
  beforeAll(async () => {
    await saveTokenizer(join(dir, 'tok'), tok);
  });

  it('encodes {"text"} lines to {"ids"} and decodes them back, one output line per input line', async () => {
    const input = join(dir, 'in.jsonl');
    writeFileSync(input, `${TEXTS.map((text) => JSON.stringify({ text })).join('\n')}\n\n`);
    const ids = join(dir, 'ids.jsonl');
    const enc = await run(
      'encode',
      '--tokenizer',
      join(dir, 'tok'),
      '--input',
      input,
      '--output',
      ids,
    );
    expect(enc.code).toBe(0);
    expect(enc.logs.at(-1)).toBe(`wrote 3 lines to ${ids}`);
    const rows = readLines(ids);
    expect(rows).toEqual(TEXTS.map((t) => ({ ids: tok.encode(t) })));
    expect(existsSync(`${ids}.partial`)).toBe(false);

    const back = join(dir, 'text.jsonl');
    const tokenizerFile = join(dir, 'tok', 'tokenizer.json');
    await run('decode', '--tokenizer', tokenizerFile, '--input', ids, '--output', back);
    expect(readLines(back)).toEqual(TEXTS.map((text) => ({ text })));
  });

  it('keeps or drops special tokens as asked', async () => {
    const input = join(dir, 'special.jsonl');
    writeFileSync(input, `${JSON.stringify({ text: 'the<|endoftext|>' })}\n`);
    const ids = join(dir, 'special-ids.jsonl');
    await run('encode', '--tokenizer', join(dir, 'tok'), '--input', input, '--output', ids);
    expect(readLines(ids)[0].ids.at(-1)).toBe(0);
    const text = join(dir, 'special-text.jsonl');
    await run(
      'decode',
      '--tokenizer',
      join(dir, 'tok'),
      '--input',
      ids,
      '--output',
      text,
      '--skip-special-tokens',
    );
    expect(readLines(text)).toEqual([{ text: 'the' }]);
  });

  it('names the file and line of a bad input line and leaves no output behind', async () => {
    const cases: [string, string, string][] = [
      ['encode', '{"text": "ok"}\n{"txt": "no"}\n', ":2: expected a string field 'text'"],
      ['encode', '{"text": "ok"}\n\n{not json\n', ':3: not valid JSON'],
      ['decode', '{"ids": [1, 2]}\n[1]\n', ':2: expected an object like {"ids": [15496, 11]}'],
      [
        'decode',
        '{"ids": [1, 99999]}\n',
        `:1: ids[1] = 99999 is not a token id of this tokenizer (vocab size ${tok.vocabSize})`,
      ],
    ];
    for (const [sub, content, message] of cases) {
      const input = join(dir, `bad-${sub}.jsonl`);
      const output = join(dir, `bad-${sub}-out.jsonl`);
      writeFileSync(input, content);
      await expect(
        run(sub, '--tokenizer', join(dir, 'tok'), '--input', input, '--output', output),
      ).rejects.toThrow(`${input}${message}`);
      expect(existsSync(output)).toBe(false);
      expect(existsSync(`${output}.partial`)).toBe(false);
      expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    }
  });

  it('explains a missing option, an unknown sub-command and a missing tokenizer', async () => {
    await expect(run('encode', '--input', 'x', '--output', 'y')).rejects.toThrow(
      '--tokenizer is required',
    );
    await expect(run('tokenize')).rejects.toThrow(
      "Unknown tokenizer command 'tokenize'. Known: train, encode, decode. Usage: troupe tokenizer train --input DATA.jsonl",
    );
    await expect(
      run('encode', '--tokenizer', join(dir, 'nowhere'), '--input', 'x', '--output', 'y'),
    ).rejects.toThrow('No such file or directory');
  });
});

describe('troupe tokenizer train', () => {
  it('trains a BPE on a dataset and saves a tokenizer that loads back and round-trips', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { runTokenizer } = await import('../../src/cli/tokenizer.js');
    const { loadTokenizer } = await import('../../src/data/tokenizer/index.js');
    const out = join(mkdtempSync(join(tmpdir(), 'troupe-tok-')), 'tok');
    const lines: string[] = [];
    await runTokenizer(
      ['train', '--input', 'data/sentiment/labelled.jsonl', '--output', out, '--vocab-size', '400'],
      (l) => lines.push(l),
    );
    expect(lines.at(-1)).toMatch(/trained 400 tokens on 2982 texts/);
    const tok = await loadTokenizer(out);
    expect(tok.vocabSize).toBe(400);
    expect(tok.decode(tok.encode('A great movie 🎬'))).toBe('A great movie 🎬');
    expect(tok.eosTokenId).toBe(tok.tokenToId('<|endoftext|>'));
  });
});
