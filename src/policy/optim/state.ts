import { TroupeError } from '../../errors.js';
import * as tf from '../../kernels/tf.js';

/**
 * Optimiser state as plain data, for checkpoints: tensors by name plus JSON-safe metadata.
 * Writing it to a file (safetensors) is the checkpoint module's job; this module only produces
 * and checks the maps.
 *
 *   exp_avg/<param name>      m, the first moment, of the parameter's shape
 *   exp_avg_sq/<param name>   v, the second moment, of the parameter's shape
 *
 * (PyTorch's `state[p]['exp_avg']` / `['exp_avg_sq']`, keyed by Troupe's parameter name instead
 * of a parameter index, so a checkpoint survives a change in parameter order.)
 */
export interface StateTensor {
  readonly shape: number[];
  /** Row-major float32 values; a copy the caller owns. */
  readonly data: Float32Array;
}

export interface AdamWStateMeta {
  readonly optimizer: 'adamw';
  /** Number of `step()` calls. */
  readonly step: number;
  /** Per-parameter update count t (for bias correction); lags `step` where a grad was absent. */
  readonly paramSteps: Readonly<Record<string, number>>;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** The optimizer's default learning rate (informational: `step` is given its lr). */
  readonly lr: number;
}

export interface AdamWStateDict {
  readonly tensors: Map<string, StateTensor>;
  readonly meta: AdamWStateMeta;
}

export const MOMENTS = ['exp_avg', 'exp_avg_sq'] as const;
export type Moment = (typeof MOMENTS)[number];

/** `exp_avg/<param>` or `exp_avg_sq/<param>`. */
export function stateTensorName(moment: Moment, param: string): string {
  return `${moment}/${param}`;
}

/**
 * Read tensors into a name → {shape, data} map. Takes (shared-data) clones synchronously first,
 * so a `step()` that runs while the reads are awaited cannot change what is saved.
 */
export async function readStateTensors(
  entries: Iterable<readonly [string, tf.Tensor]>,
): Promise<Map<string, StateTensor>> {
  const snapshot = [...entries].map(([name, t]) => [name, tf.clone(t)] as const);
  try {
    const out = new Map<string, StateTensor>();
    for (const [name, t] of snapshot) {
      // Copy: the cpu backend hands out its own backing array.
      out.set(name, { shape: [...t.shape], data: new Float32Array(await t.data<'float32'>()) });
    }
    return out;
  } finally {
    tf.dispose(snapshot.map(([, t]) => t));
  }
}

function bad(message: string, details: Record<string, unknown>): TroupeError {
  return new TroupeError('BAD_ARGUMENT', `loadStateDict: ${message}`, { details });
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Check a state dict against what this optimizer expects: a pair of moments of the right shape
 * for every trainable parameter and nothing else, a step count for each, and the same
 * hyperparameters (a moment estimate is only meaningful under the betas that produced it).
 * Throws naming the first offending tensor or field; returns nothing.
 */
export function checkAdamWState(
  dict: AdamWStateDict,
  shapes: ReadonlyMap<string, readonly number[]>,
  current: Pick<AdamWStateMeta, 'betas' | 'eps' | 'weightDecay'>,
): void {
  const { tensors, meta } = dict;
  if (meta?.optimizer !== 'adamw') {
    throw bad(`meta.optimizer is '${meta?.optimizer}', expected 'adamw'`, { field: 'optimizer' });
  }
  if (!Number.isInteger(meta.step) || meta.step < 0) {
    throw bad(`meta.step must be a non-negative integer, got ${meta.step}`, { field: 'step' });
  }
  const hyper = [
    ['betas', JSON.stringify(meta.betas), JSON.stringify(current.betas)],
    ['eps', String(meta.eps), String(current.eps)],
    ['weightDecay', String(meta.weightDecay), String(current.weightDecay)],
  ] as const;
  for (const [field, saved, mine] of hyper) {
    if (saved !== mine) {
      throw bad(
        `the state was saved with ${field} ${saved} but this optimizer has ${mine}. ` +
          `Construct the optimizer with ${field}: ${saved} to resume.`,
        { field, saved, current: mine },
      );
    }
  }
  for (const [param, shape] of shapes) {
    const t = meta.paramSteps?.[param];
    if (!Number.isInteger(t) || t < 0 || t > meta.step) {
      throw bad(`meta.paramSteps['${param}'] must be an integer in [0, ${meta.step}], got ${t}`, {
        param,
      });
    }
    for (const moment of MOMENTS) {
      const name = stateTensorName(moment, param);
      const got = tensors.get(name);
      if (got === undefined) {
        throw new TroupeError(
          'UNKNOWN_NAME',
          `loadStateDict: no '${name}' for trainable parameter '${param}'`,
          { details: { param, tensor: name } },
        );
      }
      const size = shape.reduce((a, b) => a * b, 1);
      if (!sameShape(got.shape, shape) || got.data.length !== size) {
        throw new TroupeError(
          'SHAPE_MISMATCH',
          `loadStateDict: '${name}' has shape [${got.shape}] (${got.data.length} values) but ` +
            `parameter '${param}' has shape [${shape}]`,
          { details: { param, tensor: name, shape: got.shape, expected: [...shape] } },
        );
      }
    }
  }
  for (const name of tensors.keys()) {
    const param = name.slice(name.indexOf('/') + 1);
    if (!shapes.has(param) || !MOMENTS.some((m) => name === stateTensorName(m, param))) {
      throw new TroupeError(
        'UNKNOWN_NAME',
        `loadStateDict: '${name}' is not a moment of a trainable parameter of this optimizer`,
        { details: { tensor: name } },
      );
    }
  }
  for (const param of Object.keys(meta.paramSteps)) {
    if (!shapes.has(param)) {
      throw new TroupeError(
        'UNKNOWN_NAME',
        `loadStateDict: meta.paramSteps names '${param}', not a trainable parameter of this optimizer`,
        { details: { param } },
      );
    }
  }
}
