import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoaderPosition } from '../data/index.js';
import { TroupeError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';

/**
 * `trainer_state.json`, one per checkpoint: where the step loop was, so that a resumed run
 * continues as the uninterrupted run would have (the model and optimizer tensors are saved
 * beside it by their own code).
 */
export const TRAINER_STATE_FILE = 'trainer_state.json';
export const TRAINER_STATE_VERSION = 1;

/** A JSON value: what `extra` may hold (no NaN, Infinity, undefined, functions or class instances). */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

export interface TrainerState {
  /** Optimizer steps taken. */
  readonly step: number;
  /** Epochs started (0-based epoch of the next batch). */
  readonly epoch: number;
  /** The data loader's position of the next batch (`DataLoader.position`). */
  readonly loader: LoaderPosition;
  /** Anything else the trainer wants back on resume (e.g. the best eval so far). */
  readonly extra?: JsonValue;
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;

/** The path of the first non-JSON value inside `x`, and what it is; undefined when all is JSON. */
function nonJson(x: unknown, path: string): { path: string; what: string } | undefined {
  if (x === null || typeof x === 'string' || typeof x === 'boolean') return undefined;
  if (typeof x === 'number') return Number.isFinite(x) ? undefined : { path, what: String(x) };
  if (Array.isArray(x)) {
    for (let i = 0; i < x.length; i++) {
      const bad = nonJson(x[i], `${path}[${i}]`);
      if (bad) return bad;
    }
    return undefined;
  }
  const proto = typeof x === 'object' ? Object.getPrototypeOf(x) : undefined;
  if (proto === Object.prototype || proto === null) {
    for (const [k, v] of Object.entries(x as object)) {
      const bad = nonJson(v, `${path}.${k}`);
      if (bad) return bad;
    }
    return undefined;
  }
  return {
    path,
    what: typeof x === 'object' ? `a ${x.constructor?.name ?? 'non-plain'} object` : typeof x,
  };
}

/** The first problem with `x` as a trainer state: the field and what is wrong; undefined if none. */
function problem(x: unknown): { field: string; what: string } | undefined {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) {
    return { field: '(root)', what: 'must be a JSON object' };
  }
  const s = x as Record<string, unknown>;
  if (!isCount(s['step'])) return { field: 'step', what: 'must be a non-negative integer' };
  if (!isCount(s['epoch'])) return { field: 'epoch', what: 'must be a non-negative integer' };
  const loader = s['loader'];
  if (typeof loader !== 'object' || loader === null) {
    return { field: 'loader', what: 'must be an object { epoch, index }' };
  }
  const l = loader as Record<string, unknown>;
  if (!isCount(l['epoch']))
    return { field: 'loader.epoch', what: 'must be a non-negative integer' };
  if (!isCount(l['index']))
    return { field: 'loader.index', what: 'must be a non-negative integer' };
  const bad = s['extra'] === undefined ? undefined : nonJson(s['extra'], 'extra');
  if (bad) return { field: bad.path, what: `must be JSON, got ${bad.what}` };
  const unknown = Object.keys(s).filter(
    (k) => !['version', 'step', 'epoch', 'loader', 'extra'].includes(k),
  );
  if (unknown.length > 0) {
    return {
      field: unknown[0]!,
      what: `is not a trainer state field (known: step, epoch, loader, extra)`,
    };
  }
  return undefined;
}

/** Write `dir/trainer_state.json` (atomically); the state is checked first, naming the bad field. */
export async function writeTrainerState(dir: string, state: TrainerState): Promise<void> {
  const bad = problem(state);
  if (bad) {
    throw new TroupeError('BAD_ARGUMENT', `writeTrainerState: field '${bad.field}' ${bad.what}.`, {
      details: { field: bad.field },
    });
  }
  const { step, epoch, loader, extra } = state;
  const json = {
    version: TRAINER_STATE_VERSION,
    step,
    epoch,
    loader: { epoch: loader.epoch, index: loader.index },
    ...(extra === undefined ? {} : { extra }),
  };
  await writeFileAtomic(join(dir, TRAINER_STATE_FILE), `${JSON.stringify(json, null, 2)}\n`);
}

/** Read and check `dir/trainer_state.json`; errors name the file and the field. */
export async function readTrainerState(dir: string): Promise<TrainerState> {
  const file = join(dir, TRAINER_STATE_FILE);
  const fail = (what: string, field?: string, cause?: unknown) =>
    new TroupeError('BAD_CHECKPOINT', `${file}: ${what}`, { details: { file, field }, cause });
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw fail('cannot be read (is this a committed checkpoint directory?)', undefined, e);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw fail('is not JSON', undefined, e);
  }
  const version = (json as Record<string, unknown> | null)?.['version'];
  if (version !== TRAINER_STATE_VERSION) {
    throw fail(
      `field 'version' is ${JSON.stringify(version)}; this Troupe reads version ${TRAINER_STATE_VERSION}`,
      'version',
    );
  }
  const bad = problem(json);
  if (bad) throw fail(`field '${bad.field}' ${bad.what}`, bad.field);
  const s = json as TrainerState;
  return {
    step: s.step,
    epoch: s.epoch,
    loader: { epoch: s.loader.epoch, index: s.loader.index },
    ...(s.extra === undefined ? {} : { extra: s.extra }),
  };
}
