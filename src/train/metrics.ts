import { TroupeError } from '../errors.js';

/**
 * The `metrics.jsonl` format: one JSON object per line, `{ step, split, time, ...values }`, where
 * `time` is Unix seconds and each value is a number. JSON has no NaN or ±Infinity, and a loss that
 * blows up is exactly what a metrics file must record, so those are written as the strings
 * `"NaN"`, `"Infinity"` and `"-Infinity"` (and `null` reads back as NaN).
 */
export type Split = 'train' | 'eval';
export const SPLITS: readonly Split[] = ['train', 'eval'];

/** Keys of a metrics line that are not metric values. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['step', 'split', 'time']);

export interface MetricRow {
  readonly step: number;
  readonly split: Split;
  /** Unix seconds. */
  readonly time: number;
  readonly values: Readonly<Record<string, number>>;
}

const encode = (x: number): number | string =>
  Number.isFinite(x) ? x : Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity';

function decode(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v === null || v === 'NaN') return Number.NaN;
  if (v === 'Infinity') return Number.POSITIVE_INFINITY;
  if (v === '-Infinity') return Number.NEGATIVE_INFINITY;
  return undefined;
}

/** One metrics line, newline included; refuses keys that collide with `step`, `split`, `time`. */
export function formatMetricLine(
  step: number,
  split: Split,
  time: number,
  record: Readonly<Record<string, number>>,
): string {
  if (!Number.isInteger(step) || step < 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `appendMetrics: step must be a non-negative integer, got ${step}.`,
      { details: { step } },
    );
  }
  if (!SPLITS.includes(split)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `appendMetrics: split must be one of ${SPLITS.join(', ')}, got '${split}'.`,
      { details: { split } },
    );
  }
  const line: Record<string, number | string> = { step, split, time };
  for (const [key, value] of Object.entries(record)) {
    if (RESERVED_KEYS.has(key)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `appendMetrics: metric '${key}' collides with a field of every metrics line (step, split, time); rename it.`,
        { details: { key } },
      );
    }
    if (typeof value !== 'number') {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `appendMetrics: metric '${key}' must be a number, got ${typeof value}.`,
        { details: { key } },
      );
    }
    line[key] = encode(value);
  }
  return `${JSON.stringify(line)}\n`;
}

interface ParsedLine {
  readonly text: string;
  readonly row: MetricRow;
}

function badLine(file: string, lineNo: number, what: string, cause?: unknown): TroupeError {
  return new TroupeError('BAD_DATA', `${file}:${lineNo}: ${what}`, {
    details: { file, line: lineNo },
    cause,
  });
}

function parseLine(text: string, file: string, lineNo: number): MetricRow {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw badLine(file, lineNo, 'not a JSON object', e);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw badLine(file, lineNo, 'not a JSON object');
  }
  const { step, split, time, ...rest } = obj as Record<string, unknown>;
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 0) {
    throw badLine(file, lineNo, `field 'step' must be a non-negative integer`);
  }
  if (!SPLITS.includes(split as Split)) {
    throw badLine(file, lineNo, `field 'split' must be one of ${SPLITS.join(', ')}`);
  }
  const values: Record<string, number> = {};
  for (const [key, v] of Object.entries(rest)) {
    const x = decode(v);
    if (x === undefined) throw badLine(file, lineNo, `metric '${key}' is not a number`);
    values[key] = x;
  }
  return {
    step,
    split: split as Split,
    time: typeof time === 'number' ? time : Number.NaN,
    values,
  };
}

/**
 * Every line of a metrics file, parsed. A last line without its newline that does not parse is
 * the tail of an append cut short by a crash, and is dropped; any other bad line is an error
 * naming the file and line.
 */
function parseLines(text: string, file: string): ParsedLine[] {
  const lines = text.split('\n');
  const complete = text.endsWith('\n');
  const out: ParsedLine[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const isTail = i === lines.length - 1 && !complete;
    try {
      out.push({ text: line, row: parseLine(line, file, i + 1) });
    } catch (e) {
      if (!isTail) throw e;
    }
  });
  return out;
}

/** The rows of a `metrics.jsonl` text (see `parseLines` for a cut-short last line). */
export function parseMetrics(text: string, file = 'metrics.jsonl'): MetricRow[] {
  return parseLines(text, file).map((l) => l.row);
}

/** The text of a metrics file without its lines of steps after `step` (lines kept verbatim). */
export function metricsUpTo(text: string, step: number, file = 'metrics.jsonl'): string {
  return parseLines(text, file)
    .filter((l) => l.row.step <= step)
    .map((l) => `${l.text}\n`)
    .join('');
}
