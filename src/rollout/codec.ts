import { Packr, RESET_BUFFER_MODE } from 'msgpackr';
import { TroupeError } from '../errors.js';
import type { RolloutLayout } from './assemble.js';
import { checkExperienceLayout, EXPERIENCE_ARRAY_FIELDS, type Experience } from './experience.js';

/**
 * Message frames: every cross-thread payload is one msgpack value `{ v, kind, payload }` in an
 * ArrayBuffer of its own, exactly as long as the frame, so it can go in a transfer list. The
 * sender gives the buffer up on transfer (its byteLength becomes 0); the receiver owns it.
 *
 * What msgpackr 2.1 does with typed arrays (checked in test/rollout/codec.test.ts):
 * - With `moreTypes`, a typed array (Uint8Array included, Buffer excepted) is written as ext type
 *   0x74 (`'t'`, then a byte naming the array type, then its raw little-endian bytes). Its bytes
 *   sit at whatever offset the frame puts them, so they are not aligned in the frame.
 * - Reading one always copies: the unpacker slices the bytes into a fresh ArrayBuffer and views
 *   that, so a decoded Float32Array/Int32Array/Uint16Array/Uint8Array is aligned (byteOffset 0),
 *   owns its whole buffer (transferable on its own), and never aliases the frame, whatever the
 *   frame's own alignment. The cost is one memcpy per array on decode.
 * - A Node `Buffer` is written as plain msgpack `bin` instead, and `bin` is read as a view *into the
 *   input* (`subarray`) unless `copyBuffers` is set. This codec sets it, so nothing decoded aliases
 *   the frame: the frame buffer may be reused or dropped right after decode. (A Buffer comes back
 *   as a Uint8Array.)
 * - Bytes are copied, never converted: -0, subnormals, ±Inf and NaN payloads survive bit-exactly.
 *   (Plain JS numbers do not keep -0: msgpack writes -0 as the integer 0.)
 * - `pack()` returns a view into a scratch buffer that later packs overwrite, hence the copy into
 *   an exact-length ArrayBuffer in `encodeFrame`. By default each pack also starts where the last
 *   one ended and, near the end, moves to a freshly allocated scratch: with 1 MB frames that is a
 *   new 4 MB buffer every few frames, and fresh memory is slow to touch on these VMs (encode ran
 *   10× slower). `RESET_BUFFER_MODE` rewinds after each pack so the same warm scratch is reused.
 */

/** The frame layout this writer produces. Bump it when the layout or a kind's payload changes. */
export const FRAME_VERSION = 1;
/** The frame versions this reader understands. */
export const SUPPORTED_FRAME_VERSIONS: readonly number[] = [FRAME_VERSION];

/** The kind of a frame that carries one Experience. */
export const EXPERIENCE_FRAME = 'experience';
/** The kind of a frame that carries a rollout's token layout (what scorers read). */
export const ROLLOUT_FRAME = 'rollout';

/** A frame as `decodeFrame` reads it: a supported version, any kind, its payload not yet checked. */
export interface FrameEnvelope {
  readonly kind: string;
  readonly version: number;
  readonly payload: unknown;
}

/**
 * The frames Troupe sends, one member per kind: switch on `kind` and `payload` has that kind's
 * type. `readFrame` returns one with its payload checked; a new kind is a member here and a line
 * in `PAYLOADS` below.
 */
export type Frame =
  | {
      readonly kind: typeof EXPERIENCE_FRAME;
      readonly version: number;
      readonly payload: Experience;
    }
  | {
      readonly kind: typeof ROLLOUT_FRAME;
      readonly version: number;
      readonly payload: RolloutLayout;
    };

export type FrameKind = Frame['kind'];
type PayloadOf<K extends FrameKind> = Extract<Frame, { kind: K }>['payload'];

// useRecords: false writes objects as plain msgpack maps (self-describing, no shared structures
// between writer and reader); copyBuffers: see above.
const packr = new Packr({ moreTypes: true, useRecords: false, copyBuffers: true });

function badFrame(message: string, details: Record<string, unknown> = {}, cause?: unknown): never {
  throw new TroupeError('BAD_FRAME', message, { details, cause });
}

/** Packs `{ v: FRAME_VERSION, kind, payload }` into a new ArrayBuffer of exactly its length. */
export function encodeFrame(kind: string, payload: unknown): ArrayBuffer {
  if (typeof kind !== 'string' || kind === '') {
    throw new TroupeError('BAD_ARGUMENT', `Frame kind must be a non-empty string, got ${kind}`);
  }
  const scratch = packr.pack({ v: FRAME_VERSION, kind, payload }, RESET_BUFFER_MODE);
  const out = new ArrayBuffer(scratch.byteLength);
  new Uint8Array(out).set(scratch);
  return out;
}

/**
 * Reads a frame. Throws BAD_FRAME when `buf` is not a msgpack frame `{ v, kind, payload }`, or is
 * one of a version this reader does not understand (details: `got`, `supported`). Every typed
 * array in the payload is a fresh, aligned copy (see above): `buf` is not referenced afterwards.
 */
export function decodeFrame(buf: ArrayBuffer | Uint8Array): FrameEnvelope {
  let bytes: Uint8Array;
  if (buf instanceof Uint8Array) bytes = buf;
  else if (buf instanceof ArrayBuffer) bytes = new Uint8Array(buf);
  else badFrame(`A frame is an ArrayBuffer or Uint8Array, got ${describe(buf)}`);
  if (bytes.byteLength === 0) {
    badFrame('Empty buffer: a frame is at least a msgpack map { v, kind, payload }');
  }
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (e) {
    badFrame(`Not a msgpack frame (${bytes.byteLength} bytes): ${(e as Error).message}`, {}, e);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || !('v' in value)) {
    badFrame(`Not a frame: expected a map { v, kind, payload }, got ${describe(value)}`);
  }
  const { v, kind, payload } = value as Record<string, unknown>;
  if (typeof v !== 'number' || !SUPPORTED_FRAME_VERSIONS.includes(v)) {
    badFrame(
      `Frame version ${describe(v)} is not supported; this reader understands ` +
        `version ${SUPPORTED_FRAME_VERSIONS.join(', ')}. Are both ends the same Troupe version?`,
      { got: plainDetail(v), supported: [...SUPPORTED_FRAME_VERSIONS] },
    );
  }
  if (typeof kind !== 'string' || kind === '') {
    badFrame(`Frame v${v} has no kind: expected a non-empty string, got ${describe(kind)}`);
  }
  return { kind, version: v, payload };
}

/**
 * One Experience as one frame. The layout is checked (types and lengths, so a bad batch fails at
 * the sender); values are not: non-finite floats travel bit-exactly (checkExperience rejects them).
 */
export function encodeExperience(e: Experience): ArrayBuffer {
  checkExperienceLayout(e);
  const payload: Record<string, unknown> = {
    promptLength: e.promptLength,
    shape: { batch: e.shape.batch, length: e.shape.length, actions: e.shape.actions },
    info: e.info,
  };
  // Absent optional fields are left out rather than written as undefined.
  for (const key of EXPERIENCE_ARRAY_FIELDS) if (e[key] !== undefined) payload[key] = e[key];
  return encodeFrame(EXPERIENCE_FRAME, payload);
}

/**
 * The Experience in a frame from `encodeExperience`. Throws BAD_FRAME when the frame is of another
 * kind, has fields an Experience does not, or fails `checkExperienceLayout` (the cause says which
 * field). Values are not checked: call checkExperience for that.
 */
export function decodeExperience(buf: ArrayBuffer | Uint8Array): Experience {
  return payloadOfKind(buf, EXPERIENCE_FRAME);
}

/**
 * A rollout's token layout as one frame: what the reference, the critic and the policy score
 * before rewards exist. Checked like an Experience's layout.
 */
export function encodeRollout(r: RolloutLayout): ArrayBuffer {
  checkRolloutLayout(r);
  return encodeFrame(ROLLOUT_FRAME, {
    sequences: r.sequences,
    attentionMask: r.attentionMask,
    actionMask: r.actionMask,
    promptLength: r.promptLength,
    shape: { batch: r.shape.batch, length: r.shape.length, actions: r.shape.actions },
  });
}

/** The layout in a frame from `encodeRollout`; BAD_FRAME when it is not one, or is malformed. */
export function decodeRollout(buf: ArrayBuffer | Uint8Array): RolloutLayout {
  return payloadOfKind(buf, ROLLOUT_FRAME);
}

/**
 * Any frame Troupe sends, its payload checked as its kind's decoder checks it; BAD_FRAME for a
 * kind Troupe does not send (details: `kind`, `known`).
 */
export function readFrame(buf: ArrayBuffer | Uint8Array): Frame {
  const { kind, version, payload } = decodeFrame(buf);
  if (!Object.hasOwn(PAYLOADS, kind)) {
    const known = Object.keys(PAYLOADS);
    badFrame(`Unknown frame kind '${clip(kind)}'; Troupe sends ${known.join(', ')}`, {
      kind: clip(kind),
      known,
    });
  }
  const k = kind as FrameKind;
  return { kind: k, version, payload: checkedPayload(k, payload) } as Frame;
}

/** What each kind's payload holds: its fields, what it is called in messages, and its check. */
const PAYLOADS: {
  readonly [K in FrameKind]: {
    readonly keys: ReadonlySet<string>;
    readonly noun: string;
    readonly check: (p: PayloadOf<K>) => void;
  };
} = {
  [EXPERIENCE_FRAME]: {
    keys: new Set([...EXPERIENCE_ARRAY_FIELDS, 'promptLength', 'shape', 'info']),
    noun: 'Experience',
    check: checkExperienceLayout,
  },
  [ROLLOUT_FRAME]: {
    keys: new Set(['sequences', 'attentionMask', 'actionMask', 'promptLength', 'shape']),
    noun: 'rollout',
    check: checkRolloutLayout,
  },
};

/** The payload of a frame that must be of `kind`; BAD_FRAME when it is of another or malformed. */
function payloadOfKind<K extends FrameKind>(buf: ArrayBuffer | Uint8Array, kind: K): PayloadOf<K> {
  const { kind: got, payload } = decodeFrame(buf);
  if (got !== kind) {
    badFrame(`Expected a frame of kind '${kind}', got '${clip(got)}'`, { kind: clip(got) });
  }
  return checkedPayload(kind, payload);
}

/** `payload` as a frame of `kind` holds it: an object of that kind's fields, its layout valid. */
function checkedPayload<K extends FrameKind>(kind: K, payload: unknown): PayloadOf<K> {
  const { keys, noun, check } = PAYLOADS[kind];
  const a = `${/^[aeiou]/i.test(kind) ? 'An' : 'A'} '${kind}' frame`;
  if (payload === null || typeof payload !== 'object') {
    badFrame(`${a} holds an object, got ${describe(payload)}`);
  }
  const unknown = Object.keys(payload).filter((k) => !keys.has(k));
  if (unknown.length > 0) badFrame(`${a} has unknown fields: ${unknown.join(', ')}`, { unknown });
  try {
    check(payload as PayloadOf<K>);
  } catch (cause) {
    badFrame(`${a} does not hold a valid ${noun}: ${(cause as Error).message}`, {}, cause);
  }
  return payload as PayloadOf<K>;
}

/** A layout is an Experience's layout without its per-action and reward fields. */
function checkRolloutLayout(r: RolloutLayout): void {
  if (r === null || typeof r !== 'object') {
    throw new TroupeError('BAD_ARGUMENT', `A rollout is an object, got ${describe(r)}`);
  }
  const count = (x: unknown) => (Number.isSafeInteger(x) && (x as number) > 0 ? (x as number) : 0);
  const B = count(r.shape?.batch);
  const A = count(r.shape?.actions);
  // Stand-ins for the fields a layout lacks, sized only once actionMask shows B·A is real: a frame
  // that claims a huge shape must not make the reader allocate it (the check fails at actionMask).
  const real = r.actionMask instanceof Uint8Array && r.actionMask.length === B * A;
  checkExperienceLayout({
    sequences: r.sequences,
    attentionMask: r.attentionMask,
    actionMask: r.actionMask,
    promptLength: r.promptLength,
    shape: r.shape,
    actionLogProbs: new Float32Array(real ? B * A : 0),
    rewards: new Float32Array(real ? B : 0),
    info: {},
  } as Experience);
}

/**
 * A decoded value in a message. Frames are untrusted bytes: msgpack int64 / uint64 decode as
 * BigInt, which JSON.stringify refuses, so scalars other than strings are written with String().
 */
function describe(x: unknown): string {
  if (typeof x === 'string') return JSON.stringify(clip(x));
  if (typeof x === 'bigint') return `${x}n (an int64)`;
  if (x === null || typeof x !== 'object') return String(x);
  if (Array.isArray(x)) return `an array of ${x.length}`;
  const name = typeof x.constructor === 'function' ? x.constructor.name : '';
  if (name === '' || name === 'Object') return 'an object';
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
}

/** A string from a frame, cut to a length a message can show. */
function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** A decoded scalar as error details (plain data, JSON-safe): a BigInt becomes its digits. */
function plainDetail(x: unknown): unknown {
  if (typeof x === 'bigint') return x.toString();
  return x === null || typeof x !== 'object' ? x : describe(x);
}
