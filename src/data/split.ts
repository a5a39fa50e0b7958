import { TroupeError } from '../errors.js';
import { RandomStream } from '../kernels/random.js';
import type { Example } from './datasets/formats.js';
import { dataError } from './datasets/location.js';
import { loadExamples, type ReadOptions } from './datasets/read.js';

export interface SplitOptions {
  /** Share of the items that go to eval, in (0, 1). */
  readonly evalFraction: number;
  /** Seed of the split; the same seed and item count give the same split. */
  readonly seed: number;
}

/**
 * A deterministic train/eval split: round(n·evalFraction) items, drawn by a permutation from the
 * stream (seed, step 0, actor 'data', purpose 'split'), go to eval; both parts keep the items'
 * order. The split depends on the item count: appending rows reshuffles it.
 */
export function splitTrainEval<T>(
  items: readonly T[],
  opts: SplitOptions,
): { train: T[]; eval: T[] } {
  const { evalFraction: f, seed } = opts;
  if (!(f > 0 && f < 1)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `splitTrainEval: evalFraction must be in (0, 1), got ${f}`,
    );
  }
  const n = items.length;
  const nEval = Math.round(n * f);
  if (nEval < 1 || nEval > n - 1) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `splitTrainEval: evalFraction ${f} of ${n} items gives ${nEval} eval items; both parts need at least one. ${splitAdvice(n, nEval)}.`,
    );
  }
  const perm = RandomStream.of({ seed, step: 0, actor: 'data', purpose: 'split' }).permutation(n);
  const isEval = new Uint8Array(n);
  for (let i = 0; i < nEval; i++) isEval[perm[i]] = 1;
  const train: T[] = [];
  const evalItems: T[] = [];
  for (let i = 0; i < n; i++) (isEval[i] ? evalItems : train).push(items[i]);
  return { train, eval: evalItems };
}

export interface TrainEvalFiles extends ReadOptions {
  /** The training file (.jsonl, .ndjson or .parquet). */
  readonly train: string;
  /** An explicit eval file; when given, the training file is not split. */
  readonly eval?: string;
  /** Without an eval file: the share of the training file held out for eval (0: none). */
  readonly evalFraction?: number;
  /** Seed of the split. Default 0. */
  readonly seed?: number;
}

/**
 * The files a run config's `data` section names (`train`, then `eval` or else `evalFraction`,
 * `columns`, `format`), split by its `seed`: what `loadTrainEval` reads for a trainer or a sweep.
 */
export function trainEvalFiles(
  data: ReadOptions & {
    readonly train: string;
    readonly eval?: string;
    readonly evalFraction: number;
  },
  seed: number,
  format: ReadOptions['format'] = data.format,
): TrainEvalFiles {
  return {
    train: data.train,
    ...(data.eval ? { eval: data.eval } : { evalFraction: data.evalFraction }),
    seed,
    columns: data.columns,
    format,
  };
}

/**
 * Train and eval examples: from an explicit eval file, or split off the training file by
 * `evalFraction` and `seed`, or (neither given, or a fraction of 0) no eval examples. A file
 * with no rows is refused by name (BAD_DATA), as is a fraction that leaves either part empty.
 */
export async function loadTrainEval(
  files: TrainEvalFiles,
): Promise<{ train: Example[]; eval: Example[] }> {
  const { train: trainFile, eval: evalFile, evalFraction, seed = 0, ...read } = files;
  if (evalFile !== undefined && evalFraction !== undefined) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      'loadTrainEval: give an eval file or an evalFraction, not both',
    );
  }
  const train = nonEmpty(await loadExamples(trainFile, read), trainFile, 'training');
  if (evalFile !== undefined) {
    const format = read.format ?? train[0].kind;
    return {
      train,
      eval: nonEmpty(await loadExamples(evalFile, { ...read, format }), evalFile, 'eval'),
    };
  }
  if (evalFraction === undefined || evalFraction === 0) return { train, eval: [] };
  const n = train.length;
  const nEval = Math.round(n * evalFraction);
  if (evalFraction > 0 && evalFraction < 1 && (nEval < 1 || nEval > n - 1)) {
    throw dataError(
      { file: trainFile },
      `evalFraction ${evalFraction} of its ${n} row${n === 1 ? '' : 's'} holds out ${nEval} for eval, ` +
        `leaving ${nEval < 1 ? 'no eval rows' : 'no training rows'}. ${splitAdvice(n, nEval)}, ` +
        'give an eval file (data.eval), or set evalFraction to 0 (no eval).',
      { rows: n, evalFraction },
    );
  }
  return splitTrainEval(train, { evalFraction, seed });
}

/**
 * Where a trainer's train or eval examples came from, for messages: `data.train`'s file, the eval
 * file, or the part of the training file split off by `evalFraction`.
 */
export function splitOrigin(
  data: { readonly train: string; readonly eval?: string; readonly evalFraction: number },
  split: 'train' | 'eval',
): string {
  if (split === 'train') return data.train;
  return data.eval ?? `${data.train} (its eval split, data.evalFraction ${data.evalFraction})`;
}

/** How to fix a fraction that leaves a part of n items empty (round(n·f) eval items, as split). */
function splitAdvice(n: number, nEval: number): string {
  if (n < 2) return 'A split needs at least 2 rows: add rows';
  // round(n·f) ≥ 1 needs f ≥ 0.5/n; round(n·f) ≤ n − 1 needs f < (n − 0.5)/n.
  if (nEval < 1) return `Raise evalFraction to at least ${Math.ceil((0.5 / n) * 1000) / 1000}`;
  return `Lower evalFraction below ${Math.floor(((n - 0.5) / n) * 1000) / 1000}`;
}

/** The examples of a file, refused when it has none (an empty file, or only blank lines). */
function nonEmpty(examples: Example[], file: string, role: 'training' | 'eval'): Example[] {
  if (examples.length > 0) return examples;
  throw dataError(
    { file },
    `the ${role} file has no rows (it is empty, or holds only blank lines); ` +
      `${role === 'training' ? 'data.train' : 'data.eval'} needs at least one`,
    { rows: 0 },
  );
}
