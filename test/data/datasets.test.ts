import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { afterAll, describe, expect, it } from 'vitest';
import {
  loadExamples,
  readExamples,
  readJsonl,
  readParquet,
  readRows,
} from '../../src/data/datasets/index.js';
import { loadTrainEval } from '../../src/data/split.js';
import { rejected } from '../helpers/thrown.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('datasets');
afterAll(() => tmp.cleanup());

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

describe('JSONL', () => {
  it('streams rows with 1-based line numbers, skipping blank lines and a BOM', async () => {
    const file = tmp.file('a.jsonl', '\uFEFF{"text":"one"}\n\n{"text":"two"}\r\n{"text":"three"}');
    const rows = await collect(readJsonl(file));
    expect(rows.map((r) => [r.row.text, r.where.line])).toEqual([
      ['one', 1],
      ['two', 3],
      ['three', 4],
    ]);
  });

  it('yields the rows before a bad line, then names the file and line', async () => {
    const file = tmp.file('bad.jsonl', '{"text":"ok"}\n{"text": oops}\n');
    const seen: unknown[] = [];
    const e = await rejected(
      (async () => {
        for await (const r of readJsonl(file)) seen.push(r.row);
      })(),
    );
    expect(seen).toEqual([{ text: 'ok' }]);
    expect(e.code).toBe('BAD_DATA');
    expect(e.message).toMatch(
      new RegExp(
        `^${file}:2: not valid JSON \\(.+\\); a JSONL file holds one JSON object per line$`,
      ),
    );
    expect(e.details).toMatchObject({ file, line: 2 });
  });

  it('wants an object per line', async () => {
    const file = tmp.file('arr.jsonl', '{"text":"ok"}\n[1,2]\n');
    const e = await rejected(collect(readJsonl(file)));
    expect(e.message).toBe(`${file}:2: expected a JSON object per line, got a list`);
  });

  it('reports a missing file as a bad argument', async () => {
    const file = join(tmp.dir, 'nope.jsonl');
    const e = await rejected(collect(readJsonl(file)));
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toBe(`Cannot read ${file}: no such file`);
  });
});

describe('Parquet', () => {
  const file = join(tmp.dir, 'prefs.parquet');
  const n = 7;
  parquetWriteFile({
    filename: file,
    columnData: [
      { name: 'prompt', data: Array.from({ length: n }, (_, i) => `Review ${i}:`), type: 'STRING' },
      { name: 'chosen', data: Array.from({ length: n }, (_, i) => ` good ${i}`), type: 'STRING' },
      { name: 'rejected', data: Array.from({ length: n }, (_, i) => ` bad ${i}`), type: 'STRING' },
      { name: 'id', data: Array.from({ length: n }, (_, i) => BigInt(i)), type: 'INT64' },
    ],
    rowGroupSize: 3,
  });

  it('streams row group by row group with file-wide row indices', async () => {
    const rows = await collect(readParquet(file));
    expect(rows).toHaveLength(n);
    expect(rows[5]).toEqual({
      row: { prompt: 'Review 5:', chosen: ' good 5', rejected: ' bad 5', id: 5 },
      where: { file, row: 5 },
    });
    const examples = await loadExamples(file);
    expect(examples.every((e) => e.kind === 'preference')).toBe(true);
    expect(examples[6]).toMatchObject({ prompt: 'Review 6:', extra: { id: 6 }, where: { row: 6 } });
  });

  it('reads conversations stored as JSON columns', async () => {
    const conv = join(tmp.dir, 'chat.parquet');
    const messages = [
      [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
      ],
      [{ role: 'user', content: 'Bye' }],
    ];
    parquetWriteFile({
      filename: conv,
      columnData: [{ name: 'messages', data: messages, type: 'JSON' }],
    });
    const examples = await loadExamples(conv);
    expect(examples.map((e) => e.kind === 'messages' && e.messages)).toEqual(messages);
  });

  it('names the file and row of a bad row', async () => {
    const bad = join(tmp.dir, 'bad.parquet');
    parquetWriteFile({
      filename: bad,
      columnData: [{ name: 'text', data: ['a', 'b', null, 'd'], type: 'STRING' }],
      rowGroupSize: 2,
    });
    const e = await rejected(loadExamples(bad));
    expect(e.message).toBe(
      `${bad} row 2: column 'text' must be a string, got null: the text convention expects {"text": string}`,
    );
    expect(e.details).toMatchObject({ file: bad, row: 2, column: 'text' });
  });

  it('rejects a file that is not Parquet, and unknown columns', async () => {
    const fake = tmp.file('fake.parquet', 'not parquet at all');
    const e = await rejected(collect(readParquet(fake)));
    expect(e.code).toBe('BAD_DATA');
    expect(e.message).toMatch(new RegExp(`^${fake}: not a readable Parquet file`));
    const cols = await rejected(collect(readParquet(file, { columns: ['prompt', 'answer'] })));
    expect(cols.message).toBe(
      `${file}: no column 'answer' (the file has 'prompt', 'chosen', 'rejected', 'id')`,
    );
  });
});

describe('readExamples', () => {
  it('fixes the format from the first row and names the row that breaks it', async () => {
    const file = tmp.file(
      'sft.jsonl',
      jsonl([
        { prompt: 'Q1', completion: 'A1' },
        { prompt: 'Q2', completion: 'A2' },
        { prompt: 'Q3' },
      ]),
    );
    const seen: string[] = [];
    const e = await rejected(
      (async () => {
        for await (const ex of readExamples(file))
          if (ex.kind === 'completion') seen.push(ex.completion as string);
      })(),
    );
    expect(seen).toEqual(['A1', 'A2']);
    expect(e.message).toBe(
      `${file}:3: missing column 'completion': the completion convention expects ` +
        '{"prompt": string or messages, "completion": string or messages}',
    );
  });

  it('applies column renaming and passes extra columns through', async () => {
    const file = tmp.file('rl.jsonl', jsonl([{ question: 'What is 2+2?', answer: '4' }]));
    const [ex] = await loadExamples(file, { columns: { question: 'prompt' } });
    expect(ex).toEqual({
      kind: 'prompt',
      conversational: false,
      prompt: 'What is 2+2?',
      extra: { answer: '4' },
      where: { file, line: 1 },
    });
  });

  it('refuses unknown extensions, listing the known ones', () => {
    expect(() => readRows('data.csv')).toThrow(
      "Cannot read data.csv: unknown data file extension '.csv'. Known: .jsonl, .ndjson, .parquet.",
    );
  });
});

describe('loadTrainEval', () => {
  const rows = Array.from({ length: 20 }, (_, i) => ({ text: `doc ${i}` }));
  const train = tmp.file('train.jsonl', jsonl(rows));
  const evalFile = tmp.file('eval.jsonl', jsonl([{ text: 'held out' }]));

  it('reads an explicit eval file', async () => {
    const s = await loadTrainEval({ train, eval: evalFile });
    expect(s.train).toHaveLength(20);
    expect(s.eval.map((e) => e.kind === 'text' && e.text)).toEqual(['held out']);
  });

  it('splits the training file by fraction and seed', async () => {
    const a = await loadTrainEval({ train, evalFraction: 0.25, seed: 3 });
    const b = await loadTrainEval({ train, evalFraction: 0.25, seed: 3 });
    expect(a.eval).toHaveLength(5);
    expect(a).toEqual(b);
    await expect(loadTrainEval({ train, eval: evalFile, evalFraction: 0.1 })).rejects.toThrow(
      'not both',
    );
  });
});
