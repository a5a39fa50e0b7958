import { TroupeError } from '../errors.js';

/**
 * One PPO/GRPO minibatch of experience, as plain typed arrays (not tensors: experiences cross
 * threads as msgpack frames, see codec.ts). Row-major throughout.
 *
 *   B = `shape.batch`   sequences in the batch
 *   L = `shape.length`  tokens per sequence, L = P + A
 *   P = `promptLength`  prompt tokens, left-padded (pads first, then the prompt)
 *   A = `shape.actions` response tokens, right-padded (the response, then pads)
 *
 * Action j of row b is the token at sequences[b, P + j]; it was sampled from π(·|s) with
 * s = sequences[b, :P + j]. Per-action fields are [B, A] and only meaningful where actionMask is 1.
 */
export interface Experience {
  /** (B, L) token ids: |pad…|prompt|response|…pad|. */
  readonly sequences: Int32Array;
  /** (B, L) 1 on real tokens (prompt and response), 0 on pads. */
  readonly attentionMask: Uint8Array;
  /** (B, A) 1 on response tokens the loss trains on, 0 on pads (and on masked-out tokens). */
  readonly actionMask: Uint8Array;
  /** (B, A) log π_old(a|s): the behaviour policy's log-probs at generation time. */
  readonly actionLogProbs: Float32Array;
  /** (B, A) log π_ref(a|s): the frozen reference policy's log-probs (KL penalty or loss). */
  readonly refLogProbs?: Float32Array;
  /** (B, A) V(s): the critic's value estimates (PPO; absent in critic-free GRPO/RLOO). */
  readonly values?: Float32Array;
  /** (B, A) R_t: the return targets the critic regresses to. */
  readonly returns?: Float32Array;
  /** (B, A) Â_t: advantages (GAE, group-normalised, leave-one-out, …). */
  readonly advantages?: Float32Array;
  /** (B, A) KL(π_old‖π_ref) estimate per token (k1/k2/k3). */
  readonly kl?: Float32Array;
  /** (B) r: the sequence-level scalar reward (before KL shaping). */
  readonly rewards: Float32Array;
  /** P: the prompt part's width in `sequences` (left-padded to it). */
  readonly promptLength: number;
  readonly shape: ExperienceShape;
  /** (B) per-sample scalars for metrics: response length, per-source reward, … */
  readonly info: Readonly<Record<string, Float32Array>>;
}

export interface ExperienceShape {
  /** B */
  readonly batch: number;
  /** L = P + A */
  readonly length: number;
  /** A */
  readonly actions: number;
}

type ArrayKey = Exclude<keyof Experience, 'promptLength' | 'shape' | 'info'>;
type ArrayType = Int32ArrayConstructor | Uint8ArrayConstructor | Float32ArrayConstructor;

/** How each array field is laid out and what its values may be. */
interface FieldSpec {
  readonly key: ArrayKey;
  readonly type: ArrayType;
  readonly dims: 'BL' | 'BA' | 'B';
  readonly values: 'ids' | 'mask' | 'finite';
  readonly optional: boolean;
}

const FIELDS: readonly FieldSpec[] = [
  { key: 'sequences', type: Int32Array, dims: 'BL', values: 'ids', optional: false },
  { key: 'attentionMask', type: Uint8Array, dims: 'BL', values: 'mask', optional: false },
  { key: 'actionMask', type: Uint8Array, dims: 'BA', values: 'mask', optional: false },
  { key: 'actionLogProbs', type: Float32Array, dims: 'BA', values: 'finite', optional: false },
  { key: 'refLogProbs', type: Float32Array, dims: 'BA', values: 'finite', optional: true },
  { key: 'values', type: Float32Array, dims: 'BA', values: 'finite', optional: true },
  { key: 'returns', type: Float32Array, dims: 'BA', values: 'finite', optional: true },
  { key: 'advantages', type: Float32Array, dims: 'BA', values: 'finite', optional: true },
  { key: 'kl', type: Float32Array, dims: 'BA', values: 'finite', optional: true },
  { key: 'rewards', type: Float32Array, dims: 'B', values: 'finite', optional: false },
];

/** The names of Experience's typed-array fields, in a fixed order (info excluded). */
export const EXPERIENCE_ARRAY_FIELDS: readonly ArrayKey[] = FIELDS.map((f) => f.key);

function fail(code: 'BAD_ARGUMENT' | 'SHAPE_MISMATCH', message: string, field: string): never {
  throw new TroupeError(code, `Experience.${field}: ${message}`, { details: { field } });
}

/** A value as a message shows it: a field may hold anything when it came from a frame. */
function shown(x: unknown): string {
  if (x === null || (typeof x !== 'object' && typeof x !== 'function')) return String(x);
  if (Array.isArray(x)) return `an array of ${x.length}`;
  const name = typeof x.constructor === 'function' ? x.constructor.name : '';
  return name === '' || name === 'Object' ? 'an object' : name;
}

function isCount(n: unknown, min: number): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= min;
}

function dimsOf(dims: FieldSpec['dims'], s: ExperienceShape): number[] {
  if (dims === 'BL') return [s.batch, s.length];
  if (dims === 'BA') return [s.batch, s.actions];
  return [s.batch];
}

function checkArray(name: string, value: unknown, type: ArrayType, dims: number[]): void {
  const n = dims.reduce((a, b) => a * b, 1);
  const want = `${type.name} of length ${n} [${dims.join(', ')}]`;
  if (!(value instanceof type)) fail('BAD_ARGUMENT', `expected ${want}, got ${shown(value)}`, name);
  if (value.length !== n)
    fail('SHAPE_MISMATCH', `expected ${want}, got length ${value.length}`, name);
}

/**
 * Checks the layout only: every field has its typed-array type and the length its declared shape
 * gives, `shape` and `promptLength` are consistent (L = P + A). Values are not read. Throws a
 * TroupeError naming the field, with expected vs got.
 */
export function checkExperienceLayout(e: Experience): void {
  const s = e.shape;
  if (s === null || typeof s !== 'object')
    fail('BAD_ARGUMENT', `expected an object, got ${shown(s)}`, 'shape');
  if (!isCount(s.batch, 1))
    fail('BAD_ARGUMENT', `expected an integer ≥ 1, got ${shown(s.batch)}`, 'shape.batch');
  if (!isCount(s.actions, 1)) {
    fail('BAD_ARGUMENT', `expected an integer ≥ 1, got ${shown(s.actions)}`, 'shape.actions');
  }
  if (!isCount(e.promptLength, 0)) {
    fail('BAD_ARGUMENT', `expected an integer ≥ 0, got ${shown(e.promptLength)}`, 'promptLength');
  }
  if (s.length !== e.promptLength + s.actions) {
    fail(
      'SHAPE_MISMATCH',
      `expected promptLength + actions = ${e.promptLength} + ${s.actions} = ` +
        `${e.promptLength + s.actions}, got ${shown(s.length)}`,
      'shape.length',
    );
  }
  for (const f of FIELDS) {
    const value = e[f.key];
    if (value === undefined && f.optional) continue;
    checkArray(f.key, value, f.type, dimsOf(f.dims, s));
  }
  if (e.info === null || typeof e.info !== 'object') {
    fail('BAD_ARGUMENT', `expected a record of Float32Array, got ${shown(e.info)}`, 'info');
  }
  for (const [k, v] of Object.entries(e.info)) checkArray(`info.${k}`, v, Float32Array, [s.batch]);
}

/** `[b, j]` (or `[b]`) of flat index i in a row-major array with rows of `width`. */
function at(i: number, width: number | undefined): string {
  return width === undefined ? `[${i}]` : `[${Math.floor(i / width)}, ${i % width}]`;
}

/** What each kind of field may hold. */
const VALUE_RULES: Readonly<
  Record<FieldSpec['values'], { ok: (x: number) => boolean; rule: string }>
> = {
  ids: { ok: (x) => x >= 0, rule: 'token ids are ≥ 0' },
  mask: { ok: (x) => x === 0 || x === 1, rule: 'masks hold 0 or 1' },
  finite: { ok: Number.isFinite, rule: 'every value must be finite' },
};

function checkValues(
  name: string,
  data: Int32Array | Uint8Array | Float32Array,
  values: FieldSpec['values'],
  width: number | undefined,
): void {
  const { ok, rule } = VALUE_RULES[values];
  const i = data.findIndex((x) => !ok(x));
  if (i >= 0) fail('BAD_ARGUMENT', `element ${at(i, width)} is ${data[i]}; ${rule}`, name);
}

/**
 * The padding the layout promises, row by row: the prompt part of attentionMask is 0…0 1…1 (left
 * padding), its response part 1…1 0…0 (right padding), and an action is only trained on where its
 * token is real (actionMask ≤ attentionMask). actionMask may have holes (tool output in a
 * multi-turn response is attended to but not trained on).
 */
function checkPadding(e: Experience): void {
  const { batch: B, length: L, actions: A } = e.shape;
  const P = e.promptLength;
  const att = e.attentionMask;
  for (let b = 0; b < B; b++) {
    const row = b * L;
    for (let t = 1; t < P; t++) {
      if (att[row + t - 1] === 1 && att[row + t] === 0) {
        fail(
          'BAD_ARGUMENT',
          `row ${b} has a pad at prompt position ${t} after a real token; prompts are left-padded`,
          'attentionMask',
        );
      }
    }
    for (let j = 1; j < A; j++) {
      if (att[row + P + j - 1] === 0 && att[row + P + j] === 1) {
        fail(
          'BAD_ARGUMENT',
          `row ${b} has a real token at response position ${j} after a pad; responses are right-padded`,
          'attentionMask',
        );
      }
    }
    for (let j = 0; j < A; j++) {
      if (e.actionMask[b * A + j] === 1 && att[row + P + j] === 0) {
        fail(
          'BAD_ARGUMENT',
          `element [${b}, ${j}] is 1 but attentionMask[${b}, ${P + j}] is 0; only real tokens are actions`,
          'actionMask',
        );
      }
    }
  }
}

/**
 * Checks an Experience completely: its layout (see `checkExperienceLayout`), masks of 0/1, token
 * ids ≥ 0, finite floats everywhere (pads included: a NaN under a mask still poisons a masked sum
 * as 0·NaN = NaN), and the padding layout. Throws a TroupeError naming the field and element.
 */
export function checkExperience(e: Experience): void {
  checkExperienceLayout(e);
  const s = e.shape;
  for (const f of FIELDS) {
    const value = e[f.key];
    if (value === undefined) continue;
    checkValues(f.key, value, f.values, f.dims === 'B' ? undefined : dimsOf(f.dims, s)[1]);
  }
  for (const [k, v] of Object.entries(e.info)) checkValues(`info.${k}`, v, 'finite', undefined);
  checkPadding(e);
}

/**
 * Rows `rows` of an Experience (repeats and any order allowed) as an Experience of their own: every
 * field of `FIELDS` that is present, at its row width, and every `info` array. Copies, not views.
 */
export function sliceExperience(e: Experience, rows: readonly number[]): Experience {
  const shape = { batch: rows.length, length: e.shape.length, actions: e.shape.actions };
  const out: Record<string, unknown> = { promptLength: e.promptLength, shape };
  for (const f of FIELDS) {
    const x = e[f.key];
    if (x !== undefined)
      out[f.key] = takeRows(x, rows, f.dims === 'B' ? 1 : dimsOf(f.dims, shape)[1]);
  }
  out.info = Object.fromEntries(Object.entries(e.info).map(([k, v]) => [k, takeRows(v, rows, 1)]));
  return out as unknown as Experience;
}

/** Rows of `width` elements of a row-major array, in the order given, into a new array. */
function takeRows<T extends Int32Array | Uint8Array | Float32Array>(
  x: T,
  rows: readonly number[],
  width: number,
): T {
  const out = new (x.constructor as new (n: number) => T)(rows.length * width);
  rows.forEach((r, i) => {
    out.set(x.subarray(r * width, (r + 1) * width), i * width);
  });
  return out;
}

/** Bytes of payload an Experience holds (every typed array, info included). */
export function experienceBytes(e: Experience): number {
  let bytes = 0;
  for (const f of FIELDS) bytes += e[f.key]?.byteLength ?? 0;
  for (const v of Object.values(e.info)) bytes += v.byteLength;
  return bytes;
}
