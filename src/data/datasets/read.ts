import { extname } from 'node:path';
import { TroupeError } from '../../errors.js';
import { type DatasetFormat, type Example, parseExample } from './formats.js';
import { type RawRow, readJsonl } from './jsonl.js';
import { readParquet } from './parquet.js';

const READERS: ReadonlyMap<string, (file: string) => AsyncGenerator<RawRow>> = new Map([
  ['.jsonl', readJsonl],
  ['.ndjson', readJsonl],
  ['.parquet', (file: string) => readParquet(file)],
]);

/** Stream the raw rows of a data file, choosing the reader by extension (.jsonl, .ndjson, .parquet). */
export function readRows(file: string): AsyncGenerator<RawRow> {
  const ext = extname(file).toLowerCase();
  const reader = READERS.get(ext);
  if (!reader) {
    throw new TroupeError(
      'UNSUPPORTED',
      `Cannot read ${file}: unknown data file extension '${ext}'. Known: ${[...READERS.keys()].join(', ')}.`,
      { details: { file, extension: ext } },
    );
  }
  return reader(file);
}

export interface ReadOptions {
  /** The convention every row must follow; default: detected from the first row. */
  readonly format?: DatasetFormat;
  /** Column renaming applied to every row first: `{ question: 'prompt' }`. */
  readonly columns?: Readonly<Record<string, string>>;
}

/**
 * Stream the examples of a data file. The format is the given one or the first row's, and every
 * later row must follow it, so that a row missing a column is reported as such (with its file,
 * line or row, the column, and what the convention expects).
 */
export async function* readExamples(file: string, opts: ReadOptions = {}): AsyncGenerator<Example> {
  let format = opts.format;
  for await (const { row, where } of readRows(file)) {
    const example = parseExample(row, { format, columns: opts.columns, where });
    format ??= example.kind;
    yield example;
  }
}

/** All examples of a data file, in file order (see `readExamples`). */
export async function loadExamples(file: string, opts: ReadOptions = {}): Promise<Example[]> {
  const out: Example[] = [];
  for await (const ex of readExamples(file, opts)) out.push(ex);
  return out;
}
