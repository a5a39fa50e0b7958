import { TroupeError } from '../errors.js';
import { f32BitsToBf16 } from '../policy/checkpoint/dtypes.js';

/**
 * Weights moving between actors as one flat buffer: the trainer packs its state dict, and either
 * transfers the buffer (the sender's copy is detached, the receiver owns it) or writes it into a
 * SharedWeights that generator actors read without a message at all.
 *
 * Measured (bench/suites/frames.ts): packing is memcpy-speed into a buffer already touched, but
 * ~0.15 GB/s into a fresh one (first touch is slow on these VMs): have the receiver hand the buffer
 * back and pack `into` it. A transfer moves no bytes, yet one of more than ~64 MB makes the
 * receiving isolate run a full GC (its external memory jumps), 5–15 ms a hop here; SharedWeights
 * allocates once and has no such cost.
 *
 * (Past 300 lines: one format. The manifest, packing, unpacking and SharedWeights' versioned
 * buffer all check against the same manifest and dtype rules, and are tested as one.)
 */

export type WeightDtype = 'float32' | 'bfloat16';

/** One tensor's place in a flat buffer. `offset` and `length` count elements, not bytes. */
export interface WeightEntry {
  readonly name: string;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly length: number;
}

/** Where every tensor lies, in order, without gaps: the same for float32 and bfloat16 buffers. */
export type WeightManifest = readonly WeightEntry[];

/** A state dict as `stateDict()` returns it: name → row-major float32 data of `shape`. */
export type WeightState = ReadonlyMap<
  string,
  { readonly shape: readonly number[]; readonly data: Float32Array }
>;

export interface PackedWeights {
  readonly dtype: WeightDtype;
  readonly manifest: WeightManifest;
  readonly buffer: ArrayBuffer;
}

export const WEIGHT_DTYPE_BYTES: Readonly<Record<WeightDtype, number>> = {
  float32: 4,
  bfloat16: 2,
};

function bad(message: string, details: Record<string, unknown> = {}): never {
  throw new TroupeError('BAD_ARGUMENT', message, { details });
}

function checkDtype(dtype: unknown): asserts dtype is WeightDtype {
  if (dtype !== 'float32' && dtype !== 'bfloat16') {
    bad(`Unknown weight dtype ${JSON.stringify(dtype)}. Known: float32, bfloat16.`, { dtype });
  }
}

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The manifest of `state` packed in its iteration order. */
export function weightManifest(state: WeightState): WeightManifest {
  const manifest: WeightEntry[] = [];
  let offset = 0;
  for (const [name, { shape, data }] of state) {
    const length = product(shape);
    if (data.length !== length) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `Weight '${name}': shape [${shape.join(', ')}] holds ${length} elements, data has ${data.length}`,
        { details: { name, shape: [...shape], length: data.length } },
      );
    }
    manifest.push({ name, shape: [...shape], offset, length });
    offset += length;
  }
  return manifest;
}

/** Elements a manifest spans (the end of its last entry). */
export function manifestElements(manifest: WeightManifest): number {
  return manifest.reduce((end, e) => Math.max(end, e.offset + e.length), 0);
}

/**
 * Writes `state` laid out by `manifest` into `target` from `byteOffset`: float32 as is, bfloat16
 * rounded to nearest, ties to even (NaN stays NaN). The caller has checked the two agree.
 */
function packInto(
  state: WeightState,
  manifest: WeightManifest,
  dtype: WeightDtype,
  target: ArrayBufferLike,
  byteOffset: number,
): void {
  for (const { name, offset, length } of manifest) {
    const src = state.get(name)!.data;
    if (dtype === 'float32') {
      new Float32Array(target, byteOffset + offset * 4, length).set(src);
      continue;
    }
    const bits = new Uint32Array(src.buffer, src.byteOffset, length);
    const dst = new Uint16Array(target, byteOffset + offset * 2, length);
    for (let i = 0; i < length; i++) dst[i] = f32BitsToBf16(bits[i]);
  }
}

/** Throws unless `state` has exactly the manifest's tensors with its shapes. */
function checkStateMatches(state: WeightState, manifest: WeightManifest): void {
  for (const { name, shape } of manifest) {
    const w = state.get(name);
    if (w === undefined) bad(`Weight '${name}' is in the manifest but not in the state`, { name });
    if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `Weight '${name}': the manifest says [${shape.join(', ')}], the state has [${w.shape.join(', ')}]`,
        { details: { name, expected: [...shape], got: [...w.shape] } },
      );
    }
    if (w.data.length !== product(shape)) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `Weight '${name}': shape [${shape.join(', ')}] holds ${product(shape)} elements, data has ${w.data.length}`,
        { details: { name } },
      );
    }
  }
  if (state.size !== manifest.length) {
    const known = new Set(manifest.map((e) => e.name));
    const extra = [...state.keys()].filter((k) => !known.has(k));
    bad(`The state has weights the manifest does not: ${extra.join(', ')}`, { extra });
  }
}

/**
 * Packs `state` into one transferable ArrayBuffer (`into`, when given: reuse a buffer the
 * receiver handed back, since first touch of fresh memory is slow). bfloat16 halves the bytes.
 */
export function packWeights(
  state: WeightState,
  options: { dtype: WeightDtype; into?: ArrayBuffer },
): PackedWeights {
  const { dtype, into } = options;
  checkDtype(dtype);
  const manifest = weightManifest(state);
  const bytes = manifestElements(manifest) * WEIGHT_DTYPE_BYTES[dtype];
  if (into !== undefined && into.byteLength !== bytes) {
    bad(`packWeights: 'into' has ${into.byteLength} bytes, the ${dtype} weights need ${bytes}`);
  }
  const buffer = into ?? new ArrayBuffer(bytes);
  packInto(state, manifest, dtype, buffer, 0);
  return { dtype, manifest, buffer };
}

/** Throws unless every entry is a consistent, in-bounds span of a buffer of `elements`. */
function checkManifest(manifest: WeightManifest, elements: number): void {
  for (const e of manifest) {
    if (!Number.isSafeInteger(e.offset) || !Number.isSafeInteger(e.length) || e.offset < 0) {
      bad(`Weight '${e.name}': offset ${e.offset} and length ${e.length} must be integers ≥ 0`);
    }
    if (e.length !== product(e.shape)) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `Weight '${e.name}': shape [${e.shape.join(', ')}] holds ${product(e.shape)} elements, the manifest says ${e.length}`,
        { details: { name: e.name } },
      );
    }
    if (e.offset + e.length > elements) {
      bad(
        `Weight '${e.name}' spans elements [${e.offset}, ${e.offset + e.length}) of a buffer of ${elements}`,
        { name: e.name },
      );
    }
  }
}

/**
 * The state dict in `buffer`. float32 weights are views of `buffer` (no copy: the caller owns it
 * and must not reuse it while they live); bfloat16 weights are widened into one new Float32Array
 * (exactly: every bf16 value is a float32).
 */
export function unpackWeights(
  manifest: WeightManifest,
  buffer: ArrayBufferLike,
  dtype: WeightDtype,
): Map<string, { shape: number[]; data: Float32Array }> {
  checkDtype(dtype);
  const size = WEIGHT_DTYPE_BYTES[dtype];
  if (buffer.byteLength % size !== 0) {
    bad(
      `A ${dtype} weight buffer is a whole number of ${size}-byte elements, got ${buffer.byteLength} bytes`,
    );
  }
  const elements = buffer.byteLength / size;
  checkManifest(manifest, elements);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  if (dtype === 'float32') {
    for (const e of manifest) {
      out.set(e.name, {
        shape: [...e.shape],
        data: new Float32Array(buffer, e.offset * 4, e.length),
      });
    }
    return out;
  }
  const src = new Uint16Array(buffer);
  const wide = new Float32Array(manifestElements(manifest));
  const dst = new Uint32Array(wide.buffer);
  for (const e of manifest) {
    // bf16 is the upper half of a float32.
    for (let i = e.offset; i < e.offset + e.length; i++) dst[i] = src[i] << 16;
    out.set(e.name, { shape: [...e.shape], data: wide.subarray(e.offset, e.offset + e.length) });
  }
  return out;
}

/**
 * SharedWeights layout: a 64-byte header (Int32 slot 0 is the version), then the packed weights.
 * Version 0: never written. Each write moves it from even v to odd v + 1 (writing) to v + 2 (done);
 * it is an int32 and wraps after ~10⁹ writes, so compare versions for equality, not order.
 */
export const SHARED_WEIGHTS_HEADER_BYTES = 64;
const VERSION = 0;

/** Everything another thread needs to attach to the same SharedWeights (post it as is). */
export interface SharedWeightsHandle {
  readonly buffer: SharedArrayBuffer;
  readonly manifest: WeightManifest;
  readonly dtype: WeightDtype;
}

export interface WeightsSnapshot {
  readonly version: number;
  /** A private copy of the packed weights (`unpackWeights(manifest, buffer, dtype)` reads it). */
  readonly buffer: ArrayBuffer;
}

/**
 * Packed weights in a SharedArrayBuffer under a seqlock: one writer (the trainer) publishes new
 * weights, any number of readers (generators) copy them out without a message, and a reader never
 * returns a torn mix of two versions. The writer never waits for readers; a reader that overlaps a
 * write copies again.
 *
 * JS has no memory fences. Both version changes that must order the plain copy are therefore
 * read-modify-write Atomics (the writer's compareExchange to odd, the reader's `add(…, 0)` re-check),
 * sequentially consistent and, on x86, lock-prefixed full barriers; a racy plain read of the payload
 * only ever yields some bytes that were written (no undefined behaviour), and the re-check discards
 * such a copy.
 */
export class SharedWeights {
  readonly manifest: WeightManifest;
  readonly dtype: WeightDtype;
  /** Payload bytes (the buffer is SHARED_WEIGHTS_HEADER_BYTES more). */
  readonly byteLength: number;
  private readonly sab: SharedArrayBuffer;
  private readonly header: Int32Array;
  private readonly payload: Uint8Array;

  private constructor(handle: SharedWeightsHandle) {
    const { buffer, manifest, dtype } = handle;
    checkDtype(dtype);
    if (!(buffer instanceof SharedArrayBuffer)) bad('SharedWeights needs a SharedArrayBuffer');
    const elements = manifestElements(manifest);
    checkManifest(manifest, elements);
    this.byteLength = elements * WEIGHT_DTYPE_BYTES[dtype];
    if (buffer.byteLength !== SHARED_WEIGHTS_HEADER_BYTES + this.byteLength) {
      bad(
        `SharedWeights buffer has ${buffer.byteLength} bytes; a ${SHARED_WEIGHTS_HEADER_BYTES}-byte header ` +
          `and ${elements} ${dtype} weights need ${SHARED_WEIGHTS_HEADER_BYTES + this.byteLength}`,
      );
    }
    this.sab = buffer;
    this.manifest = manifest;
    this.dtype = dtype;
    this.header = new Int32Array(buffer, 0, SHARED_WEIGHTS_HEADER_BYTES / 4);
    this.payload = new Uint8Array(buffer, SHARED_WEIGHTS_HEADER_BYTES, this.byteLength);
  }

  /** New shared storage for weights laid out by `manifest` (version 0, all zeros). */
  static create(manifest: WeightManifest, dtype: WeightDtype): SharedWeights {
    checkDtype(dtype);
    const bytes = manifestElements(manifest) * WEIGHT_DTYPE_BYTES[dtype];
    const buffer = new SharedArrayBuffer(SHARED_WEIGHTS_HEADER_BYTES + bytes);
    return new SharedWeights({ buffer, manifest, dtype });
  }

  /** The same storage, from a handle another thread posted. */
  static attach(handle: SharedWeightsHandle): SharedWeights {
    return new SharedWeights(handle);
  }

  get handle(): SharedWeightsHandle {
    return { buffer: this.sab, manifest: this.manifest, dtype: this.dtype };
  }

  /** The current version (odd while a write is in progress). */
  get version(): number {
    return Atomics.load(this.header, VERSION);
  }

  /**
   * Publishes new weights: a state dict laid out like the manifest (packed straight into shared
   * memory, bf16-rounded if need be), or already-packed bytes of exactly `byteLength`. Returns the
   * new version. One writer at a time: a write that finds another in progress throws.
   */
  write(source: WeightState | ArrayBuffer | ArrayBufferView): number {
    let bytes: Uint8Array | undefined;
    if (source instanceof Map) checkStateMatches(source, this.manifest);
    else {
      bytes = ArrayBuffer.isView(source)
        ? new Uint8Array(source.buffer, source.byteOffset, source.byteLength)
        : new Uint8Array(source as ArrayBuffer);
      if (bytes.byteLength !== this.byteLength) {
        bad(
          `SharedWeights.write: got ${bytes.byteLength} bytes, the ${this.dtype} weights are ${this.byteLength}`,
        );
      }
    }
    const v = Atomics.load(this.header, VERSION);
    if ((v & 1) !== 0 || Atomics.compareExchange(this.header, VERSION, v, (v + 1) | 0) !== v) {
      throw new TroupeError(
        'UNSUPPORTED',
        `SharedWeights has one writer, and another write is in progress (version ${this.version})`,
      );
    }
    const next = (v + 2) | 0;
    try {
      if (bytes !== undefined) this.payload.set(bytes);
      else
        packInto(
          source as WeightState,
          this.manifest,
          this.dtype,
          this.sab,
          SHARED_WEIGHTS_HEADER_BYTES,
        );
    } finally {
      Atomics.store(this.header, VERSION, next);
      Atomics.notify(this.header, VERSION);
    }
    return next;
  }

  /**
   * A consistent copy of the weights and its version, into `into` (reuse one: fresh memory is slow
   * to touch) or a new buffer. Blocks (Atomics.wait) while a write is in progress and copies again
   * when one overlapped; gives up with ACTOR_TIMEOUT after `timeoutMs` (a writer that died mid-write
   * leaves the version odd for good).
   */
  read(options: { into?: ArrayBuffer; timeoutMs?: number } = {}): WeightsSnapshot {
    const { into, timeoutMs = 60_000 } = options;
    if (into !== undefined && into.byteLength !== this.byteLength) {
      bad(
        `SharedWeights.read: 'into' has ${into.byteLength} bytes, the weights are ${this.byteLength}`,
      );
    }
    const buffer = into ?? new ArrayBuffer(this.byteLength);
    const dst = new Uint8Array(buffer);
    const deadline = performance.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const before = Atomics.load(this.header, VERSION);
      if ((before & 1) === 0) {
        dst.set(this.payload);
        // A read-modify-write, not a load: the copy above cannot be reordered past it.
        if (Atomics.add(this.header, VERSION, 0) === before) return { version: before, buffer };
      } else {
        Atomics.wait(this.header, VERSION, before, Math.max(0, deadline - performance.now()));
      }
      if (performance.now() > deadline) {
        throw new TroupeError(
          'ACTOR_TIMEOUT',
          `SharedWeights.read found no quiet moment to copy in ${timeoutMs} ms (${attempt} attempts, ` +
            `version ${this.version}): the writer is writing non-stop, or died mid-write`,
          { details: { timeoutMs, attempts: attempt, version: this.version } },
        );
      }
    }
  }

  /** `read()` when the version differs from `seen` (and is not 0), else undefined without copying. */
  readIfChanged(
    seen: number,
    options: { into?: ArrayBuffer; timeoutMs?: number } = {},
  ): WeightsSnapshot | undefined {
    const v = this.version;
    if (v === seen || v === 0) return undefined;
    return this.read(options);
  }

  /** `read()`, unpacked into a state dict (float32: views of the private copy). */
  readState(options: { into?: ArrayBuffer; timeoutMs?: number } = {}): {
    version: number;
    state: Map<string, { shape: number[]; data: Float32Array }>;
  } {
    const { version, buffer } = this.read(options);
    return { version, state: unpackWeights(this.manifest, buffer, this.dtype) };
  }
}
