import { DTYPE_BYTES, isDtype, type SafetensorsDtype } from './dtypes.js';
import { badCheckpoint, numel } from './tensor32.js';

/**
 * The safetensors layout (https://github.com/huggingface/safetensors):
 *
 *   bytes [0, 8)        N: header length, u64 little-endian
 *   bytes [8, 8+N)      header: UTF-8 JSON object
 *                         { "<name>": { "dtype": "F32", "shape": [2, 3], "data_offsets": [b, e] },
 *                           ...,
 *                           "__metadata__": { "format": "pt", <string>: <string> } }
 *   bytes [8+N, end)    data buffer; tensor bytes are data[b, e), little-endian, row-major
 *
 * Offsets are relative to the data buffer, which the tensors must cover exactly, in order of
 * offsets, with no gaps or overlaps.
 */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** [begin, end) in the data buffer. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** The file (or label) the header came from, for messages. */
  readonly source: string;
  /** File offset of the data buffer: 8 + N. */
  readonly dataStart: number;
  readonly dataLength: number;
  /** Tensors in order of their offsets. */
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
}

/** The reference implementation's limit; a longer "header" is a corrupt file, not a model. */
export const MAX_HEADER_BYTES = 100_000_000;

/** N from the 8-byte prefix, checked against the file size. */
export function headerLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) {
    throw badCheckpoint(
      source,
      `file is ${fileSize} bytes, shorter than the 8-byte header length`,
      { field: 'header_length' },
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8) || n > BigInt(MAX_HEADER_BYTES)) {
    throw badCheckpoint(
      source,
      `header length ${n} runs past the end of the file (${fileSize} bytes) or the ${MAX_HEADER_BYTES}-byte limit`,
      { field: 'header_length' },
    );
  }
  return Number(n);
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function parseJson(text: Uint8Array, source: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(text));
  } catch (e) {
    throw badCheckpoint(source, `header is not UTF-8 JSON (${(e as Error).message})`, {}, e);
  }
  if (!isObject(parsed)) {
    throw badCheckpoint(source, `header must be a JSON object, got ${JSON.stringify(parsed)}`);
  }
  return parsed;
}

function parseMetadata(raw: unknown, source: string): Record<string, string> {
  if (raw === undefined) return {};
  if (!isObject(raw)) {
    throw badCheckpoint(source, `__metadata__ must be an object of strings`, {
      field: '__metadata__',
    });
  }
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') {
      throw badCheckpoint(source, `__metadata__.${k} must be a string, got ${JSON.stringify(v)}`, {
        field: `__metadata__.${k}`,
      });
    }
  }
  return raw as Record<string, string>;
}

function parseEntry(name: string, raw: unknown, dataLength: number, source: string): TensorEntry {
  const bad = (field: string, what: string) => badCheckpoint(source, what, { tensor: name, field });
  if (!isObject(raw)) throw bad('entry', `entry must be an object, got ${JSON.stringify(raw)}`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (!isDtype(dtype)) {
    const known = Object.keys(DTYPE_BYTES).join(', ');
    throw bad('dtype', `unknown dtype ${JSON.stringify(dtype)} (known: ${known})`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw bad(
      'shape',
      `shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`,
    );
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw bad('data_offsets', `data_offsets must be [begin, end], got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw bad('data_offsets', `data_offsets [${begin}, ${end}] has begin > end`);
  const want = numel(shape) * DTYPE_BYTES[dtype];
  if (end - begin !== want) {
    throw bad(
      'data_offsets',
      `data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} [${shape.join(', ')}] needs ${want}`,
    );
  }
  if (end > dataLength) {
    throw bad(
      'data_offsets',
      `data_offsets [${begin}, ${end}] run past the ${dataLength}-byte data buffer (file truncated?)`,
    );
  }
  return { name, dtype, shape, begin, end };
}

/** The tensors must tile the data buffer exactly: sorted by offset, each begins where the last ended. */
function checkCoverage(entries: TensorEntry[], dataLength: number, source: string): void {
  let at = 0;
  let prev: TensorEntry | undefined;
  for (const e of entries) {
    if (e.begin < at) {
      throw badCheckpoint(
        source,
        `data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev?.name}' (ends at ${at})`,
        { tensor: e.name, field: 'data_offsets', other: prev?.name },
      );
    }
    if (e.begin > at) {
      throw badCheckpoint(
        source,
        `data_offsets [${e.begin}, ${e.end}] leave a gap: data bytes [${at}, ${e.begin}) belong to no tensor`,
        { tensor: e.name, field: 'data_offsets' },
      );
    }
    at = e.end;
    prev = e;
  }
  if (at !== dataLength) {
    throw badCheckpoint(
      source,
      `data bytes [${at}, ${dataLength}) after the last tensor belong to no tensor`,
      { field: 'data_offsets' },
    );
  }
}

/** Parse and validate the JSON header (the N bytes after the prefix). */
export function parseHeader(json: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const dataStart = 8 + json.length;
  const dataLength = fileSize - dataStart;
  const obj = parseJson(json, source);
  const metadata = parseMetadata(obj.__metadata__, source);
  const entries = Object.entries(obj)
    .filter(([name]) => name !== '__metadata__')
    .map(([name, raw]) => parseEntry(name, raw, dataLength, source))
    .sort((a, b) => a.begin - b.begin || a.end - b.end);
  checkCoverage(entries, dataLength, source);
  return {
    source,
    dataStart,
    dataLength,
    tensors: new Map(entries.map((e) => [e.name, e])),
    metadata,
  };
}

/**
 * The 8-byte prefix and JSON header for tensors laid out contiguously in the given order, padded
 * with spaces so the data buffer starts 8-byte aligned. `__metadata__` comes first.
 */
export function buildHeader(
  tensors: readonly { name: string; dtype: SafetensorsDtype; shape: readonly number[] }[],
  metadata: Readonly<Record<string, string>>,
): { bytes: Uint8Array; entries: TensorEntry[] } {
  const entries: TensorEntry[] = [];
  let at = 0;
  for (const t of tensors) {
    const end = at + numel(t.shape) * DTYPE_BYTES[t.dtype];
    entries.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], begin: at, end });
    at = end;
  }
  // Built by hand so the key order is exactly the layout order (JS objects hoist integer keys).
  const fields = [`"__metadata__":${JSON.stringify(metadata)}`].concat(
    entries.map(
      (e) =>
        `${JSON.stringify(e.name)}:${JSON.stringify({ dtype: e.dtype, shape: e.shape, data_offsets: [e.begin, e.end] })}`,
    ),
  );
  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  const n = Math.ceil(json.length / 8) * 8;
  const bytes = new Uint8Array(8 + n).fill(0x20, 8); // spaces pad the JSON
  new DataView(bytes.buffer).setBigUint64(0, BigInt(n), true);
  bytes.set(json, 8);
  return { bytes, entries };
}
