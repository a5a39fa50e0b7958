import { type FileHandle, open } from 'node:fs/promises';
import { TroupeError } from '../../errors.js';
import { writeAll, writeAtomic } from '../../util/atomic.js';
import {
  canDecode,
  decode,
  encode,
  FLOAT_DTYPES,
  isFloatDtype,
  READABLE_DTYPES,
  type SafetensorsDtype,
  type WriteDtype,
} from './dtypes.js';
import {
  buildHeader,
  headerLength,
  parseHeader,
  type SafetensorsHeader,
  type TensorEntry,
} from './safetensors-header.js';
import { badCheckpoint, fmtShape, numel, type StateDict, type Tensor32 } from './tensor32.js';

/** A safetensors file read as float32 (the layout is in safetensors-header.ts). */
export interface SafetensorsFile {
  /** In order of their offsets in the file. */
  tensors: StateDict;
  metadata: Record<string, string>;
  /** The dtype each tensor was stored as. */
  dtypes: Map<string, SafetensorsDtype>;
}

export interface ReadOptions {
  /** Read only the tensors this accepts; the others are still validated in the header. */
  only?: (name: string) => boolean;
  /**
   * The tensors read are model weights: refuse any stored with an integer or bool dtype (before
   * reading data). Such a weight is a quantized or corrupt checkpoint; read as numbers it would
   * load without complaint and generate garbage.
   */
  weights?: boolean;
}

export interface WriteOptions {
  /** Storage dtype of every tensor; default F32. BF16 rounds to nearest even. */
  dtype?: WriteDtype;
  /** Extra `__metadata__` entries; `format` defaults to `pt` (transformers requires it). */
  metadata?: Record<string, string>;
}

function decodeEntry(raw: Uint8Array, e: TensorEntry, source: string): Tensor32 {
  if (!canDecode(e.dtype)) {
    throw new TroupeError(
      'UNSUPPORTED',
      `${source}: tensor '${e.name}': dtype ${e.dtype} cannot be read yet (readable: ${READABLE_DTYPES.join(', ')})`,
      { details: { file: source, tensor: e.name, dtype: e.dtype } },
    );
  }
  return { shape: [...e.shape], data: decode(raw, e.dtype, numel(e.shape)) };
}

function selected(header: SafetensorsHeader, options: ReadOptions, source: string): TensorEntry[] {
  const entries = [...header.tensors.values()].filter((e) => options.only?.(e.name) ?? true);
  const int = options.weights ? entries.find((e) => !isFloatDtype(e.dtype)) : undefined;
  if (int) {
    throw new TroupeError(
      'BAD_CHECKPOINT',
      `${source}: tensor '${int.name}' is stored as ${int.dtype}, an integer dtype; model weights ` +
        `must be floating point (${FLOAT_DTYPES.join(', ')}). An integer weight is a quantized ` +
        'checkpoint (GPTQ, AWQ and bitsandbytes pack weights into integers) or a corrupt one: ' +
        'dequantize it to F32, F16 or BF16 first.',
      { details: { file: source, tensor: int.name, dtype: int.dtype } },
    );
  }
  return entries;
}

/**
 * Parse a whole safetensors file held in memory. F32 tensors are views of `bytes` where 4-byte
 * aligned (no copy): do not reuse `bytes` while they are in use.
 */
export function parseSafetensors(
  bytes: Uint8Array,
  source = '<bytes>',
  options: ReadOptions = {},
): SafetensorsFile {
  const n = headerLength(bytes, bytes.length, source);
  const header = parseHeader(bytes.subarray(8, 8 + n), bytes.length, source);
  const out: SafetensorsFile = {
    tensors: new Map(),
    metadata: { ...header.metadata },
    dtypes: new Map(),
  };
  for (const e of selected(header, options, source)) {
    const raw = bytes.subarray(header.dataStart + e.begin, header.dataStart + e.end);
    out.tensors.set(e.name, decodeEntry(raw, e, source));
    out.dtypes.set(e.name, e.dtype);
  }
  return out;
}

async function openFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    throw badCheckpoint(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? e})`, {}, e);
  }
}

/** Exactly `length` bytes at `position`, in a fresh (so aligned) buffer. */
async function readAt(fh: FileHandle, position: number, length: number, source: string) {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(
      out,
      done,
      Math.min(length - done, 1 << 30),
      position + done,
    );
    if (bytesRead === 0) throw badCheckpoint(source, 'file shrank while being read');
    done += bytesRead;
  }
  return out;
}

async function readHeaderFrom(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const { size } = await fh.stat();
  const prefix = await readAt(fh, 0, Math.min(8, size), path);
  const n = headerLength(prefix, size, path);
  return parseHeader(await readAt(fh, 8, n, path), size, path);
}

/** Only the validated header of a file (names, dtypes, shapes, offsets): for sharded loading. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await openFile(path);
  try {
    return await readHeaderFrom(fh, path);
  } finally {
    await fh.close();
  }
}

/** Read a safetensors file tensor by tensor (never the whole file in one buffer). */
export async function readSafetensors(
  path: string,
  options: ReadOptions = {},
): Promise<SafetensorsFile> {
  const fh = await openFile(path);
  try {
    const header = await readHeaderFrom(fh, path);
    const out: SafetensorsFile = {
      tensors: new Map(),
      metadata: { ...header.metadata },
      dtypes: new Map(),
    };
    for (const e of selected(header, options, path)) {
      const raw = await readAt(fh, header.dataStart + e.begin, e.end - e.begin, path);
      out.tensors.set(e.name, decodeEntry(raw, e, path));
      out.dtypes.set(e.name, e.dtype);
    }
    return out;
  } finally {
    await fh.close();
  }
}

/** Checked inputs in sorted-name order, with the header that lays them out. */
function plan(tensors: ReadonlyMap<string, Tensor32>, options: WriteOptions) {
  const dtype = options.dtype ?? 'F32';
  if (dtype !== 'F32' && dtype !== 'BF16') {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `safetensors write: dtype must be F32 or BF16, got ${dtype}`,
    );
  }
  const metadata = { format: 'pt', ...options.metadata };
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') {
      throw new TroupeError('BAD_ARGUMENT', `safetensors write: metadata '${k}' must be a string`);
    }
  }
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const { shape, data } = tensors.get(name)!;
    if (name === '__metadata__') {
      throw new TroupeError('BAD_ARGUMENT', `safetensors write: '__metadata__' is reserved`);
    }
    if (!shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `safetensors write: tensor '${name}': bad shape ${fmtShape(shape)}`,
      );
    }
    if (!(data instanceof Float32Array) || data.length !== numel(shape)) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `safetensors write: tensor '${name}': shape ${fmtShape(shape)} needs ${numel(shape)} float32s, got ${data?.length}`,
        { details: { tensor: name, shape } },
      );
    }
  }
  const header = buildHeader(
    names.map((name) => ({ name, dtype, shape: tensors.get(name)!.shape })),
    metadata,
  );
  return { dtype, names, header };
}

/** The bytes of a safetensors file holding `tensors` (sorted by name, contiguous). */
export function serializeSafetensors(
  tensors: ReadonlyMap<string, Tensor32>,
  options: WriteOptions = {},
): Uint8Array {
  const { dtype, names, header } = plan(tensors, options);
  const last = header.entries.at(-1);
  const out = new Uint8Array(header.bytes.length + (last?.end ?? 0));
  out.set(header.bytes);
  header.entries.forEach((e, i) => {
    out.set(encode(tensors.get(names[i])!.data, dtype), header.bytes.length + e.begin);
  });
  return out;
}

/** Write a safetensors file atomically (temporary file, then rename), tensor by tensor. */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, Tensor32>,
  options: WriteOptions = {},
): Promise<void> {
  const { dtype, names, header } = plan(tensors, options);
  await writeAtomic(path, async (fh) => {
    await writeAll(fh, header.bytes);
    for (const name of names) await writeAll(fh, encode(tensors.get(name)!.data, dtype));
  });
}
