import { TroupeError } from '../errors.js';
import { RandomStream } from '../kernels/random.js';
import type { Example } from './datasets/formats.js';
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
      `splitTrainEval: evalFraction ${f} of ${n} items gives ${nEval} eval items; both parts need at least one. Use more items or another fraction.`,
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
  /** Without an eval file: the share of the training file held out for eval. */
  readonly evalFraction?: number;
  /** Seed of the split. Default 0. */
  readonly seed?: number;
}

/**
 * Train and eval examples: from an explicit eval file, or split off the training file by
 * `evalFraction` and `seed`, or (neither given) no eval examples.
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
  const train = await loadExamples(trainFile, read);
  if (evalFile !== undefined) {
    const format = read.format ?? train[0]?.kind;
    return { train, eval: await loadExamples(evalFile, { ...read, format }) };
  }
  if (evalFraction === undefined) return { train, eval: [] };
  return splitTrainEval(train, { evalFraction, seed });
}
