import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TroupeError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';

/** One finished job: a row of the sweep's table (results.csv, results.json). */
export interface SweepRow {
  readonly id: string;
  readonly model: string;
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  /** N: every parameter. */
  readonly params: number;
  /** N without the embeddings (Kaplan et al.). */
  readonly nonEmbeddingParams: number;
  /** D: tokens trained on. */
  readonly tokens: number;
  /** C = 6ND with the sweep's N (`parameters`). */
  readonly flops: number;
  readonly budgetKind: 'flops' | 'tokens';
  /** The budget the job belongs to (C on an IsoFLOP design, D on a grid). */
  readonly budget: number;
  readonly steps: number;
  /** Passes over the training split D amounts to (> 1: the data repeat). */
  readonly epochs: number;
  readonly lr: number;
  /** Final eval loss (nats per token) on the eval split. */
  readonly loss: number;
  readonly perplexity: number;
  /** Wall seconds of the job's last invocation. */
  readonly seconds: number;
}

export const RESULTS_CSV = 'results.csv';
export const RESULTS_JSON = 'results.json';

const COLUMNS: readonly (readonly [string, keyof SweepRow])[] = [
  ['id', 'id'],
  ['model', 'model'],
  ['hidden', 'hidden'],
  ['layers', 'layers'],
  ['heads', 'heads'],
  ['params', 'params'],
  ['non_embedding_params', 'nonEmbeddingParams'],
  ['tokens', 'tokens'],
  ['flops', 'flops'],
  ['budget_kind', 'budgetKind'],
  ['budget', 'budget'],
  ['steps', 'steps'],
  ['epochs', 'epochs'],
  ['lr', 'lr'],
  ['eval_loss', 'loss'],
  ['eval_perplexity', 'perplexity'],
  ['seconds', 'seconds'],
];

/** The table as CSV: a header, then one row per job (numbers in full precision). */
export function toCsv(rows: readonly SweepRow[]): string {
  const lines = [COLUMNS.map(([h]) => h).join(',')];
  for (const r of rows) lines.push(COLUMNS.map(([, k]) => String(r[k])).join(','));
  return `${lines.join('\n')}\n`;
}

/** The table as JSON: what N means, then the rows. */
export function toJson(rows: readonly SweepRow[], parameters: 'total' | 'nonEmbedding'): string {
  return `${JSON.stringify({ parameters, flops: 'C = 6 N D', rows }, null, 2)}\n`;
}

export async function writeTable(
  dir: string,
  rows: readonly SweepRow[],
  parameters: 'total' | 'nonEmbedding',
): Promise<void> {
  await writeFileAtomic(join(dir, RESULTS_CSV), toCsv(rows));
  await writeFileAtomic(join(dir, RESULTS_JSON), toJson(rows, parameters));
}

/** A sweep's results.json: its rows and which N its C used. */
export async function readTable(
  dir: string,
): Promise<{ rows: SweepRow[]; parameters: 'total' | 'nonEmbedding' }> {
  const file = join(dir, RESULTS_JSON);
  let parsed: { rows?: SweepRow[]; parameters?: 'total' | 'nonEmbedding' };
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Cannot read the sweep's table ${file}: ${(e as Error).message} (run the sweep first)`,
      { cause: e, details: { file } },
    );
  }
  if (!Array.isArray(parsed.rows)) {
    throw new TroupeError('BAD_DATA', `${file}: no 'rows' array: not a sweep's results.json`, {
      details: { file },
    });
  }
  return { rows: parsed.rows, parameters: parsed.parameters ?? 'total' };
}
