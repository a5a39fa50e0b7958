import { TroupeError } from '../errors.js';
import type { RawScore, RewardBatch, RewardSource, ScoreOptions } from './types.js';

function describe(v: unknown): string {
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : `${v}`;
  if (v === null || v === undefined) return `${v}`;
  if (typeof v === 'string') return `a string (${JSON.stringify(v.slice(0, 40))})`;
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object';
  return `a ${typeof v} (${String(v)})`;
}

/**
 * Check a source's raw output against its batch: one finite number per row. Fails with
 * BAD_REWARD naming the source and the first bad row (`reward 'length': row 3 is NaN`).
 * Returns the rewards as a (B,) Float32Array.
 */
export function checkRewards(
  source: { readonly name: string },
  batch: RewardBatch,
  values: unknown,
): Float32Array {
  const rows = batch.completions.length;
  const prefix = `reward '${source.name}'`;
  const isArrayLike =
    Array.isArray(values) ||
    ArrayBuffer.isView(values) ||
    (typeof values === 'object' &&
      values !== null &&
      typeof (values as { length?: unknown }).length === 'number');
  if (!isArrayLike) {
    throw new TroupeError(
      'BAD_REWARD',
      `${prefix}: expected an array of ${rows} numbers, got ${describe(values)}`,
      { details: { source: source.name, rows } },
    );
  }
  const list = values as ArrayLike<unknown>;
  if (list.length !== rows) {
    throw new TroupeError(
      'BAD_REWARD',
      `${prefix}: returned ${list.length} rewards for a batch of ${rows} rows`,
      { details: { source: source.name, rows, got: list.length } },
    );
  }
  const out = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    const v = list[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      const what = typeof v === 'number' ? describe(v) : `${describe(v)}, not a number`;
      throw new TroupeError('BAD_REWARD', `${prefix}: row ${i} is ${what}`, {
        details: { source: source.name, row: i, value: typeof v === 'number' ? v : typeof v },
      });
    }
    out[i] = v;
  }
  return out;
}

/**
 * Run a source's raw scoring function with its failures named: an error it throws comes back
 * as `reward '<name>': <message>` with the original as cause (a TroupeError keeps its code,
 * so TASK_TIMEOUT stays TASK_TIMEOUT; anything else becomes BAD_REWARD), and its output goes
 * through `checkRewards`.
 */
export async function scoreChecked(
  name: string,
  raw: RawScore,
  batch: RewardBatch,
  opts: ScoreOptions = {},
): Promise<Float32Array> {
  let values: unknown;
  try {
    values = await raw(batch, opts);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const code = e instanceof TroupeError ? e.code : 'BAD_REWARD';
    throw new TroupeError(code, `reward '${name}': ${message}`, {
      cause: e,
      details: { source: name },
    });
  }
  return checkRewards({ name }, batch, values);
}

/** A RewardSource from a name and a raw scoring function; every score is checked. */
export function defineSource(name: string, raw: RawScore): RewardSource {
  return Object.freeze({
    name,
    score: (batch: RewardBatch, opts?: ScoreOptions) => scoreChecked(name, raw, batch, opts),
  });
}
